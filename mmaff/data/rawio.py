"""Readers for raw files as they really are: CRLF, BOMs, undecodable bytes, wrong column counts, truncated JSON.

Every reader yields `(line_number, row)` for good rows and `Reject`s for bad ones, so builders never lose a
row silently. Structural problems that make a whole file unreadable raise `RawFormatError` naming the file.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from mmaff.data.schema import Reject, RowError, excerpt

T = TypeVar("T")

csv.field_size_limit(sys.maxsize)
_BOM = "\ufeff"
_SURROGATE = re.compile("[\udc80-\udcff]")


class RawFormatError(ValueError):
    """A raw file whose structure (header, encoding, container) cannot be read at all."""

    def __init__(self, file: str | Path, line: int | None, message: str) -> None:
        self.file, self.line = str(file), line
        one_line = " ".join(message.splitlines())  # library messages may span lines; the user sees one
        super().__init__(f"{file}{f':{line}' if line else ''}: {one_line}")


class MissingData(FileNotFoundError):
    """The dataset folder exists but lacks the files the builder needs."""


def content_id(*fields: str) -> str:
    """A stable source id for sources that have none: 16 hex of sha1 over the fields (never a row position)."""
    return hashlib.sha1("\x1f".join(fields).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def clean_text(text: str) -> str:
    """Strip BOMs (they occur inside first fields, not only at file starts), CR and outer whitespace."""
    return text.replace(_BOM, "").replace("\r\n", "\n").replace("\r", "\n").strip()


def read_lines(path: Path, rel: str) -> Iterator[tuple[int, str] | Reject]:
    """Yield (line number, line without EOL) for each line; undecodable lines become rejects."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                yield Reject(rel, number, "undecodable_bytes", excerpt(raw.decode("utf-8", "replace")), str(err))
                continue
            if number == 1:
                line = line.removeprefix(_BOM)
            yield number, line


def read_tsv(
    path: Path, rel: str, columns: int, header: list[str] | None = None, skip_blank: bool = True
) -> Iterator[tuple[int, list[str]] | Reject]:
    """Tab-separated rows with exactly `columns` fields; if `header` is given the first line must match it."""
    _empty_file(path, rel, header)
    for item in read_lines(path, rel):
        if isinstance(item, Reject):
            yield item
            continue
        number, line = item
        if header is not None and number == 1:
            if [c.strip() for c in line.split("\t")] != header:
                raise RawFormatError(rel, 1, f"expected header {header}, found {line[:200]!r}")
            continue
        if skip_blank and not line.strip():
            yield Reject(rel, number, "blank_line")
            continue
        fields = line.split("\t")
        if len(fields) != columns:
            yield Reject(rel, number, "bad_column_count", excerpt(line), f"{len(fields)} columns, expected {columns}")
            continue
        yield number, fields


class _LineFeed:
    """Physical lines for a csv reader, numbered, with the lines of the current row kept so that a row found bad
    can be replayed from its second line (the reader then resyncs at the next physical line)."""

    def __init__(self, lines: Iterator[str]) -> None:
        self.lines, self.count = lines, 0
        self.pending: deque[tuple[int, str]] = deque()
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        if self.pending:
            item = self.pending.popleft()
        else:
            self.count += 1
            item = (self.count, next(self.lines))
        self.taken.append(item)
        return item[1]

    def replay_after_first(self) -> None:
        self.pending.extendleft(reversed(self.taken[1:]))


def _swallowed_rows(taken: list[tuple[int, str]], multiline: bool, row_pattern: re.Pattern | None) -> bool:
    """Whether a row spanning several physical lines is a stray quote that swallowed the rows after it."""
    if len(taken) == 1:
        return False
    if not multiline:
        return True
    return row_pattern is not None and any(row_pattern.fullmatch(line.rstrip("\r\n")) for _, line in taken[1:])


def _empty_file(path: Path, rel: str, header: list[str] | None) -> None:
    if path.stat().st_size == 0:
        raise RawFormatError(rel, None, "empty file" + (f" (expected header {header})" if header else ""))


def read_csv(
    path: Path,
    rel: str,
    header: list[str] | None,
    delimiter: str = ",",
    columns: int | None = None,
    multiline: bool = False,
    row_pattern: re.Pattern | None = None,
) -> Iterator[tuple[int, list[str]] | Reject]:
    """CSV rows; the reported line is where the row starts. A zero-byte file is a RawFormatError.

    Quoting is strict, and a quoted field may span lines only with `multiline` (sources whose texts hold
    newlines); there a row is still refused if one of its later lines fully matches `row_pattern` (what a whole
    row of the source looks like). A stray quote therefore costs one `unbalanced_quote` reject at its line, and
    reading resumes at the next physical line instead of merging the rows below into one record.
    Bytes that are not UTF-8 are kept as surrogates while parsing so one bad row cannot derail the rest,
    then that row is rejected.
    """
    _empty_file(path, rel, header)
    expected = len(header) if header is not None else columns
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        feed = _LineFeed(f)
        reader = csv.reader(feed, delimiter=delimiter, strict=True)
        first = True
        while True:
            feed.taken = []
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                row, problem = [], str(err)
            else:
                swallowed = _swallowed_rows(feed.taken, multiline, row_pattern)
                problem = "a quoted field runs over several lines" if swallowed else ""
            if not feed.taken:  # an error before any line was read: nothing to resync on
                raise RawFormatError(rel, None, f"unreadable CSV ({problem})")
            number = feed.taken[0][0]
            if first and header is not None:
                found = [c.replace(_BOM, "").strip() for c in row] if not problem else feed.taken[0][1][:200]
                if problem or found != header:
                    raise RawFormatError(rel, 1, f"expected header {header}, found {found!r}")
                first = False
                continue
            first = False
            if problem:
                lines = f"lines {number}-{feed.taken[-1][0]}" if len(feed.taken) > 1 else f"line {number}"
                yield Reject(rel, number, "unbalanced_quote", _shown(feed.taken[0][1]), f"{problem} ({lines})")
                feed.replay_after_first()
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                yield Reject(rel, number, "blank_line")
                continue
            joined = delimiter.join(row)
            if _SURROGATE.search(joined):
                yield Reject(rel, number, "undecodable_bytes", _shown(joined))
                continue
            if expected is not None and len(row) != expected:
                yield Reject(
                    rel, number, "bad_column_count", excerpt(joined), f"{len(row)} columns, expected {expected}"
                )
                continue
            yield number, row


def _shown(text: str) -> str:
    """An excerpt of text read with surrogateescape, undecodable bytes shown as U+FFFD."""
    return excerpt(text.rstrip("\r\n").encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def parse_rows(
    rows: Iterator[tuple[int, list[str]] | Reject], rel: str, parse: Callable[[list[str]], T], separator: str = ","
) -> Iterator[tuple[int, T] | Reject]:
    """Apply a builder's row parser to reader output: (line, parsed row), or a Reject where it raises RowError."""
    for item in rows:
        if isinstance(item, Reject):
            yield item
            continue
        line, fields = item
        try:
            yield line, parse(fields)
        except RowError as err:
            yield Reject(rel, line, err.reason, excerpt(separator.join(fields)), err.detail)


_NEXT_ITEM = re.compile(r",\s*(?=\{\s*[\"}])")  # an array separator followed by the start of an object


def _position(text: str, pos: int) -> str:
    """`line L, column C` (1-based) of a character offset."""
    return f"line {text.count(chr(10), 0, pos) + 1}, column {pos - text.rfind(chr(10), 0, pos)}"


def _json_problem(err: Exception) -> str:
    if isinstance(err, json.JSONDecodeError):
        return f"{err.msg} at char {err.pos}"
    return f"{type(err).__name__}: {err}"


def read_json_array(path: Path, rel: str) -> Iterator[tuple[int, dict] | Reject]:
    """Items of a file holding one JSON array of objects (EWECT's layout), numbered from 1.

    The array is decoded item by item. A corrupt item is rejected (`bad_json`: its number, line, column and what
    broke) and reading resumes at the next `, {"` after its start, where the next item begins, so one bad item
    costs one reject; a damaged tail with no item after it (a truncated file) is one `truncated_json` reject.
    `line` is the item number, as in the records (EWECT files are one line); the detail gives line and column.
    """
    _empty_file(path, rel, None)
    try:
        text = path.read_bytes().decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError as err:
        raise RawFormatError(rel, None, f"not UTF-8 ({err})") from err
    decoder = json.JSONDecoder()
    pos = len(text) - len(text.lstrip())
    if not text.startswith("[", pos):
        raise RawFormatError(rel, 1, "expected a JSON array")
    pos += 1
    number = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if text.startswith("]", pos):
            return
        number += 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as err:  # also numbers past int's digit limit, absurd nesting
            resume = _NEXT_ITEM.search(text, pos + 1)
            reason = "bad_json" if resume else "truncated_json"
            where = f"item {number} at {_position(text, pos)} (char {pos})"
            yield Reject(rel, number, reason, excerpt(text[pos : pos + 200]), f"{where}: {_json_problem(err)}")
            if resume is None:
                return
            pos = resume.end()
            continue
        if not isinstance(item, dict):
            yield Reject(rel, number, "bad_json_item", excerpt(item), "expected an object")
            continue
        yield number, item
