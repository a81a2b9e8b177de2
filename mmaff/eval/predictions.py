"""Resumable, id-keyed prediction files (JSON lines), and the merge of per-rank shards.

One line per item: ``{"id", "prediction", "model", "backend", "seconds", ...extra}``; ``prediction`` is the raw
generated text (or a ranked list of texts for top-k decoding). Items are joined to gold labels by ``id`` only,
never by position.

Crash safety. Every `PredictionWriter.write` appends whole lines, then flushes and fsyncs, so a killed run loses
at most the items in flight. A crash in the middle of a write can leave a truncated *last* line: reading to resume
ignores it (and reports it), and reopening for append cuts it off first; reading to score (`strict=True`) refuses
it. Any other unreadable line, or an id that occurs twice, is an error naming the file and line: such a file was
not written by this module and is not trusted.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("id", "prediction")
_REQUIRED = frozenset(REQUIRED_KEYS)


class PredictionFileError(ValueError):
    """A predictions file that cannot be trusted (corrupt line, duplicate id, conflicting shards)."""


@dataclass
class PredictionFile:
    """A predictions file read back: rows by id (file order), their line numbers, and what was dropped from its end."""

    path: Path
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)  # id -> its line number (1-based), for error messages
    good_bytes: int = 0  # length of the prefix made of complete, valid lines
    truncated_tail: bytes = b""  # an unfinished last line (a crash mid-write), ignored

    @property
    def ids(self) -> set[str]:
        return set(self.rows)

    def where(self, item_id: str) -> str:
        """``path:line`` of an id's row."""
        return f"{self.path}:{self.lines[item_id]}"


def _loads(line: bytes) -> Any:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return json.loads(line)  # NaN / Infinity, which json.dumps writes and orjson refuses


def _parse(line: bytes) -> dict[str, Any]:
    try:
        row = _loads(line)
    except ValueError as err:  # json.JSONDecodeError and orjson.JSONDecodeError are ValueErrors
        raise ValueError(f"not JSON: {err}") from None
    if not isinstance(row, dict) or not _REQUIRED <= row.keys() or not isinstance(row["id"], str):
        raise ValueError('expected {"id": str, "prediction": ...}')
    return row


def read_predictions(path: str | Path, *, strict: bool = False) -> PredictionFile:
    """Read a predictions file: the one reader of resuming (generate, likelihood, shard merges) and scoring.

    Tolerant (the default, for resuming): a missing file reads as empty, and a truncated last line (a crash
    mid-write) is ignored and logged. `strict` (for scoring): the file must exist and every line must be a row,
    the last one included. In both modes any other unreadable line, or an id that occurs twice, is an error
    naming the file and line."""
    path = Path(path)
    result = PredictionFile(path)
    if not path.exists():
        if strict:
            raise PredictionFileError(f"{path}: no such predictions file")
        return result
    data = path.read_bytes()
    lines = data.split(b"\n")
    last = len(lines)  # the line after the final "\n" (b"" for a complete file), or an unfinished line
    offset = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            offset += len(line) + 1
            continue
        try:
            row = _parse(line)
        except ValueError as err:
            if number == last and not strict:
                result.truncated_tail = line
                log.warning("%s: ignoring a truncated last line (%d bytes): %s", path, len(line), err)
                break
            unfinished = " (unfinished last line: resume the run that wrote it)" if number == last else ""
            raise PredictionFileError(f"{path}:{number}: corrupt line ({err}){unfinished}: {line[:120]!r}") from None
        if row["id"] in result.lines:
            raise PredictionFileError(
                f"{path}:{number}: duplicate id {row['id']!r} (first on line {result.lines[row['id']]})"
            )
        result.lines[row["id"]] = number
        result.rows[row["id"]] = row
        offset += len(line) + 1
    result.good_bytes = min(offset, len(data))
    return result


def done_ids(path: str | Path) -> set[str]:
    """Ids already predicted in `path` (empty when it does not exist)."""
    return read_predictions(path).ids


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class PredictionWriter:
    """Appends prediction rows to `path`, one JSON line each, flushed and fsynced after every `write` call.

    Opening reads what is there (`done`), cuts off a truncated last line, and ends the file with a newline, so
    appended lines never glue onto a half-written one. Writing an id that is already in the file is an error."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = read_predictions(self.path)
        self.done: set[str] = existing.ids
        self.dropped_tail = existing.truncated_tail
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        if self.path.stat().st_size != existing.good_bytes:
            self._file.truncate(existing.good_bytes)
        if existing.good_bytes and not _ends_with_newline(self.path):  # a valid last line whose "\n" was lost
            self._file.write(b"\n")
        self._sync()

    def write(self, rows: Iterable[dict[str, Any]]) -> int:
        """Append rows (each with at least `id` and `prediction`); returns how many were written."""
        lines, ids = [], []
        for row in rows:
            if any(key not in row for key in REQUIRED_KEYS):
                raise PredictionFileError(f"a prediction row needs {REQUIRED_KEYS}: {row!r}"[:300])
            if row["id"] in self.done or row["id"] in ids:
                raise PredictionFileError(f"{self.path}: id {row['id']!r} is already predicted")
            ids.append(row["id"])
            lines.append(json.dumps(row, ensure_ascii=False) + "\n")
        if lines:
            self._file.write("".join(lines).encode("utf-8"))
            self._sync()
            self.done.update(ids)
        return len(lines)

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._sync()
            self._file.close()

    def __enter__(self) -> PredictionWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_shards(paths: Iterable[str | Path], out: str | Path) -> int:
    """Merge per-rank prediction files into `out`, sorted by id; returns the row count.

    An id in several files must carry the same prediction there (kept once); different predictions are an error.
    A truncated last line of a shard (a crashed earlier run) is left out with a warning: that item is simply not
    predicted there. `out` is written to a temporary file and renamed: it is either the old file or the new one."""
    out = Path(out)
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, Path] = {}
    for path in map(Path, paths):
        shard = read_predictions(path)
        for item_id, row in shard.rows.items():
            if item_id in merged and merged[item_id]["prediction"] != row["prediction"]:
                raise PredictionFileError(
                    f"id {item_id!r}: conflicting predictions in {origin[item_id]} "
                    f"({merged[item_id]['prediction']!r}) and {path} ({row['prediction']!r})"
                )
            merged.setdefault(item_id, row)
            origin.setdefault(item_id, path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        for item_id in sorted(merged):
            f.write((json.dumps(merged[item_id], ensure_ascii=False) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    return len(merged)


# ---------------------------------------------------------------------------------------- run descriptions

# Settings that decide what a prediction is: a predictions file must never mix runs that differ in them.
RUN_IDENTITY = ("backend", "model", "corpus_sha256", "split", "decoding")


def run_path(predictions: str | Path) -> Path:
    """``preds.jsonl`` -> ``preds.run.json``: how the predictions in the file were made."""
    path = Path(predictions)
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    return path.with_name(f"{stem}.run.json")


def corpus_fingerprint(corpus_root: str | Path) -> dict[str, Any]:
    """The corpus's name and the sha256 of its manifest (which lists the sha256 of every split file)."""
    import hashlib

    manifest = Path(corpus_root) / "manifest.json"
    data = manifest.read_bytes()
    return {
        "corpus": json.loads(data).get("corpus"),
        "corpus_path": str(corpus_root),
        "corpus_sha256": hashlib.sha256(data).hexdigest(),
    }


def read_run(predictions: str | Path) -> dict[str, Any] | None:
    path = run_path(predictions)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _split_tasks(decoding: Any) -> tuple[Any, dict[str, Any]]:
    """A run's decoding without its per-task settings, and those settings (task -> decoding)."""
    if not isinstance(decoding, dict):
        return decoding, {}
    return {k: v for k, v in decoding.items() if k != "tasks"}, dict(decoding.get("tasks") or {})


def _decoding_change(earlier: Any, now: Any) -> str | None:
    """How two runs' decodings differ, or None. Per-task settings are compared on the tasks both runs cover: a
    resume may cover other datasets, whose tasks have never been generated into the file."""
    (earlier_rest, earlier_tasks), (rest, tasks) = _split_tasks(earlier), _split_tasks(now)
    changed = sorted(t for t in set(earlier_tasks) & set(tasks) if earlier_tasks[t] != tasks[t])
    if earlier_rest != rest:
        return f"decoding: {earlier_rest!r} -> {rest!r}"
    if changed:
        return "; ".join(f"decoding of {t}: {earlier_tasks[t]!r} -> {tasks[t]!r}" for t in changed)
    return None


def check_run(predictions: str | Path, run: dict[str, Any]) -> dict[str, Any]:
    """`run`, keeping the start time of an earlier run into the same file and the decoding of the tasks it
    covered. Resuming into a file made with other `RUN_IDENTITY` settings (another model, corpus build, split or
    decoding, including any task's decoding) is an error: its rows would be scored as one run."""
    earlier = read_run(predictions)
    if earlier is None:
        return run
    settings = [key for key in RUN_IDENTITY if key != "decoding"]
    differ = [f"{k}: {earlier.get(k)!r} -> {run.get(k)!r}" for k in settings if earlier.get(k) != run.get(k)]
    if (change := _decoding_change(earlier.get("decoding"), run.get("decoding"))) is not None:
        differ.append(change)
    if differ:
        details = "; ".join(differ)
        raise PredictionFileError(f"{predictions} holds predictions of another run ({details}); use a new --out")
    run = {**run, "started": earlier.get("started", run.get("started"))}
    earlier_tasks, tasks = _split_tasks(earlier.get("decoding"))[1], _split_tasks(run.get("decoding"))[1]
    if earlier_tasks.keys() - tasks.keys():
        run["decoding"] = {**run["decoding"], "tasks": dict(sorted({**earlier_tasks, **tasks}.items()))}
    return run


def write_run(predictions: str | Path, run: dict[str, Any]) -> None:
    """Record how `predictions` is made (after `check_run`), atomically."""
    run = check_run(predictions, run)
    path = run_path(predictions)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(run, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
