"""Build an instruction corpus from raw dataset files: `make build-mmaffin` / `mmaff-build`.

    python -m mmaff.build [--raw-root DIR] [--datasets a,b] [--out data/mmaffin]
                          [--mixture data_builders/mixtures/mmaffin.yaml] [--strict] [--workers N] [--no-cache]

Each dataset is built into a staging folder next to the output (`.<out>.stage/<dataset>/`, reused when its
code, config and input files are unchanged, so an interrupted build resumes). The corpus is assembled in a
temporary folder and swapped in by rename: a failed build leaves the previous corpus untouched.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import yaml

from mmaff import card
from mmaff.media import MediaBudget
from mmaff.rawio import MissingData, RawFormatError
from mmaff.registry import REGISTRY_PATH, DatasetSpec, load_registry
from mmaff.schema import SPLITS
from mmaff.stage import build_dataset, sha256_file
from mmaff.templates import load_template

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RAW = ROOT / "data_builders" / "sample_raw"
DEFAULT_MIXTURE = ROOT / "data_builders" / "mixtures" / "mmaffin.yaml"
SCHEMA_VERSION = 1
_PACKAGES = ("mmaff", "pyyaml", "jinja2", "orjson", "numpy", "pyarrow", "tqdm")


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class Entry:
    """One mixture line: a dataset, the subtasks and splits taken from it, a train cap and a sampling weight."""

    dataset: str
    subtasks: tuple[str, ...]
    splits: tuple[str, ...]
    weight: float
    caps: dict[str, int | None]
    options: dict[str, Any]


_ENTRY_KEYS = {"subtasks", "splits", "weight", "train_cap_per_language", "train_caps", "options"}


def load_mixture(path: Path, registry: dict[str, DatasetSpec]) -> tuple[dict[str, Any], list[Entry]]:
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as err:
        raise BuildError(f"cannot read mixture {path}: {err}") from err
    if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), dict):
        raise BuildError(f"{path}: a mixture needs a `datasets:` mapping")
    entries = []
    for key, cfg in raw["datasets"].items():
        if key not in registry:
            raise BuildError(f"{path}: unknown dataset {key!r} (not in data_builders/registry.yaml)")
        cfg = cfg or {}
        if set(cfg) - _ENTRY_KEYS:
            raise BuildError(
                f"{path}: {key}: unknown keys {sorted(set(cfg) - _ENTRY_KEYS)} (allowed: {sorted(_ENTRY_KEYS)})"
            )
        if set(cfg.get("splits", SPLITS)) - set(SPLITS):
            raise BuildError(f"{path}: {key}: splits must be among {list(SPLITS)}")
        subtasks = tuple(cfg.get("subtasks") or registry[key].subtasks)
        unknown = [s for s in subtasks if s not in registry[key].subtasks]
        if unknown:
            raise BuildError(f"{path}: {key}: unknown subtasks {unknown}")
        cap = cfg.get("train_cap_per_language")
        caps = {s: cap for s in subtasks} | dict(cfg.get("train_caps", {}))
        entries.append(
            Entry(
                key,
                subtasks,
                tuple(cfg.get("splits", SPLITS)),
                float(cfg.get("weight", 1.0)),
                caps,
                dict(cfg.get("options", {})),
            )
        )
    return raw, entries


def media_budget(mixture: dict[str, Any]) -> MediaBudget:
    """The mixture's `media_budget:` overrides of MediaBudget (MMAFFBen's budgets by default)."""
    cfg = mixture.get("media_budget") or {}
    unknown = set(cfg) - set(MediaBudget.__dataclass_fields__)
    if unknown:
        raise BuildError(
            f"media_budget: unknown keys {sorted(unknown)} (allowed: {sorted(MediaBudget.__dataclass_fields__)})"
        )
    return MediaBudget(**cfg)


def _code_fingerprint(spec: DatasetSpec, entry: Entry, style: str, budget: MediaBudget) -> str:
    """Hash of everything except input bytes that decides a dataset's output."""
    digest = hashlib.sha256()
    # all builders, not just this one: a builder may import helpers from another
    sources = (
        sorted((ROOT / "mmaff").glob("*.py"))
        + sorted((ROOT / "data_builders").glob("*.py"))
        + [ROOT / "data_builders" / "registry.yaml"]
    )
    sources += sorted((ROOT / "templates" / style).glob("*.yaml"))
    for path in sources:
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(repr((entry, style, budget, SCHEMA_VERSION)).encode())
    return digest.hexdigest()


def _listing(raw_dir: Path) -> list[list[Any]]:
    if not raw_dir.is_dir():
        return []
    return sorted([p.relative_to(raw_dir).as_posix(), p.stat().st_size] for p in raw_dir.rglob("*") if p.is_file())


def _cached(stage: Path, fingerprint: str, raw_root: Path) -> dict[str, Any] | None:
    done = stage / "DONE.json"
    if not done.exists():
        return None
    info = orjson.loads(done.read_bytes())
    if info["fingerprint"] != fingerprint:
        return None
    for rel, meta in info["stats"]["inputs"].items():
        path = raw_root / rel
        if not path.exists() or path.stat().st_size != meta["bytes"] or sha256_file(path) != meta["sha256"]:
            return None
    return info["stats"]


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
            spec, raw_root, tmp, frozenset(entry.subtasks), style, entry.caps, entry.options, processes
        )
    except MissingData as err:
        shutil.rmtree(tmp, ignore_errors=True)
        return key, "missing", str(err)
    except RawFormatError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        return key, "error", str(err)
    (tmp / "DONE.json").write_bytes(
        orjson.dumps({"fingerprint": fingerprint, "stats": stats}, option=orjson.OPT_INDENT_2)
    )
    shutil.rmtree(stage, ignore_errors=True)
    tmp.rename(stage)
    return key, "built", stats


def _git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "HEAD"),
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        }
    except (OSError, subprocess.CalledProcessError):
        return {"commit": "unknown", "dirty": None}


def _package_versions() -> dict[str, str]:
    versions = {"python": ".".join(map(str, sys.version_info[:3]))}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _assemble(
    tmp: Path, stage_root: Path, results: dict[str, tuple[str, Any]], entries: list[Entry]
) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    with open(tmp / "rejects.jsonl", "wb") as rejects:
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
            media = stage / "media"
            for path in sorted(media.rglob("*")) if media.is_dir() else []:
                if path.is_file():
                    _link_or_copy(path, tmp / "media" / entry.dataset / path.relative_to(media))
    outputs["rejects.jsonl"] = {"sha256": sha256_file(tmp / "rejects.jsonl")}
    return outputs


def _publish(tmp: Path, out: Path) -> None:
    """Swap `tmp` in as `out`; the old corpus survives (as .old) until the new one is in place."""
    backup = out.with_name(f".{out.name}.old")
    if backup.exists():
        if out.exists():
            shutil.rmtree(backup)
        else:
            backup.rename(out)
    if out.exists():
        out.rename(backup)
    tmp.rename(out)
    shutil.rmtree(backup, ignore_errors=True)


def build(
    raw_root: Path,
    out: Path,
    mixture_path: Path = DEFAULT_MIXTURE,
    datasets: list[str] | None = None,
    strict: bool = False,
    workers: int = 2,
    use_cache: bool = True,
    log=print,
) -> dict[str, Any]:
    """Build the corpus; returns the manifest. Raises BuildError on unreadable input or (strict) missing data."""
    registry = load_registry()
    mixture, entries = load_mixture(mixture_path, registry)
    if datasets:
        unknown = sorted(set(datasets) - {e.dataset for e in entries})
        if unknown:
            raise BuildError(f"datasets {unknown} are not in mixture {mixture_path}")
        entries = [e for e in entries if e.dataset in datasets]
    style, budget = mixture.get("template_style", "mmaffben"), media_budget(mixture)
    out = out.resolve()
    stage_root = out.with_name(f".{out.name}.stage")
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
        ProcessPoolExecutor(max_workers=parallel_datasets)
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
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        outputs = _assemble(tmp, stage_root, results, entries)
        manifest = _manifest(mixture, entries, results, outputs, registry, raw_root, style)
        (tmp / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        (tmp / "README.md").write_text(card.render(manifest, registry), encoding="utf-8")
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _manifest(
    mixture: dict[str, Any],
    entries: list[Entry],
    results: dict[str, tuple[str, Any]],
    outputs: dict[str, Any],
    registry: dict[str, DatasetSpec],
    raw_root: Path,
    style: str,
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
        rejects += sum(reasons.values()) + derived_rejected
        datasets[entry.dataset] = {
            "status": "built",
            "subtasks": list(entry.subtasks),
            "splits": list(entry.splits),
            "weight": entry.weight,
            "split_strategy": registry[entry.dataset].splits,
            "counts": {s: c for s, c in stats["counts"].items() if s in entry.splits},
            "rejects": dict(sorted(reasons.items())),
            "derived_rejected": derived_rejected,
            "capped": sum(f["capped"] for f in stats["files"].values()),
            "visual_tokens": stats["visual_tokens"],
            "media": stats["media"],
            "files": stats["files"],
            "inputs": stats["inputs"],
        }
    families = sorted(
        {st.template for e in entries for name, st in registry[e.dataset].subtasks.items() if name in e.subtasks}
    )
    return {
        "corpus": mixture.get("name", "mmaffin"),
        "schema_version": SCHEMA_VERSION,
        "raw_root": _display_path(raw_root),
        "media_root": None,  # media paths in records are relative to the corpus folder
        "media_budget": vars(media_budget(mixture)),
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


def _display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


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
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "mmaffin", help="output corpus folder")
    parser.add_argument("--mixture", type=Path, default=DEFAULT_MIXTURE, help="mixture YAML")
    parser.add_argument("--datasets", default="", help="comma-separated subset of the mixture's datasets")
    parser.add_argument("--strict", action="store_true", help="a dataset missing from the raw root is an error")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="datasets built in parallel")
    parser.add_argument("--no-cache", action="store_true", help="rebuild every dataset even if its stage is current")
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
        manifest = build(raw_root, args.out, args.mixture, datasets, args.strict, args.workers, not args.no_cache)
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
