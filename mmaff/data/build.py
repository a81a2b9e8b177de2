"""Build an instruction corpus from raw dataset files: `make build-mmaffin` / `mmaff build`.

    python -m mmaff.data.build [--raw-root DIR] [--datasets a,b] [--out data/mmaffin]
                          [--mixture data_builders/mixtures/mmaffin.yaml] [--strict] [--workers N] [--no-cache]
                          [--wait]

The mixture is validated whole first (mmaff/data/mixture.py). One build at a time per output: a second one fails at
once naming the pid that holds `.<out>.lock`, or waits for it with --wait. Each dataset is built into a staging
folder next to the output (`.<out>.stage/<dataset>/`, reused when its code, config and input files are unchanged,
so an interrupted build resumes). The corpus is assembled in a temporary folder and exchanged with the old one in
one step (mmaff/data/publish.py): a failed or killed build leaves the previous corpus untouched, and the next build
removes what it left. Pool workers die with the build (mmaff/workers.py). Paths in the outputs are relative to the
raw root, so the same inputs give the same bytes wherever they sit.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from mmaff.data import card
from mmaff.data import mixture as mixtures
from mmaff.data.media import MediaBudget
from mmaff.data.mixture import Entry, Mixture, MixtureError
from mmaff.data.publish import OutputBusy, output_lock, publish, recover, temp_path
from mmaff.data.rawio import MissingData, RawFormatError
from mmaff.data.registry import REGISTRY_PATH, DatasetSpec, load_registry
from mmaff.data.schema import SPLITS
from mmaff.data.stage import (
    MEDIA_DIGESTS,
    RAW_STATE,
    build_dataset,
    raw_files,
    reflink,
    relative_paths,
    sha256_file,
    stat_key,
)
from mmaff.data.templates import load_template, template_sources
from mmaff.paths import (
    BUILD_INFO,
    FROM_CHECKOUT,
    MIXTURES_DIR,
    PACKAGE_DIR,
    PROJECT_ROOT,
    SAMPLE_RAW,
    builders_dir,
    git_state,
)
from mmaff.workers import pool_initializer

ROOT = PROJECT_ROOT
DEFAULT_MIXTURE = MIXTURES_DIR / "mmaffin.yaml"
SCHEMA_VERSION = 1
_PACKAGES = ("mmaff", "pyyaml", "jinja2", "orjson", "numpy", "pyarrow", "tqdm")


class BuildError(RuntimeError):
    pass


def load_mixture(path: Path, registry: dict[str, DatasetSpec]) -> tuple[Mixture, list[Entry]]:
    """The mixture validated whole (mmaff/data/mixture.py); BuildError naming the file and key at the first problem."""
    try:
        mixture = mixtures.load(path, registry)
    except MixtureError as err:
        raise BuildError(str(err)) from None
    return mixture, mixture.entries


def _code_fingerprint(spec: DatasetSpec, entry: Entry, style: str, budget: MediaBudget) -> str:
    """Hash of everything except input bytes that decides a dataset's output."""
    digest = hashlib.sha256()
    # all builders, not just this one: a builder may import helpers from another
    sources = (
        sorted(PACKAGE_DIR.glob("*.py"))
        + sorted((PACKAGE_DIR / "data").glob("*.py"))
        + sorted(builders_dir().glob("*.py"))
        + [REGISTRY_PATH]
    )
    sources += template_sources(style)  # families, _style.yaml and the _parts/ they include
    for path in sources:
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(repr((entry, style, budget, SCHEMA_VERSION)).encode())
    return digest.hexdigest()


def _listing(raw_dir: Path) -> list[list[Any]]:
    """Names and sizes of the raw files, for the fingerprint; their content is checked by `_cached`."""
    return [[rel, path.stat().st_size] for rel, path in raw_files(raw_dir).items()]


def _cached(stage: Path, fingerprint: str, raw_root: Path) -> dict[str, Any] | None:
    """The stats of a stage built with this fingerprint from raw files with the same content, else None.

    A raw file whose size, mtime_ns, ctime_ns and inode are those recorded at build time is unchanged (ctime
    cannot be set back, so even an edit that restores size and mtime shows); one whose stat changed is re-hashed
    against the sha256 the build recorded (inputs, copied media), and a file without a recorded digest counts as
    changed. The stage's own files (hard-linked into the corpus) must keep their size and mtime_ns."""
    done, state_path = stage / "DONE.json", stage / RAW_STATE
    if not done.exists() or not state_path.exists():
        return None
    info = orjson.loads(done.read_bytes())
    if info["fingerprint"] != fingerprint:
        return None
    state = orjson.loads(state_path.read_bytes())
    if not _stage_intact(stage, state["stage"]):
        return None
    current = _same_raw_content(raw_root, state)
    if current is None:
        return None
    if current != state["raw"]:  # same content, new stat (a copied or touched tree): no re-hashing next time
        tmp = state_path.with_name(f".{RAW_STATE}.{os.getpid()}")
        tmp.write_bytes(orjson.dumps({**state, "raw": current}))
        os.replace(tmp, state_path)
    return info["stats"]


def _stage_intact(stage: Path, recorded: dict[str, list[int]]) -> bool:
    for rel, key in recorded.items():
        try:
            if stat_key(stage / rel)[:2] != key:
                return False
        except OSError:
            return False
    return True


def _same_raw_content(raw_root: Path, state: dict[str, Any]) -> dict[str, list[int]] | None:
    """The raw files' current stat keys if they all hold the content the stage was built from, else None."""
    current = {}
    for rel, key in state["raw"].items():
        path = raw_root / rel
        try:
            now = stat_key(path)
            if now != key and state["digests"].get(rel) != sha256_file(path):
                return None
        except OSError:
            return None
        current[rel] = now
    return current


def _build_one(args: tuple[str, str, str, str, Entry, str, bool, int, MediaBudget]) -> tuple[str, str, Any]:
    """Worker: build or reuse one dataset. Returns (key, status, stats-or-message)."""
    key, raw_root_s, stage_root_s, registry_path, entry, style, use_cache, processes, budget = args
    spec = load_registry(Path(registry_path))[key]
    raw_root, stage = Path(raw_root_s), Path(stage_root_s) / key
    listing = orjson.dumps(_listing(raw_root / spec.raw_dir)).decode()
    fingerprint = hashlib.sha256((_code_fingerprint(spec, entry, style, budget) + listing).encode()).hexdigest()
    if use_cache and (stats := _cached(stage, fingerprint, raw_root)) is not None:
        return key, "reused", stats
    tmp = stage.with_name(f"{key}.tmp")
    try:
        stats = build_dataset(
            spec, raw_root, tmp, frozenset(entry.subtasks), style, entry.caps, entry.options, processes, budget
        )
    except MissingData as err:
        shutil.rmtree(tmp, ignore_errors=True)
        return key, "missing", relative_paths(str(err), [raw_root])
    except RawFormatError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        return key, "error", relative_paths(str(err), [raw_root])
    (tmp / "DONE.json").write_bytes(
        orjson.dumps({"fingerprint": fingerprint, "stats": stats}, option=orjson.OPT_INDENT_2)
    )
    shutil.rmtree(stage, ignore_errors=True)
    tmp.rename(stage)
    return key, "built", stats


def _git_state() -> dict[str, Any]:
    if not FROM_CHECKOUT:  # an installed wheel: the commit it was built from, recorded by setup.py
        return orjson.loads(BUILD_INFO.read_bytes()) if BUILD_INFO.is_file() else {"commit": "unknown", "dirty": None}
    return git_state(ROOT)


def _package_versions() -> dict[str, str]:
    versions = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _link_or_copy(src: Path, dst: Path) -> None:
    """Put a stage file into the corpus: a reflink where the file system has them, else a hard link (else a
    copy). Links are safe here: nothing writes into a finished stage file (stages are rebuilt in a new folder and
    renamed in whole; media were copied, never linked, from the raw tree), and `_cached` refuses a stage whose
    files changed size or mtime, e.g. by an edit of the corpus through the link."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if reflink(src, dst):
        return
    dst.unlink(missing_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _assemble(
    tmp: Path, stage_root: Path, results: dict[str, tuple[str, Any]], entries: list[Entry]
) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    with open(tmp / "rejects.jsonl", "wb") as rejects, open(tmp / MEDIA_DIGESTS, "wb") as media_digests:
        for entry in entries:
            status, stats = results[entry.dataset]
            if status not in ("built", "reused"):
                continue
            stage = stage_root / entry.dataset
            for split in entry.splits:
                for shard, info in stats["outputs"].get(split, {}).items():
                    rel = f"{split}/{entry.dataset}{shard[len(split) :]}"  # train-00001-of-00004.jsonl -> train/<ds>-00001-of-00004.jsonl
                    _link_or_copy(stage / shard, tmp / rel)
                    outputs[rel] = info
            with open(stage / "rejects.jsonl", "rb") as f:
                shutil.copyfileobj(f, rejects)
            if (stage / MEDIA_DIGESTS).exists():
                media_digests.write((stage / MEDIA_DIGESTS).read_bytes())
            media = stage / "media"
            for path in sorted(media.rglob("*")) if media.is_dir() else []:
                if path.is_file():
                    _link_or_copy(path, tmp / "media" / entry.dataset / path.relative_to(media))
    outputs["rejects.jsonl"] = {"sha256": sha256_file(tmp / "rejects.jsonl")}
    if (tmp / MEDIA_DIGESTS).stat().st_size:  # `sha256sum -c media.sha256` checks every media file
        outputs[MEDIA_DIGESTS] = {"sha256": sha256_file(tmp / MEDIA_DIGESTS)}
    else:
        (tmp / MEDIA_DIGESTS).unlink()
    return outputs


def build(
    raw_root: Path,
    out: Path,
    mixture_path: Path = DEFAULT_MIXTURE,
    datasets: list[str] | None = None,
    strict: bool = False,
    workers: int = 2,
    use_cache: bool = True,
    log=print,
    wait: bool = False,
) -> dict[str, Any]:
    """Build the corpus; returns the manifest. Raises BuildError on unreadable input, (strict) missing data, or an
    output another build holds (unless `wait`: then it waits for that build to end)."""
    registry = load_registry()
    mixture, entries = load_mixture(mixture_path, registry)
    if datasets:
        unknown = sorted(set(datasets) - {e.dataset for e in entries})
        if unknown:
            raise BuildError(f"datasets {unknown} are not in mixture {mixture_path}")
        entries = [e for e in entries if e.dataset in datasets]
    out = out.resolve()
    try:
        with output_lock(out, wait=wait, log=log):
            stage_root = out.with_name(f".{out.name}.stage")
            recover(out, stage_root)
            return _build_locked(
                raw_root, out, stage_root, mixture, entries, registry, strict, workers, use_cache, log
            )
    except OutputBusy as err:
        raise BuildError(str(err)) from None


def _build_locked(
    raw_root: Path,
    out: Path,
    stage_root: Path,
    mixture: Mixture,
    entries: list[Entry],
    registry: dict[str, DatasetSpec],
    strict: bool,
    workers: int,
    use_cache: bool,
    log,
) -> dict[str, Any]:
    style, budget = mixture.template_style, mixture.budget
    # `workers` processes in all: datasets in parallel, and each dataset's rendering pass split across the rest
    parallel_datasets = max(1, min(workers, len(entries)))
    per_dataset = max(1, workers // parallel_datasets)
    jobs = [
        (
            e.dataset,
            str(raw_root.resolve()),
            str(stage_root),
            str(REGISTRY_PATH),
            e,
            style,
            use_cache,
            per_dataset,
            budget,
        )
        for e in entries
    ]
    results: dict[str, tuple[str, Any]] = {}
    with (
        ProcessPoolExecutor(max_workers=parallel_datasets, **pool_initializer())
        if parallel_datasets > 1
        else contextlib.nullcontext() as pool
    ):
        for key, status, payload in (pool.map if pool else map)(_build_one, jobs):
            results[key] = (status, payload)
            log(f"  {key:<20} {status}" + (f": {payload}" if isinstance(payload, str) else ""))
    errors = [f"{k}: {p}" for k, (s, p) in results.items() if s == "error"]
    missing = [f"{k}: {p}" for k, (s, p) in results.items() if s == "missing"]
    if errors or (strict and missing):
        raise BuildError("\n".join(errors + ([f"missing (--strict): {m}" for m in missing] if strict else [])))
    tmp = temp_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        outputs = _assemble(tmp, stage_root, results, entries)
        manifest = _manifest(mixture, entries, results, outputs, registry, raw_root)
        (tmp / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        (tmp / "README.md").write_text(card.render(manifest, registry), encoding="utf-8")
        publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _manifest(
    mixture: Mixture,
    entries: list[Entry],
    results: dict[str, tuple[str, Any]],
    outputs: dict[str, Any],
    registry: dict[str, DatasetSpec],
    raw_root: Path,
) -> dict[str, Any]:
    datasets, totals, rejects = {}, dict.fromkeys(SPLITS, 0), 0
    by_task: dict[str, dict[str, int]] = {}
    by_language: dict[str, dict[str, int]] = {}
    for entry in entries:
        status, stats = results[entry.dataset]
        if status not in ("built", "reused"):
            datasets[entry.dataset] = {"status": status, "message": stats}
            continue
        reasons: dict[str, int] = {}
        for file_stats in stats["files"].values():
            for reason, n in file_stats["rejected"].items():
                reasons[reason] = reasons.get(reason, 0) + n
        derived_rejected = sum(f["derived_rejected"] for f in stats["files"].values())
        for split in entry.splits:
            totals[split] += sum(info["records"] for info in stats["outputs"].get(split, {}).values())
            for subtask, languages in stats["counts"].get(split, {}).items():
                task = registry[entry.dataset].subtasks[subtask].task
                for language, n in languages.items():
                    by_task.setdefault(task, dict.fromkeys(SPLITS, 0))[split] += n
                    by_language.setdefault(language, dict.fromkeys(SPLITS, 0))[split] += n
        rejects += stats["reject_lines"]  # one rejects.jsonl line per input row that lost a record
        datasets[entry.dataset] = {
            "status": "built",
            "subtasks": list(entry.subtasks),
            "splits": list(entry.splits),
            "weight": entry.weight,
            "split_strategy": registry[entry.dataset].splits,
            "counts": {s: c for s, c in stats["counts"].items() if s in entry.splits},
            "rejects": dict(sorted(reasons.items())),
            "derived_rejected": derived_rejected,
            "reject_lines": stats["reject_lines"],
            "capped": sum(f["capped"] for f in stats["files"].values()),
            "held_out": sum(f["held_out"] for f in stats["files"].values()),
            "visual_tokens": stats["visual_tokens"],
            "media": stats["media"],
            "files": stats["files"],
            "inputs": stats["inputs"],
        }
    families = sorted(
        {st.template for e in entries for name, st in registry[e.dataset].subtasks.items() if name in e.subtasks}
    )
    style = mixture.template_style
    return {
        "corpus": mixture.name,
        "schema_version": SCHEMA_VERSION,
        # the bundled sample by its place in the project; any other raw root is not recorded (machine-specific):
        # its inputs are named relative to it and identified by their sha256 under datasets.<key>.inputs
        "raw_root": _project_path(raw_root),
        "media_root": None,  # media paths in records are relative to the corpus folder
        "media_budget": vars(mixture.budget),
        "template_style": style,
        "templates": {f: load_template(f, style).version for f in families},
        "mixture": {
            e.dataset: {
                "subtasks": list(e.subtasks),
                "splits": list(e.splits),
                "weight": e.weight,
                "train_caps": {k: v for k, v in e.caps.items() if v is not None},
                "options": e.options,
            }
            for e in entries
        },
        "git": _git_state(),
        "packages": _package_versions(),
        "totals": {
            "records": totals,
            "rejects": rejects,
            "by_task": dict(sorted(by_task.items())),
            "by_language": dict(sorted(by_language.items())),
        },
        "datasets": datasets,
        "outputs": outputs,
    }


def _project_path(path: Path) -> str | None:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return None


def _display_path(path: Path) -> str:
    return _project_path(path) or str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--raw-root",
        type=Path,
        default=None,
        help="folder holding one sub-folder per dataset in its official layout (default: the bundled sample)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=(ROOT if FROM_CHECKOUT else Path()) / "data" / "mmaffin",
        help="output corpus folder (default: data/mmaffin in the checkout, or in the working directory when installed)",
    )
    parser.add_argument("--mixture", type=Path, default=DEFAULT_MIXTURE, help="mixture YAML")
    parser.add_argument("--datasets", default="", help="comma-separated subset of the mixture's datasets")
    parser.add_argument("--strict", action="store_true", help="a dataset missing from the raw root is an error")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="datasets built in parallel")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every dataset even if its stage is current")
    parser.add_argument(
        "--wait",
        action="store_true",
        help="if another build is writing --out, wait for it to end (default: fail at once, naming its pid)",
    )
    args = parser.parse_args(argv)
    raw_root = args.raw_root
    if raw_root is None or str(raw_root) == "":
        raw_root = SAMPLE_RAW
        print(
            f"notice: no --raw-root given; building the bundled sample data in {_display_path(SAMPLE_RAW)}",
            file=sys.stderr,
        )
    if not raw_root.is_dir():
        print(f"error: raw root {raw_root} is not a directory", file=sys.stderr)
        return 2
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] or None
    print(f"building {args.out} from {raw_root}")
    try:
        manifest = build(
            raw_root, args.out, args.mixture, datasets, args.strict, args.workers, not args.no_cache, wait=args.wait
        )
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(card.summary_table(manifest))
    print(
        f"wrote {args.out} ({sum(manifest['totals']['records'].values())} records, {manifest['totals']['rejects']} rejects)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
