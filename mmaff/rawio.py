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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from mmaff.schema import Reject, RowError, excerpt

T = TypeVar("T")

csv.field_size_limit(sys.maxsize)
_BOM = "\ufeff"
_SURROGATE = re.compile("[\udc80-\udcff]")


class RawFormatError(ValueError):
    """A raw file whose structure (header, encoding, container) cannot be read at all."""

    def __init__(self, file: str | Path, line: int | None, message: str) -> None:
        self.file, self.line = str(file), line
        super().__init__(f"{file}{f':{line}' if line else ''}: {message}")


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


def read_csv(
    path: Path, rel: str, header: list[str] | None, delimiter: str = ",", columns: int | None = None
) -> Iterator[tuple[int, list[str]] | Reject]:
    """CSV rows (quoted fields may span lines); the reported line is where the row starts.

    Bytes that are not UTF-8 are kept as surrogates while parsing so one bad row cannot derail the rest,
    then that row is rejected.
    """
    expected = len(header) if header is not None else columns
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        start = 1
        for index, row in enumerate(reader):
            number, start = start, reader.line_num + 1
            if index == 0 and header is not None:
                found = [c.replace(_BOM, "").strip() for c in row]
                if found != header:
                    raise RawFormatError(rel, 1, f"expected header {header}, found {found}")
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                yield Reject(rel, number, "blank_line")
                continue
            joined = delimiter.join(row)
            if _SURROGATE.search(joined):
                yield Reject(
                    rel,
                    number,
                    "undecodable_bytes",
                    excerpt(joined.encode("utf-8", "surrogateescape").decode("utf-8", "replace")),
                )
                continue
            if expected is not None and len(row) != expected:
                yield Reject(
                    rel, number, "bad_column_count", excerpt(joined), f"{len(row)} columns, expected {expected}"
                )
                continue
            yield number, row


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


def read_json_array(path: Path, rel: str) -> Iterator[tuple[int, dict] | Reject]:
    """Items of a file holding one JSON array (EWECT's layout), numbered from 1.

    The array is decoded item by item, so a truncated or corrupt file still yields every item before the
    damage and one reject (with the item number) for the unreadable rest.
    """
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
        except json.JSONDecodeError as err:
            yield Reject(
                rel,
                number,
                "truncated_json",
                excerpt(text[pos : pos + 200]),
                f"item {number}: {err.msg} at char {err.pos}",
            )
            return
        if not isinstance(item, dict):
            yield Reject(rel, number, "bad_json_item", excerpt(item), "expected an object")
            continue
        yield number, item
