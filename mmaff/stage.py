"""Build one dataset into a staging folder: builder -> records -> dedup, seeded splits, caps -> per-split JSONL.

Two streaming passes keep memory flat: pass 1 renders and validates every record into `pass1.jsonl` while
keeping only fixed-size hashes per record (numpy arrays); the arrays decide duplicates, split assignment,
train/eval leakage and caps; pass 2 streams `pass1.jsonl` again into the split files and `rejects.jsonl`.
"""

from __future__ import annotations

import hashlib
import shutil
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from tqdm import tqdm

from mmaff.rawio import MissingData
from mmaff.records import RecordMaker, hash64, normalise_for_dedup
from mmaff.registry import DatasetSpec
from mmaff.schema import SPLITS, Example, RecordError, Reject, excerpt

UNASSIGNED = 255
_SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}
# pass-2 dispositions (0 = keep); rejects are written with these reasons, "capped" is only counted
DUPLICATE_ID, DUPLICATE_TEXT, CONFLICTING_LABELS, TRAIN_IN_EVAL, CAPPED = 1, 2, 3, 4, 5
REASONS = {DUPLICATE_ID: "duplicate_id", DUPLICATE_TEXT: "duplicate_text", CONFLICTING_LABELS: "conflicting_labels",
           TRAIN_IN_EVAL: "train_text_in_eval_split"}


@dataclass
class BuildContext:
    """What a builder gets: its raw folder, the subtasks wanted, options, and input-file tracking."""

    spec: DatasetSpec
    raw_root: Path
    subtasks: frozenset[str]
    options: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Path] = field(default_factory=dict)

    @property
    def raw_dir(self) -> Path:
        return self.raw_root / self.spec.raw_dir

    def wants(self, *subtasks: str) -> bool:
        return any(s in self.subtasks for s in subtasks)

    def track(self, path: Path) -> str:
        """Register `path` as an input (hashed into the manifest) and return its name relative to the raw root."""
        rel = path.relative_to(self.raw_root).as_posix()
        self.inputs[rel] = path
        return rel

    def find(self, *patterns: str, required: bool = True) -> list[Path]:
        """Files under the dataset folder matching any glob pattern, sorted; MissingData if none and required."""
        found = sorted({p for pattern in patterns for p in self.raw_dir.glob(pattern) if p.is_file()})
        if required and not found:
            raise MissingData(f"{self.raw_dir}: no file matches {list(patterns)}")
        return found


@dataclass
class FileStats:
    rows: int = 0
    written: int = 0
    rejected: Counter = field(default_factory=Counter)
    capped: int = 0
    excluded: int = 0
    derived_written: int = 0
    derived_rejected: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "written": self.written, "rejected": dict(sorted(self.rejected.items())),
                "capped": self.capped, "excluded_subtask": self.excluded,
                "derived_written": self.derived_written, "derived_rejected": self.derived_rejected}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _later_duplicates(values: np.ndarray) -> np.ndarray:
    """Mask of entries equal to an earlier entry (the first occurrence is kept)."""
    mask = np.zeros(len(values), dtype=bool)
    if len(values) > 1:
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        mask[order[1:][ordered[1:] == ordered[:-1]]] = True
    return mask


def _text_duplicates(scope: np.ndarray, gold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks (conflicting, later duplicate): members of a scope group whose golds differ, and non-first
    members of a group whose golds agree."""
    n = len(scope)
    conflicting, later = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if n < 2:
        return conflicting, later
    order = np.lexsort((np.arange(n), gold, scope))
    s, g = scope[order], gold[order]
    same_scope = s[1:] == s[:-1]
    group = np.r_[0, np.cumsum(~same_scope)]
    bad_groups = np.unique(group[1:][same_scope & (g[1:] != g[:-1])])
    conflicting[order[np.isin(group, bad_groups)]] = True
    later[order[1:][same_scope]] = True
    later &= ~conflicting
    return conflicting, later


def _ranks_within_groups(groups: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Rank of each entry by `keys` inside its group (0 = smallest key)."""
    order = np.lexsort((np.arange(len(keys)), keys, groups))
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order)) - np.repeat(starts, sizes)
    return ranks


class _Arrays:
    """Fixed-size per-record facts gathered in pass 1 (8-byte hashes, small codes)."""

    def __init__(self) -> None:
        self.id_hash, self.scope_hash, self.gold_hash, self.text_hash, self.split_hash = (array("Q") for _ in range(5))
        self.split, self.primary = array("B"), array("B")
        self.split_group, self.cap_group, self.file = array("I"), array("I"), array("I")

    def numpy(self) -> dict[str, np.ndarray]:
        dtypes = {"Q": np.uint64, "I": np.uint32, "B": np.uint8}
        return {k: np.frombuffer(v, dtype=dtypes[v.typecode]) for k, v in vars(self).items()}


class _Codes(dict):
    """Interns strings to small integer codes."""

    def code(self, key: Any) -> int:
        return self.setdefault(key, len(self))


def _dispositions(a: dict[str, np.ndarray], spec: DatasetSpec, cap_keys: dict[int, str],
                  caps: dict[str, int | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per record: 0 keep or a disposition code; and the final split code."""
    reason = np.zeros(len(a["id_hash"]), dtype=np.uint8)
    split = a["split"].copy()
    reason[_later_duplicates(a["id_hash"])] = DUPLICATE_ID
    # same (normalised) text twice in one scope: keep the first, or drop all if their labels disagree;
    # official validation/test sets are kept whole so they stay comparable with published numbers
    candidates = np.flatnonzero((reason == 0) & (a["scope_hash"] != 0) & ((split == 0) | (split == UNASSIGNED)))
    conflicting, later = _text_duplicates(a["scope_hash"][candidates], a["gold_hash"][candidates])
    reason[candidates[later]] = DUPLICATE_TEXT
    reason[candidates[conflicting]] = CONFLICTING_LABELS
    unassigned = np.flatnonzero((reason == 0) & (split == UNASSIGNED))
    if len(unassigned):
        cfg = spec.splits
        ranks = _ranks_within_groups(a["split_group"][unassigned], a["split_hash"][unassigned])
        sizes = np.bincount(a["split_group"][unassigned])[a["split_group"][unassigned]]
        n_test = np.minimum(cfg.get("test", 0), np.floor(sizes * cfg.get("max_fraction", 0.2)))
        n_val = np.minimum(cfg.get("validation", 0), np.floor(sizes * cfg.get("max_fraction", 0.2)))
        split[unassigned] = np.where(ranks < n_test, 2, np.where(ranks < n_test + n_val, 1, 0))
    text_hash = a["text_hash"]
    evaluation = np.unique(text_hash[(reason == 0) & (text_hash != 0) & (split >= 1) & (split != UNASSIGNED)])
    leaked = (reason == 0) & (split == 0) & (text_hash != 0) & np.isin(text_hash, evaluation)
    reason[leaked] = TRAIN_IN_EVAL
    for code, key in cap_keys.items():  # caps: max train records per subtask and language
        cap = caps.get(key.split("/")[0])
        if cap is None:
            continue
        train = np.flatnonzero((reason == 0) & (split == 0) & (a["cap_group"] == code))
        if len(train) > cap:
            order = np.lexsort((train, a["split_hash"][train]))
            reason[train[order[cap:]]] = CAPPED
    return reason, split


class _Pass1:
    """Pass 1: render, validate and write every record; remember fixed-size facts about each one."""

    def __init__(self, spec: DatasetSpec, stage: Path, style: str, subtasks: frozenset[str]) -> None:
        self.spec, self.subtasks = spec, subtasks
        self.maker = RecordMaker(spec, style)
        self.seed = int(spec.splits.get("seed", 0))  # per dataset, so its splits never depend on the mixture
        self.files: dict[str, FileStats] = defaultdict(FileStats)
        self.file_codes, self.group_codes, self.cap_codes = _Codes(), _Codes(), _Codes()
        self.scope_seeds: dict[tuple, int] = {}
        self.arrays = _Arrays()
        self.out = open(stage / "pass1.jsonl", "wb")
        self.rejects = open(stage / "rejects.jsonl", "wb")

    def close(self) -> None:
        self.out.close()
        self.rejects.close()

    def add(self, item: Example | Reject) -> None:
        stats = self.files[item.file]
        if isinstance(item, Reject):
            stats.rows += 1
            stats.rejected[item.reason] += 1
            self.rejects.write(_reject_line(self.spec.key, item))
            return
        stats.rows += item.primary
        if item.subtask not in self.subtasks:
            stats.excluded += item.primary
            return
        try:
            record = self.maker.make(item)
            line = orjson.dumps(record) + b"\n"
        except RecordError as err:
            self._reject(item, stats, err.reason, str(err))
        except orjson.JSONEncodeError as err:  # e.g. a lone surrogate decoded from a JSON escape
            self._reject(item, stats, "invalid_unicode", str(err))
        else:
            self.out.write(line)
            self._remember(item, record)

    def _reject(self, item: Example, stats: FileStats, reason: str, detail: str) -> None:
        reject = Reject(item.file, item.line, reason, excerpt(item.text or item.source_id), detail)
        self.rejects.write(_reject_line(self.spec.key, reject))
        if item.primary:
            stats.rejected[reason] += 1
        else:
            stats.derived_rejected += 1

    def _language_seed(self, language: str) -> int:
        seed = self.scope_seeds.get(language)
        if seed is None:
            seed = self.scope_seeds[language] = hash64(language)
        return seed

    def _remember(self, item: Example, record: dict[str, Any]) -> None:
        a = self.arrays
        dedup = item.dedup_text if item.dedup_text is not None else item.text
        norm = normalise_for_dedup(dedup) if dedup else ""
        scope = (item.subtask, item.language, tuple(item.facet.values()), item.split)
        scope_seed = self.scope_seeds.get(scope)
        if scope_seed is None:
            scope_seed = self.scope_seeds[scope] = hash64(repr(scope))
        a.id_hash.append(hash64(record["id"]))
        a.scope_hash.append(hash64(norm, scope_seed) if norm else 0)
        a.gold_hash.append(hash64(orjson.dumps(item.gold).decode()))
        a.text_hash.append(hash64(norm, self._language_seed(item.language)) if norm else 0)
        a.split_hash.append(hash64(item.source_id, self.seed))
        a.split.append(_SPLIT_CODES[item.split] if item.split else UNASSIGNED)
        a.primary.append(item.primary)
        group = item.split_group if item.split_group is not None else _default_group(self.spec, item)
        a.split_group.append(self.group_codes.code(group))
        a.cap_group.append(self.cap_codes.code(f"{item.subtask}/{item.language}"))
        a.file.append(self.file_codes.code(item.file))


def build_dataset(spec: DatasetSpec, raw_root: Path, stage: Path, subtasks: frozenset[str], style: str,
                  caps: dict[str, int | None], options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build `spec` from `raw_root` into `stage/` (split JSONL, rejects.jsonl); returns its stats.

    Raises MissingData if the raw folder or its files are absent, RawFormatError for unreadable files.
    """
    if not (raw_root / spec.raw_dir).is_dir():
        raise MissingData(f"{raw_root / spec.raw_dir} does not exist")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    ctx = BuildContext(spec, raw_root, subtasks, {**spec.options, **(options or {})})
    pass1 = _Pass1(spec, stage, style, subtasks)
    try:
        for item in tqdm(spec.builder_module().build(ctx), desc=spec.key, unit=" rows", mininterval=1.0, disable=None, leave=False):
            pass1.add(item)
    finally:
        pass1.close()
    arrays = pass1.arrays.numpy()
    cap_keys = {c: k for k, c in pass1.cap_codes.items()}
    reason, split = _dispositions(arrays, spec, cap_keys, caps)
    keep = {"file": arrays["file"], "primary": arrays["primary"], "group": arrays["cap_group"]}
    files = pass1.files
    outputs, counts = _pass2(spec.key, stage, reason, split, keep, [files[f] for f in pass1.file_codes], cap_keys)
    (stage / "pass1.jsonl").unlink()
    stats = {
        "inputs": {rel: {"sha256": sha256_file(path), "bytes": path.stat().st_size} for rel, path in sorted(ctx.inputs.items())},
        "files": {rel: files[rel].as_dict() for rel in sorted(files)},
        "outputs": outputs,
        "counts": counts,
    }
    _check_accounting(spec.key, stats["files"])
    return stats


def _default_group(spec: DatasetSpec, item: Example) -> str:
    return item.language if spec.splits.get("group_by", "language") == "language" else "all"


def _reject_line(dataset: str, reject: Reject, record_id: str | None = None) -> bytes:
    return orjson.dumps({"dataset": dataset, "file": reject.file, "line": reject.line, "reason": reject.reason,
                         "detail": reject.detail, "excerpt": reject.excerpt, "id": record_id}) + b"\n"


def _pass2(dataset: str, stage: Path, reason: np.ndarray, split: np.ndarray, keep: dict[str, np.ndarray],
           file_stats: list[FileStats], cap_keys: dict[int, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stream pass-1 records into split files or rejects; counts come from the arrays, not the records."""
    _tally(reason, split, keep, file_stats)
    handles = {i: open(stage / f"{name}.jsonl", "wb") for i, name in enumerate(SPLITS)}
    buffers: dict[int, list[bytes]] = {i: [] for i in handles}
    tags = {i: f'"split":"{name}"'.encode() for i, name in enumerate(SPLITS)}
    with open(stage / "pass1.jsonl", "rb") as pass1, open(stage / "rejects.jsonl", "ab") as rejects:
        for line, disposition, split_code in zip(pass1, reason.tolist(), split.tolist()):
            if disposition:
                if disposition != CAPPED:
                    rejects.write(_disposition_reject(dataset, line, disposition))
                continue
            if split_code:  # pass-1 records say "train" until their split is known; the top-level key comes first
                line = line.replace(b'"split":"train"', tags[split_code], 1)
            buffer = buffers[split_code]
            buffer.append(line)
            if len(buffer) >= 4096:
                handles[split_code].writelines(buffer)
                buffer.clear()
    for code, handle in handles.items():
        handle.writelines(buffers[code])
        handle.close()
    kept = reason == 0
    outputs = {}
    for code, name in enumerate(SPLITS):
        n = int(np.count_nonzero(kept & (split == code)))
        if n:
            outputs[name] = {"records": n, "sha256": sha256_file(stage / f"{name}.jsonl")}
        else:
            (stage / f"{name}.jsonl").unlink()
    return outputs, _counts(split[kept], keep["group"][kept], cap_keys)


def _tally(reason: np.ndarray, split: np.ndarray, keep: dict[str, np.ndarray], file_stats: list[FileStats]) -> None:
    n_files = len(file_stats)
    primary = keep["primary"].astype(bool)

    def per_file(mask: np.ndarray) -> list[int]:
        return np.bincount(keep["file"][mask], minlength=n_files).tolist()

    for stats, written, derived, capped in zip(file_stats, per_file((reason == 0) & primary), per_file((reason == 0) & ~primary),
                                               per_file((reason == CAPPED) & primary)):
        stats.written, stats.derived_written, stats.capped = stats.written + written, stats.derived_written + derived, stats.capped + capped
    for code, name in REASONS.items():
        for stats, n_primary, n_derived in zip(file_stats, per_file((reason == code) & primary), per_file((reason == code) & ~primary)):
            if n_primary:
                stats.rejected[name] += n_primary
            stats.derived_rejected += n_derived


def _counts(split: np.ndarray, group: np.ndarray, cap_keys: dict[int, str]) -> dict[str, Any]:
    """{split: {subtask: {language: n}}} for the kept records."""
    nested: dict = {}
    pairs, sizes = np.unique(np.stack([split.astype(np.int64), group.astype(np.int64)]), axis=1, return_counts=True)
    for (split_code, group_code), n in sorted(zip(pairs.T.tolist(), sizes.tolist()), key=lambda x: (x[0][0], cap_keys[x[0][1]])):
        subtask, language = cap_keys[group_code].rsplit("/", 1)
        nested.setdefault(SPLITS[split_code], {}).setdefault(subtask, {})[language] = n
    return nested


def _disposition_reject(dataset: str, line: bytes, disposition: int) -> bytes:
    record = orjson.loads(line)
    source = record["source"]
    reject = Reject(source["file"], source["line"], REASONS[disposition], excerpt(record["text"] or source["source_id"]))
    return _reject_line(dataset, reject, record["id"])


def _check_accounting(dataset: str, files: dict[str, dict[str, Any]]) -> None:
    for rel, s in files.items():
        accounted = s["written"] + sum(s["rejected"].values()) + s["capped"] + s["excluded_subtask"]
        if accounted != s["rows"]:
            raise AssertionError(f"{dataset}: {rel}: {s['rows']} rows read but {accounted} accounted for")
