"""Build one dataset into a staging folder: builder -> checked examples -> dispositions -> rendered JSONL.

Pass 1 streams the builder: every example is checked (gold in its label space, text, language, media
paths), packed compactly into `examples.jsonl` and summarised by fixed-size hashes (numpy arrays); rows
that fail become rejects at once. The arrays then decide duplicates, seeded splits, train/eval leakage and
caps (`dispositions.py`). Pass 2 renders only the kept examples into records (prompts, answers, schema
validation) and writes the split files; it runs in several processes over contiguous ranges whose outputs
are concatenated in order, so the result does not depend on the number of processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import xxhash
from tqdm import tqdm

from mmaff import dispositions as disp
from mmaff.facts import Facts, FactsWriter
from mmaff.media import MediaBudget, MediaChecker, MediaError, VideoInfo, extract_frames, resolve_inside
from mmaff.rawio import MissingData
from mmaff.records import RecordMaker, hash64, normalise_for_dedup
from mmaff.registry import REGISTRY_PATH, DatasetSpec, load_registry
from mmaff.schema import SPLITS, Example, RecordError, Reject, excerpt

_SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}
GENERATED = "generated"  # refs under this prefix name files the builder wrote into the stage
MEDIA_BATCH = 64  # examples whose media are checked together across processes
SHARD_EXAMPLES = 250_000  # examples per output shard; shards are rendered in parallel


@dataclass
class BuildContext:
    """What a builder gets: its raw folder, the subtasks wanted, options, and input-file tracking."""

    spec: DatasetSpec
    raw_root: Path
    subtasks: frozenset[str]
    options: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Path] = field(default_factory=dict)
    stage: Path | None = None

    @property
    def raw_dir(self) -> Path:
        return self.raw_root / self.spec.raw_dir

    def media_ref(self, relative: str) -> str:
        """Name a raw media file by its path inside the dataset folder, for Example.images / videos. The pipeline
        checks it (containment, existence, full decode) and links it into the corpus as media/<dataset>/<ref>."""
        ref = relative.replace("\\", "/")
        while ref.startswith("./"):
            ref = ref[2:]
        return ref  # anything else, "../" included, is judged by the containment check

    def generated_media(self, subpath: str) -> tuple[Path, str]:
        """(where to write, ref) for a media file the builder creates, e.g. an image decoded from a CSV."""
        path = self.stage / "media" / GENERATED / subpath
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, f"{GENERATED}/{subpath}"

    def wants(self, *subtasks: str) -> bool:
        return any(s in self.subtasks for s in subtasks)

    def track(self, path: Path) -> str:
        """Register `path` as an input (hashed into the manifest) and return its name relative to the raw root."""
        rel = path.relative_to(self.raw_root).as_posix()
        self.inputs[rel] = path
        return rel

    def row_examples(self, golds: dict[str, Any], **fields: Any) -> Iterator[Example]:
        """The records of one raw row that feeds several subtasks: one per wanted subtask, in `golds` order; the
        first is the row's primary record, the others are derived (`primary=False`) so the row counts once."""
        # none wanted: still one record, which the pipeline counts as an excluded row rather than losing it
        wanted = [subtask for subtask in golds if self.wants(subtask)] or [next(iter(golds))]
        for i, subtask in enumerate(wanted):
            yield Example(subtask=subtask, gold=golds[subtask], primary=i == 0, **fields)

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
        return {
            "rows": self.rows,
            "written": self.written,
            "rejected": dict(sorted(self.rejected.items())),
            "capped": self.capped,
            "excluded_subtask": self.excluded,
            "derived_written": self.derived_written,
            "derived_rejected": self.derived_rejected,
        }


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reject_line(dataset: str, reject: Reject, record_id: str | None = None) -> bytes:
    return (
        orjson.dumps(
            {
                "dataset": dataset,
                "file": reject.file,
                "line": reject.line,
                "reason": reject.reason,
                "detail": reject.detail,
                "excerpt": reject.excerpt,
                "id": record_id,
            }
        )
        + b"\n"
    )


def _pack(example: Example, record_id: str) -> bytes:
    """One line of examples.jsonl: the record id, then every Example field in declaration order."""
    return orjson.dumps([record_id, *vars(example).values()]) + b"\n"


def _unpack(line: bytes) -> tuple[str, Example]:
    record_id, *fields = orjson.loads(line)
    return record_id, Example(*fields)


class _Codes(dict):
    """Interns strings to small integer codes."""

    def code(self, key: Any) -> int:
        return self.setdefault(key, len(self))


class _Pass1:
    """Check every example, keep it compactly, and remember fixed-size facts about it."""

    def __init__(
        self, spec: DatasetSpec, stage: Path, style: str, subtasks: frozenset[str], raw_dir: Path, media: MediaChecker
    ) -> None:
        self.spec, self.subtasks, self.stage, self.raw_dir, self.media = spec, subtasks, stage, raw_dir, media
        self.maker = RecordMaker(spec, style)
        self.seed = int(spec.splits.get("seed", 0))  # per dataset, so its splits never depend on the mixture
        self.by_language = spec.splits.get("group_by", "language") == "language"
        self.files: dict[str, FileStats] = defaultdict(FileStats)
        self.file_codes, self.group_codes, self.cap_codes = _Codes(), _Codes(), _Codes()
        self.seeds: dict[Any, int] = {}
        self.facts = FactsWriter(stage / "facts")
        self.out = open(stage / "examples.jsonl", "wb", buffering=1 << 20)
        self.rejects = open(stage / "rejects.jsonl", "wb")

    def close(self) -> Facts:
        self.out.close()
        self.rejects.close()
        return self.facts.close()

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
            record_id = self.maker.check(item)
            if item.images or item.videos:
                item.media = self._describe_media(item)
            line = _pack(item, record_id)
        except RecordError as err:
            self._reject(item, stats, err.reason, str(err))
        except orjson.JSONEncodeError as err:  # e.g. a lone surrogate decoded from a JSON escape
            self._reject(item, stats, "invalid_unicode", str(err))
        else:
            self.out.write(line)
            self._remember(item, record_id, len(line))

    def media_source(self, ref: str) -> str:
        """The file a media ref names: inside the stage for generated media, else inside the dataset folder."""
        if ref.startswith(GENERATED + "/"):
            return str(self.stage / "media" / ref)
        return str(resolve_inside(self.raw_dir, ref))

    def prefetch_media(self, items: list[Example | Reject]) -> None:
        """Check the media of a batch of examples in parallel before they are added one by one."""
        wanted = []
        for item in items:
            if isinstance(item, Example):
                for kind, refs in (("image", item.images), ("video", item.videos)):
                    for ref in refs:
                        try:
                            wanted.append((self.media_source(ref), kind))
                        except MediaError:
                            pass  # reported when the example is added
        self.media.prefetch(wanted)

    def _describe_media(self, item: Example) -> list[dict[str, Any]]:
        described = []
        for kind, refs in (("image", item.images), ("video", item.videos)):
            for ref in refs:
                try:
                    info = self.media.describe(self.media_source(ref), kind)
                except MediaError as err:
                    raise RecordError(err.detail, err.reason) from err
                if "error" in info:
                    raise RecordError(info["detail"], info["error"])
                described.append(info)
        return described

    def _reject(self, item: Example, stats: FileStats, reason: str, detail: str) -> None:
        reject = Reject(item.file, item.line, reason, excerpt(item.text or item.source_id), detail)
        self.rejects.write(_reject_line(self.spec.key, reject))
        if item.primary:
            stats.rejected[reason] += 1
        else:
            stats.derived_rejected += 1

    def _seed(self, key: Any) -> int:
        seed = self.seeds.get(key)
        if seed is None:
            seed = self.seeds[key] = hash64(repr(key))
        return seed

    def _remember(self, item: Example, record_id: str, length: int) -> None:
        # the hot loop of a build: plain dict/array operations, no helper calls per field
        a, xxh = self.facts.columns, xxhash.xxh3_64_intdigest
        # text datasets dedup on the text; for images/videos the text (a transcript) is not the whole input
        dedup = (
            item.dedup_text if item.dedup_text is not None else (item.text if self.spec.modality == "text" else None)
        )
        norm = normalise_for_dedup(dedup).encode("utf-8", "surrogatepass") if dedup else b""
        scope = (item.subtask, item.language, tuple(item.facet.values()), item.split)
        a["id_hash"].append(xxh(record_id.encode("utf-8", "surrogatepass")) or 1)
        a["scope_hash"].append((xxh(norm, self._seed(scope)) or 1) if norm else 0)
        a["text_hash"].append((xxh(norm, self._seed(item.language)) or 1) if norm else 0)
        a["gold_hash"].append(xxh(orjson.dumps(item.gold)))
        a["split_hash"].append(xxh(item.source_id.encode("utf-8", "surrogatepass"), self.seed))
        a["split"].append(_SPLIT_CODES[item.split] if item.split else disp.UNASSIGNED)
        a["primary"].append(item.primary)
        group = item.split_group if item.split_group is not None else (item.language if self.by_language else "all")
        codes = self.group_codes
        a["split_group"].append(codes[group] if group in codes else codes.code(group))
        codes, key = self.cap_codes, (item.subtask, item.language)
        a["cap_group"].append(codes[key] if key in codes else codes.code(key))
        codes = self.file_codes
        a["file"].append(codes[item.file] if item.file in codes else codes.code(item.file))
        a["length"].append(length)
        a["visual_tokens"].append(sum(m["tokens"] for m in item.media))
        self.facts.flush_if_full()


class _HashingWriter:
    """A buffered binary file that also keeps the sha256 of what was written (no second read for the manifest)."""

    def __init__(self, path: Path) -> None:
        self.file, self.digest = open(path, "wb", buffering=1 << 20), hashlib.sha256()

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.digest.update(data)

    def close(self) -> str:
        self.file.close()
        return self.digest.hexdigest()


def _place_media(example: Example, raw_dir: Path, media_dir: Path, kept_generated: set[str]) -> None:
    """Link (or copy) a kept record's raw media into the stage's media folder; note its generated media."""
    for ref in (*example.images, *example.videos):
        if ref.startswith(GENERATED + "/"):
            kept_generated.add(ref)
            continue
        target = media_dir / ref
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another shard linked it first
                try:
                    os.link(resolve_inside(raw_dir, ref), target)
                except OSError:
                    shutil.copyfile(resolve_inside(raw_dir, ref), target)


def _extract(example: Example, dataset: str, media_dir: Path, budget: MediaBudget, decoder: str) -> None:
    """Pre-extract a kept record's sampled video frames (option `extract_frames`) and note them in its media."""
    videos = example.media[len(example.images) :]
    for ref, info in zip(example.videos, videos):
        clip = VideoInfo(info["frames"], info["fps"], info["width"], info["height"])
        frames = extract_frames(media_dir / ref, clip, media_dir / "frames" / ref, budget, decoder)
        info.update(frames_dir=f"media/{dataset}/frames/{ref}", **frames)


def _render_range(job: tuple) -> tuple[dict[str, str], set[str]]:
    """Pass 2 over one contiguous range of examples: rendered records per split (returns their sha256 and the
    generated media the kept records use), media placed, rejects for the dispositions."""
    dataset, registry_path, style, examples, offset, reasons, splits, out, raw_dir, media_dir, budget, options = job
    kept_generated: set[str] = set()
    maker = RecordMaker(load_registry(Path(registry_path))[dataset], style)
    handles = {code: _HashingWriter(Path(out) / f"{name}.jsonl") for code, name in enumerate(SPLITS)}
    with open(examples, "rb") as f, open(Path(out) / "rejects.jsonl", "wb") as rejects:
        f.seek(offset)
        items = (
            (r, s)
            for lo in range(0, len(reasons), 1 << 16)  # in chunks: no list of every row's codes
            for r, s in zip(reasons[lo : lo + (1 << 16)].tolist(), splits[lo : lo + (1 << 16)].tolist())
        )
        for reason, split in tqdm(items, total=len(reasons), desc=f"{dataset} render", disable=None, leave=False):
            record_id, example = _unpack(f.readline())
            if reason == disp.KEEP:
                if example.images or example.videos:
                    _place_media(example, Path(raw_dir), Path(media_dir), kept_generated)
                if example.videos and options.get("extract_frames"):
                    _extract(example, dataset, Path(media_dir), budget, options.get("decoder", "auto"))
                handles[split].write(orjson.dumps(maker.make(example, record_id, SPLITS[split])) + b"\n")
            elif reason != disp.CAPPED:
                text = excerpt(example.text or example.source_id)
                reject = Reject(example.file, example.line, disp.REASONS[reason], text)
                rejects.write(_reject_line(dataset, reject, record_id))
    return {SPLITS[code]: handle.close() for code, handle in handles.items()}, kept_generated


def _offsets(facts: Facts, rows: np.ndarray) -> list[int]:
    """Byte offsets in examples.jsonl of the given (sorted) row numbers."""
    offsets, total, wanted = [], 0, list(rows)
    for start, chunk in facts.chunks("length"):
        cumulative = np.r_[0, np.cumsum(chunk["length"], dtype=np.int64)]
        while wanted and wanted[0] < start + len(chunk["length"]):
            offsets.append(total + int(cumulative[wanted.pop(0) - start]))
        total += int(cumulative[-1])
    return offsets + [total] * len(wanted)


def _shard_bounds(n: int) -> list[tuple[int, int]]:
    """Contiguous example ranges, one output shard each: a function of the data only, never of the workers."""
    count = max(1, -(-n // SHARD_EXAMPLES))
    bounds = np.linspace(0, n, count + 1).astype(np.int64).tolist()
    return list(zip(bounds[:-1], bounds[1:]))


def shard_name(split: str, shard: int, shards: int) -> str:
    return f"{split}.jsonl" if shards == 1 else f"{split}-{shard:05d}-of-{shards:05d}.jsonl"


def _pass2(
    spec: DatasetSpec,
    stage: Path,
    style: str,
    reason: np.ndarray,
    split: np.ndarray,
    facts: Facts,
    processes: int,
    raw_dir: Path,
    budget: MediaBudget,
    options: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Render the kept examples into split shards and append disposition rejects.

    Returns {split: {shard file name: {"records", "sha256"}}} for the non-empty shards."""
    ranges = _shard_bounds(len(reason))
    offsets = _offsets(facts, np.array([lo for lo, _ in ranges]))
    jobs = []
    for i, ((lo, hi), offset) in enumerate(zip(ranges, offsets)):
        (stage / f"part-{i}").mkdir()
        jobs.append(
            (
                spec.key,
                str(REGISTRY_PATH),
                style,
                str(stage / "examples.jsonl"),
                offset,
                reason[lo:hi],
                split[lo:hi],
                str(stage / f"part-{i}"),
                str(raw_dir),
                str(stage / "media"),
                budget,
                options,
            )
        )
    workers = min(processes, len(jobs))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(_render_range, jobs))
    else:
        results = [_render_range(job) for job in jobs]
    digests = [digest for digest, _ in results]
    _remove_unused_generated(stage / "media", set().union(*(kept for _, kept in results)))
    outputs: dict[str, dict[str, Any]] = {}
    with open(stage / "rejects.jsonl", "ab") as rejects:
        for i, ((lo, hi), digest) in enumerate(zip(ranges, digests)):
            part = stage / f"part-{i}"
            for code, name in enumerate(SPLITS):
                n = int(np.count_nonzero((reason[lo:hi] == disp.KEEP) & (split[lo:hi] == code)))
                if n:
                    target = shard_name(name, i, len(ranges))
                    os.replace(part / f"{name}.jsonl", stage / target)
                    outputs.setdefault(name, {})[target] = {"records": n, "sha256": digest[name]}
            with open(part / "rejects.jsonl", "rb") as f:
                shutil.copyfileobj(f, rejects, 1 << 20)
            shutil.rmtree(part)
    return outputs


def _remove_unused_generated(media_dir: Path, kept: set[str]) -> None:
    """Generated media of rejected or capped records do not go into the corpus."""
    generated = media_dir / GENERATED
    if generated.is_dir():
        for path in sorted(generated.rglob("*")):
            if path.is_file() and path.relative_to(media_dir).as_posix() not in kept:
                path.unlink()


def _tally(
    facts: Facts, reason: np.ndarray, split: np.ndarray, file_stats: list[FileStats]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-file written / capped / rejected counts from the dispositions; returns kept counts per
    (split, subtask/language group) and visual tokens per split."""
    n_files, n_codes = len(file_stats), max(disp.REASONS) + 2
    per_file = np.zeros((n_codes, 2, n_files), dtype=np.int64)  # reason x primary x file
    kept = np.zeros((len(SPLITS), 1), dtype=np.int64)
    tokens = np.zeros(len(SPLITS), dtype=np.int64)
    for start, chunk in facts.chunks("file", "primary", "cap_group", "visual_tokens"):
        stop = start + len(chunk["file"])
        np.add.at(per_file, (reason[start:stop], chunk["primary"], chunk["file"]), 1)
        keep = reason[start:stop] == disp.KEEP
        np.add.at(tokens, split[start:stop][keep], chunk["visual_tokens"][keep])
        groups = chunk["cap_group"][keep].astype(np.int64)
        if len(groups):
            kept = np.pad(kept, ((0, 0), (0, max(0, int(groups.max()) + 1 - kept.shape[1]))))
            np.add.at(kept, (split[start:stop][keep], groups), 1)
    for f, stats in enumerate(file_stats):
        stats.written += int(per_file[disp.KEEP, 1, f])
        stats.derived_written += int(per_file[disp.KEEP, 0, f])
        stats.capped += int(per_file[disp.CAPPED, 1, f])
        for code, name in disp.REASONS.items():
            if per_file[code, 1, f]:
                stats.rejected[name] += int(per_file[code, 1, f])
            stats.derived_rejected += int(per_file[code, 0, f])
    return kept, tokens


def _counts(kept: np.ndarray, cap_keys: dict[int, tuple[str, str]]) -> dict[str, Any]:
    """{split: {subtask: {language: n}}} for the kept records."""
    nested: dict = {}
    for split_code, name in enumerate(SPLITS):
        for group in sorted(np.flatnonzero(kept[split_code]).tolist(), key=lambda g: cap_keys[g]):
            subtask, language = cap_keys[group]
            nested.setdefault(name, {}).setdefault(subtask, {})[language] = int(kept[split_code, group])
    return nested


def _check_accounting(dataset: str, files: dict[str, dict[str, Any]]) -> None:
    for rel, s in files.items():
        accounted = s["written"] + sum(s["rejected"].values()) + s["capped"] + s["excluded_subtask"]
        if accounted != s["rows"]:
            raise AssertionError(f"{dataset}: {rel}: {s['rows']} rows read but {accounted} accounted for")


def _batches(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _media_stats(media_dir: Path) -> dict[str, Any]:
    """Counts of the media placed for the corpus, and one digest over the generated ones (determinism check)."""
    files = sorted(p for p in media_dir.rglob("*") if p.is_file()) if media_dir.is_dir() else []
    digest = hashlib.sha256()
    generated = [p for p in files if p.relative_to(media_dir).parts[0] == GENERATED]
    for path in generated:
        digest.update(path.relative_to(media_dir).as_posix().encode() + b"\0" + sha256_file(path).encode())
    return {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "generated": len(generated),
        "generated_sha256": digest.hexdigest() if generated else None,
    }


def build_dataset(
    spec: DatasetSpec,
    raw_root: Path,
    stage: Path,
    subtasks: frozenset[str],
    style: str,
    caps: dict[str, int | None],
    options: dict[str, Any] | None = None,
    processes: int = 1,
    budget: MediaBudget | None = None,
) -> dict[str, Any]:
    """Build `spec` from `raw_root` into `stage/` (split JSONL, media/, rejects.jsonl); returns its stats.

    Raises MissingData if the raw folder or its files are absent, RawFormatError for unreadable files.
    """
    if not (raw_root / spec.raw_dir).is_dir():
        raise MissingData(f"{raw_root / spec.raw_dir} does not exist")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    ctx = BuildContext(spec, raw_root, subtasks, {**spec.options, **(options or {})}, stage=stage)
    media = MediaChecker(budget or MediaBudget(), processes)
    pass1 = _Pass1(spec, stage, style, subtasks, ctx.raw_dir, media)
    items = tqdm(
        spec.builder_module().build(ctx), desc=spec.key, unit=" rows", mininterval=1.0, disable=None, leave=False
    )
    try:
        for batch in _batches(items, MEDIA_BATCH):
            if spec.modality != "text":
                pass1.prefetch_media(batch)
            for item in batch:
                pass1.add(item)
    finally:
        media.close()
        facts = pass1.close()
    cap_keys = {code: key for key, code in pass1.cap_codes.items()}
    reason, split = disp.decide(facts, spec.splits, cap_keys, caps)
    outputs = _pass2(spec, stage, style, reason, split, facts, processes, ctx.raw_dir, media.budget, ctx.options)
    os.unlink(stage / "examples.jsonl")
    files = pass1.files
    kept_counts, tokens = _tally(facts, reason, split, [files[f] for f in pass1.file_codes])
    shutil.rmtree(stage / "facts")
    stats = {
        "inputs": {
            rel: {"sha256": sha256_file(path), "bytes": path.stat().st_size}
            for rel, path in sorted(ctx.inputs.items())
        },
        "files": {rel: files[rel].as_dict() for rel in sorted(files)},
        "outputs": outputs,
        "counts": _counts(kept_counts, cap_keys),
        "visual_tokens": {name: int(tokens[code]) for code, name in enumerate(SPLITS) if tokens[code]},
        "media": _media_stats(stage / "media"),
    }
    _check_accounting(spec.key, stats["files"])
    return stats
