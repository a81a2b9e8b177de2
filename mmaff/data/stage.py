"""Build one dataset into a staging folder: builder -> checked examples -> dispositions -> rendered JSONL.

Pass 1 streams the builder: every example is checked (gold in its label space, text, language, media
paths), packed compactly into `examples.jsonl` and summarised by fixed-size hashes (numpy arrays); rows
that fail become rejects at once. The arrays then decide duplicates, seeded splits, train/eval leakage and
caps (`dispositions.py`). Pass 2 renders only the kept examples into records (prompts, answers, schema
validation) and writes the split files; it runs in several processes over contiguous ranges whose outputs
are concatenated in order, so the result does not depend on the number of processes.

Rejects: `rejects.jsonl` has one line per input row that lost at least one record, in input order. A row
that feeds several subtasks (MELD: EC, SP, EC+SP; the first is its primary record, the rest are derived)
gives one line whatever happened to each of its records: `subtasks` lists the subtasks whose records were
rejected (in the row's order; empty when the builder could not read the row at all), `ids` their record ids
where they could be made, `reason` / `detail` those of the first rejected record (the primary when it is one
of them), `reasons` the per-subtask reasons when they differ. `row_rejected` is true when the row's primary
record was rejected: the row then counts as rejected, under `reason`. It is false when the primary was written
or capped and only derived records were lost (e.g. a sentiment that conflicts with a duplicate's while the
emotion agrees). Hence, from the files alone, per input file:
    rows = written primary records + capped + excluded + lines with `row_rejected`,
    derived_rejected = subtasks listed on the lines, less one per line with `row_rejected` and subtasks.
Details name files relative to the raw root (POSIX), never by absolute path.

Media: a kept record's raw media are copied into the stage (a reflink where the file system shares extents
copy-on-write, else a byte copy; never a hard link), so later edits of the raw tree never reach a stage or a
published corpus. `media.sha256` (`sha256sum -c` format) pins every media file's bytes; `RAW_STATE.json`
records each raw file's size, mtime_ns, ctime_ns and inode and the content digests of the inputs and of the
copied media, so that a cached stage is reused only for unchanged content (`build._cached`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import heapq
import itertools
import os
import re
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

from mmaff.data import dispositions as disp
from mmaff.data.builder import GENERATED, BuildContext
from mmaff.data.facts import Facts, FactsWriter
from mmaff.data.media import MediaBudget, MediaChecker, MediaError, VideoInfo, extract_frames, resolve_inside
from mmaff.data.rawio import MissingData
from mmaff.data.records import RecordMaker, hash64, normalise_for_dedup
from mmaff.data.registry import REGISTRY_PATH, DatasetSpec, load_registry
from mmaff.data.schema import SPLITS, Example, RecordError, Reject, excerpt
from mmaff.workers import pool_initializer

_SPLIT_CODES = {name: code for code, name in enumerate(SPLITS)}
MEDIA_BATCH = 64  # examples whose media are checked together across processes
SHARD_EXAMPLES = 250_000  # examples per output shard; shards are rendered in parallel
RAW_STATE = "RAW_STATE.json"  # in a stage: what its raw files looked like (see build._cached)
MEDIA_DIGESTS = "media.sha256"  # in a stage and the corpus: sha256 of every media file
_FICLONE = 0x40049409  # linux/fs.h: share the source's extents copy-on-write (btrfs, XFS, bcachefs, ...)
_NO_REFLINK: set[tuple[int, int]] = set()  # (source, target) devices where FICLONE was refused


@dataclass
class FileStats:
    rows: int = 0
    written: int = 0
    rejected: Counter = field(default_factory=Counter)
    capped: int = 0
    held_out: int = 0  # seeded evaluation rows over their split's target (dispositions.SeededSplits)
    excluded: int = 0
    derived_written: int = 0
    derived_rejected: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "written": self.written,
            "rejected": dict(sorted(self.rejected.items())),
            "capped": self.capped,
            "held_out": self.held_out,
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


def stat_key(path: Path) -> list[int]:
    """What changes whenever a file's bytes may have: size, mtime_ns, ctime_ns (which no one can set back, so an
    edit that restores size and mtime still shows) and inode (a file replaced by another)."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def raw_files(raw_dir: Path) -> dict[str, Path]:
    """Every file under `raw_dir`, by its POSIX path relative to `raw_dir`, sorted."""
    if not raw_dir.is_dir():
        return {}
    return dict(sorted((p.relative_to(raw_dir).as_posix(), p) for p in raw_dir.rglob("*") if p.is_file()))


def reflink(src: Path, dst: Path) -> bool:
    """Create `dst` sharing `src`'s extents copy-on-write; False (and `dst` perhaps created empty) where the file
    system cannot. A refusal is remembered per pair of devices, so ext4 costs one attempt, not one per file."""
    devices = (os.stat(src).st_dev, os.stat(dst.parent).st_dev)
    if devices in _NO_REFLINK:
        return False
    with open(src, "rb") as source, open(dst, "wb") as target:
        try:
            fcntl.ioctl(target.fileno(), _FICLONE, source.fileno())
        except OSError as err:
            if err.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS):
                _NO_REFLINK.add(devices)  # ext4, tmpfs, overlayfs; another file system
            return False
    return True


def copy_independent(src: Path, dst: Path) -> None:
    """Make `dst` a file with `src`'s bytes that no later edit of `src` can change: a reflink where the file
    system supports it (no bytes copied), else a copy (in-kernel on Linux). Never a hard link. Atomic: `dst`
    appears complete or not at all, so processes placing the same file race harmlessly."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        if not reflink(src, tmp):
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def relative_paths(text: str, roots: list[Path]) -> str:
    """`text` with paths under any of `roots` written relative to it (POSIX; the root itself as "."): the same
    inputs give the same manifest, card and rejects wherever they sit on disk."""
    for root in roots:
        prefix = re.escape(root.as_posix().rstrip("/"))
        text = re.sub(rf"{prefix}(/|(?![\w.-]))", lambda m: "" if m.group(1) == "/" else ".", text)
    return text


# One rejected record (or unreadable row), as pass 1 and pass 2 note it before rows are grouped into lines.
# row: input row number; seq: example number (orders a row's records); the rest as in the reject line.
_ROW, _SEQ, _PRIMARY, _SUBTASK, _ID, _FILE, _LINE, _REASON, _EXCERPT, _DETAIL = range(10)


def _reject_entry(row: int, seq: int, example: Example | None, record_id: str | None, reject: Reject) -> bytes:
    primary, subtask = (True, None) if example is None else (example.primary, example.subtask)
    fields = (reject.file, reject.line, reject.reason, reject.excerpt, reject.detail)
    return orjson.dumps([row, seq, primary, subtask, record_id, *fields]) + b"\n"


def _read_entries(path: Path) -> Iterator[list[Any]]:
    with open(path, "rb") as f:
        for line in f:
            yield orjson.loads(line)


def _reject_line(dataset: str, entries: list[list[Any]]) -> bytes:
    """The one rejects.jsonl line of an input row, from its rejected records (see the module docstring)."""
    first = next((e for e in entries if e[_PRIMARY]), entries[0])
    listed = [e for e in entries if e[_SUBTASK] is not None]
    line = {
        "dataset": dataset,
        "file": first[_FILE],
        "line": first[_LINE],
        "reason": first[_REASON],
        "detail": first[_DETAIL],
        "excerpt": first[_EXCERPT],
        "subtasks": [e[_SUBTASK] for e in listed],
        "ids": [e[_ID] for e in listed if e[_ID] is not None],
        "row_rejected": any(e[_PRIMARY] for e in entries),
    }
    if len({e[_REASON] for e in listed}) > 1:
        line["reasons"] = [e[_REASON] for e in listed]
    return orjson.dumps(line) + b"\n"


def _write_reject_lines(dataset: str, sources: list[Path], out: Path) -> Counter:
    """Group the rejected records of `sources` (each in input order) into one line per input row.
    Returns the lines written per input file, split by `row_rejected`: {(file, row_rejected): n}."""
    lines: Counter = Counter()
    merged = heapq.merge(*(_read_entries(path) for path in sources), key=lambda e: (e[_ROW], e[_SEQ]))
    with open(out, "wb") as f:
        for _, group in itertools.groupby(merged, key=lambda e: e[_ROW]):
            entries = list(group)
            f.write(_reject_line(dataset, entries))
            lines[entries[0][_FILE], any(e[_PRIMARY] for e in entries)] += 1
    return lines


def _pack(example: Example, record_id: str, row: int, seq: int) -> bytes:
    """One line of examples.jsonl: the record id, its input row and example number, then every Example field
    in declaration order."""
    return orjson.dumps([record_id, row, seq, *vars(example).values()]) + b"\n"


def _unpack(line: bytes) -> tuple[str, int, int, Example]:
    record_id, row, seq, *fields = orjson.loads(line)
    return record_id, row, seq, Example(*fields)


class _Codes(dict):
    """Interns strings to small integer codes."""

    def code(self, key: Any) -> int:
        return self.setdefault(key, len(self))


class _Pass1:
    """Check every example, keep it compactly, and remember fixed-size facts about it."""

    def __init__(
        self, spec: DatasetSpec, stage: Path, style: str, subtasks: frozenset[str], raw_root: Path, media: MediaChecker
    ) -> None:
        raw_dir = raw_root / spec.raw_dir
        self.spec, self.subtasks, self.stage, self.raw_dir, self.media = spec, subtasks, stage, raw_dir, media
        self.maker = RecordMaker(spec, style)
        self.seed = int(spec.splits.get("seed", 0))  # per dataset, so its splits never depend on the mixture
        self.by_language = spec.splits.get("group_by", "language") == "language"
        self.files: dict[str, FileStats] = defaultdict(FileStats)
        self.file_codes, self.group_codes, self.cap_codes = _Codes(), _Codes(), _Codes()
        self.seeds: dict[Any, int] = {}
        self.facts = FactsWriter(stage / "facts")
        self.out = open(stage / "examples.jsonl", "wb", buffering=1 << 20)
        self.rejects = open(stage / "rejects.pass1", "wb")
        self.row, self.seq = -1, -1  # the current input row (a builder reject or a primary example starts one)
        # absolute paths in reject details -> relative to the raw root (generated media: to the stage's media)
        self.display = [stage / "media", raw_root.resolve(), raw_root]

    def close(self) -> Facts:
        self.out.close()
        self.rejects.close()
        return self.facts.close()

    def add(self, item: Example | Reject) -> None:
        stats = self.files[item.file]
        self.seq += 1
        if isinstance(item, Reject):
            self.row += 1
            stats.rows += 1
            stats.rejected[item.reason] += 1
            item.detail = relative_paths(item.detail, self.display)
            self.rejects.write(_reject_entry(self.row, self.seq, None, None, item))
            return
        self.row += item.primary
        stats.rows += item.primary
        if item.subtask not in self.subtasks:
            stats.excluded += item.primary
            return
        record_id = None
        try:
            record_id = self.maker.check(item)
            if item.images or item.videos:
                item.media = self._describe_media(item)
            line = _pack(item, record_id, self.row, self.seq)
        except RecordError as err:
            self._reject(item, record_id, stats, err.reason, str(err))
        except orjson.JSONEncodeError as err:  # e.g. a lone surrogate decoded from a JSON escape
            self._reject(item, record_id, stats, "invalid_unicode", str(err))
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

    def _reject(self, item: Example, record_id: str | None, stats: FileStats, reason: str, detail: str) -> None:
        detail = relative_paths(detail, self.display)
        reject = Reject(item.file, item.line, reason, excerpt(item.text or item.source_id), detail)
        self.rejects.write(_reject_entry(self.row, self.seq, item, record_id, reject))
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
    """Copy (reflink where possible, never hard-link) a kept record's raw media into the stage's media folder,
    so that no later edit of the raw tree reaches the corpus; note its generated media."""
    for ref in (*example.images, *example.videos):
        if ref.startswith(GENERATED + "/"):
            kept_generated.add(ref)
            continue
        target = media_dir / ref
        if not target.exists():  # several records (and shards) may share a clip
            target.parent.mkdir(parents=True, exist_ok=True)
            copy_independent(resolve_inside(raw_dir, ref), target)


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
            record_id, row, seq, example = _unpack(f.readline())
            if reason == disp.KEEP:
                if example.images or example.videos:
                    _place_media(example, Path(raw_dir), Path(media_dir), kept_generated)
                if example.videos and options.get("extract_frames"):
                    _extract(example, dataset, Path(media_dir), budget, options.get("decoder", "auto"))
                handles[split].write(orjson.dumps(maker.make(example, record_id, SPLITS[split])) + b"\n")
            elif reason in disp.REASONS:  # capped / held-out records are counted, not rejected
                text = excerpt(example.text or example.source_id)
                reject = Reject(example.file, example.line, disp.REASONS[reason], text)
                rejects.write(_reject_entry(row, seq, example, record_id, reject))
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
    """Render the kept examples into split shards; the disposition rejects go to `rejects.pass2`.

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
        with ProcessPoolExecutor(max_workers=workers, **pool_initializer()) as pool:
            results = list(pool.map(_render_range, jobs))
    else:
        results = [_render_range(job) for job in jobs]
    digests = [digest for digest, _ in results]
    _remove_unused_generated(stage / "media", set().union(*(kept for _, kept in results)))
    outputs: dict[str, dict[str, Any]] = {}
    with open(stage / "rejects.pass2", "wb") as rejects:  # grouped with pass 1's into rows by build_dataset
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
    n_files, n_codes = len(file_stats), max(*disp.REASONS, *disp.COUNTED) + 1
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
        stats.held_out += int(per_file[disp.HELD_OUT, 1, f])
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
        accounted = s["written"] + sum(s["rejected"].values()) + s["capped"] + s["held_out"] + s["excluded_subtask"]
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


def _media_stats(media_dir: Path, dataset: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Counts of the media placed for the corpus and a digest pinning all their bytes (that of `media.sha256`,
    written next to `media_dir`), one over the generated ones (determinism check); and each file's sha256 by
    its path inside `media_dir`."""
    files = sorted(p for p in media_dir.rglob("*") if p.is_file()) if media_dir.is_dir() else []
    digests = {p.relative_to(media_dir).as_posix(): sha256_file(p) for p in files}
    listing = "".join(f"{digest}  media/{dataset}/{rel}\n" for rel, digest in digests.items()).encode()
    if files:
        (media_dir.parent / MEDIA_DIGESTS).write_bytes(listing)
    generated = hashlib.sha256()
    n_generated = 0
    for rel, digest in digests.items():
        if rel.split("/", 1)[0] == GENERATED:
            generated.update(rel.encode() + b"\0" + digest.encode())
            n_generated += 1
    stats = {
        "files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "sha256": hashlib.sha256(listing).hexdigest() if files else None,
        "generated": n_generated,
        "generated_sha256": generated.hexdigest() if n_generated else None,
    }
    return stats, digests


def _raw_state(ctx: BuildContext, before: dict[str, list[int]], stats: dict, media: dict[str, str]) -> bytes:
    """RAW_STATE.json: the raw files' stat keys as they were before the build read them (an edit during the build
    shows as a change), content digests for the inputs and for the raw media the corpus copied, and size +
    mtime_ns of every stage file (the corpus hard-links them: an in-place edit of the corpus shows here)."""
    raw = dict(before)
    for rel, path in ctx.inputs.items():  # inputs outside the dataset folder, if a builder has any
        raw.setdefault(rel, stat_key(path))
    digests = {rel: info["sha256"] for rel, info in stats["inputs"].items()}
    prefix = Path(ctx.spec.raw_dir).as_posix() + "/"
    digests |= {prefix + rel: digest for rel, digest in media.items() if prefix + rel in raw}
    stage = {
        p.relative_to(ctx.stage).as_posix(): stat_key(p)[:2]
        for p in sorted(ctx.stage.rglob("*"))
        if p.is_file() and p.name not in (RAW_STATE, "DONE.json")
    }
    return orjson.dumps({"raw": raw, "digests": dict(sorted(digests.items())), "stage": stage})


def _check_reject_lines(dataset: str, files: dict[str, FileStats], lines: Counter) -> None:
    for rel, stats in files.items():
        if sum(stats.rejected.values()) != lines[rel, True]:
            raise AssertionError(f"{dataset}: {rel}: {stats.rejected} rejected rows but {lines[rel, True]} lines")


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
    prefix = Path(spec.raw_dir).as_posix() + "/"
    raw_before = {prefix + rel: stat_key(path) for rel, path in raw_files(ctx.raw_dir).items()}
    media = MediaChecker(budget or MediaBudget(), processes)
    pass1 = _Pass1(spec, stage, style, subtasks, raw_root, media)
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
    reason, split = disp.decide(facts, spec.splits, cap_keys, caps, list(pass1.group_codes))
    outputs = _pass2(spec, stage, style, reason, split, facts, processes, ctx.raw_dir, media.budget, ctx.options)
    os.unlink(stage / "examples.jsonl")
    pass1_rejects, pass2_rejects = stage / "rejects.pass1", stage / "rejects.pass2"
    lines = _write_reject_lines(spec.key, [pass1_rejects, pass2_rejects], stage / "rejects.jsonl")
    pass1_rejects.unlink()
    pass2_rejects.unlink()
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
        "reject_lines": sum(lines.values()),
    }
    stats["media"], media_digests = _media_stats(stage / "media", spec.key)
    _check_accounting(spec.key, stats["files"])
    _check_reject_lines(spec.key, files, lines)
    (stage / RAW_STATE).write_bytes(_raw_state(ctx, raw_before, stats, media_digests))
    return stats
