"""A built corpus as training and evaluation open it: its manifest and budgets (`open_corpus`), its records in file
order (`read_records`), or a `datasets.DatasetDict` with the fixed schema (`load_corpus`).

Gold values, label spaces and provenance differ in shape between tasks (a label, a list, a number, a dict),
so those fields use the `Json` feature; everything else has a fixed type (`schema.ARROW_FEATURES`). The same
schema is written into the corpus card, so `datasets.load_dataset("<hub id>")` reads a pushed corpus alike.
`datasets` is imported only by the functions that need it: evaluation through an API does not load it.

`open_corpus` also takes the upload folder of `mmaff push-dataset` (`data/**/*.parquet` + manifest.json, no split
folders), local or the snapshot of a pushed repository: it rebuilds the corpus folder once, in
`$MMAFF_CACHE/corpora/<key>` (default `~/.cache/mmaff`), from the rows' `corpus` column (file, line, image paths,
original bytes of re-encoded images), checks every jsonl file against the manifest's sha256 and every media file
against media.sha256 (which the manifest pins), and opens that.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mmaff.data.media import MediaBudget
from mmaff.data.schema import ARROW_FEATURES, SPLITS

if TYPE_CHECKING:
    import datasets


@functools.cache
def features() -> datasets.Features:
    """The Arrow schema of a corpus record as `datasets.Features`."""
    from datasets import Features

    return Features._from_yaml_list(ARROW_FEATURES)


def _dataset_of(path: Path) -> str:
    """`<dataset>.jsonl` or a shard `<dataset>-00001-of-00004.jsonl` -> the dataset key."""
    return re.sub(r"-\d{5}-of-\d{5}$", "", path.stem)


def load_corpus(
    path: str | Path, split: str | None = None, datasets_filter: list[str] | None = None
) -> datasets.DatasetDict | datasets.Dataset:
    """Load a built corpus folder (`<split>/<dataset>.jsonl`) with the fixed schema."""
    root = Path(path)
    data_files = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            str(f) for f in split_dir.glob("*.jsonl") if not datasets_filter or _dataset_of(f) in datasets_filter
        )
        if files:
            data_files[split_dir.name] = files
    import datasets

    return datasets.load_dataset("json", data_files=data_files, features=features(), split=split)


# The parquet column of `mmaff push-dataset` rows that places each record in the corpus folder: {file, line, images,
# image_originals}. `images` in the row hold the embedded (possibly re-encoded) media, so the paths live here.
CORPUS_COLUMN = "corpus"
JSON_FIELDS = frozenset(f["name"] for f in ARROW_FEATURES if f.get("dtype") == "json")

RECORD_COLUMNS = [
    "id",
    "dataset",
    "task",
    "language",
    "modality",
    "messages",
    "images",
    "videos",
    "media",
    "visual_tokens",
]


class CorpusError(ValueError):
    """The corpus cannot be trained on as configured (missing split, unknown dataset in the mixture, ...)."""


@dataclass(frozen=True)
class Corpus:
    root: Path
    manifest: dict[str, Any]

    @property
    def budget(self) -> MediaBudget:
        return MediaBudget(**self.manifest.get("media_budget", {}))

    def split_size(self, dataset: str, split: str) -> int:
        counts = self.manifest.get("datasets", {}).get(dataset, {}).get("counts", {}).get(split, {})
        return sum(n for by_language in counts.values() for n in by_language.values())

    @property
    def weights(self) -> dict[str, float]:
        return {name: float(entry.get("weight", 1.0)) for name, entry in self.manifest.get("mixture", {}).items()}


def looks_local(path: str) -> bool:
    """A path meant as a folder here, never tried as a Hub id: starts with ./ ../ / ~ data/ or outputs/, is not
    <org>/<name>, has an existing parent folder, or anything while the Hub is offline (HF_HUB_OFFLINE=1)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if path.startswith((".", "/", "~", "data/", "outputs/")) or path.count("/") != 1:
        return True
    return Path(path).parent.is_dir()


def open_corpus(corpus: str, revision: str | None = None) -> Corpus:
    """A local corpus folder, or a Hub dataset repository holding one (downloaded into the HF cache); a folder in
    the layout of `mmaff push-dataset` (local or downloaded) opens as the corpus folder rebuilt from it."""
    root = Path(corpus).expanduser()
    if not root.exists():
        if looks_local(corpus):
            raise CorpusError(
                f"corpus {corpus}: no such folder; build it with `make build-mmaffin` (data/mmaffin) or check the "
                "path (a Hub dataset id is <org>/<name>)"
            )
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(corpus, repo_type="dataset", revision=revision))
    if is_push_folder(root):
        root = materialised_corpus(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise CorpusError(f"{root}: no manifest.json; is this a corpus built by `make build-mmaffin`?")
    return Corpus(root=root, manifest=json.loads(manifest_path.read_text(encoding="utf-8")))


def is_push_folder(root: Path) -> bool:
    """The upload folder of `mmaff push-dataset`: manifest.json and parquet shards under data/, no split jsonl."""
    return (
        (root / "manifest.json").is_file()
        and (root / "data").is_dir()
        and next((root / "data").rglob("*.parquet"), None) is not None
        and not any(next((root / split).glob("*.jsonl"), None) for split in SPLITS if (root / split).is_dir())
    )


def corpora_cache() -> Path:
    base = os.environ.get("MMAFF_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmaff"
    return Path(base).expanduser() / "corpora"


def push_folder_key(root: Path) -> str:
    """The manifest (sha256 of every jsonl file) plus each shard's name and size: cheap to compute on every open,
    and what is rebuilt from them is checked against the manifest anyway."""
    digest = hashlib.sha256((root / "manifest.json").read_bytes())
    for path in sorted((root / "data").rglob("*.parquet")):
        digest.update(f"\0{path.relative_to(root).as_posix()}\0{path.stat().st_size}".encode())
    return digest.hexdigest()[:32]


def materialised_corpus(root: Path) -> Path:
    """The corpus folder rebuilt from the push folder `root`: built once into the cache (temp folder + rename), then
    reused."""
    target = corpora_cache() / push_folder_key(root)
    if (target / "manifest.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_corpus_folder(root, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / "manifest.json").is_file():  # not another process that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _corpus_path(root: Path, rel: str, what: str) -> str:
    path = PurePosixPath(rel)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise CorpusError(f"{root}: {what} {rel!r} is not a path inside a corpus folder")
    return rel


def _record(row: dict[str, Any], place: dict[str, Any]) -> dict[str, Any]:
    """A corpus record from its parquet row: the schema's field order, Json fields parsed, no `text: null` in
    image / video message parts (the Arrow struct adds it), media named by their corpus paths."""
    record = {}
    for field in ARROW_FEATURES:
        name, value = field["name"], row[field["name"]]
        if name in JSON_FIELDS:
            value = None if value is None else json.loads(value)
        elif name == "messages":
            value = [
                {**m, "content": [{k: v for k, v in part.items() if v is not None} for part in m["content"]]}
                for m in value
            ]
        elif name == "images":
            value = place["images"]
        elif name == "videos":
            value = [video["path"] for video in value]
        record[name] = value
    return record


def write_corpus_folder(root: Path, out: Path) -> None:
    """Rebuild the corpus folder of push folder `root` in `out`: `<split>/*.jsonl` (checked against the manifest),
    media at their corpus paths, manifest.json and rejects.jsonl."""
    import orjson
    import pyarrow.parquet as pq

    from mmaff.data.stage import MEDIA_DIGESTS  # numpy: only when rebuilding

    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    lines: dict[str, dict[int, bytes]] = {}
    for shard in sorted((root / "data").rglob("*.parquet")):
        parquet = pq.ParquetFile(shard)
        if CORPUS_COLUMN not in parquet.schema_arrow.names:
            raise CorpusError(
                f"{shard}: no {CORPUS_COLUMN!r} column, so the corpus folder cannot be rebuilt; push the corpus again "
                "with this version of `mmaff push-dataset`"
            )
        for batch in parquet.iter_batches(batch_size=64):
            for row in batch.to_pylist():
                place = row[CORPUS_COLUMN]
                _write_media(root, out, row, place)
                file = _corpus_path(root, place["file"], "corpus file")
                lines.setdefault(file, {})[place["line"]] = orjson.dumps(_record(row, place)) + b"\n"
    expected = {
        rel: info for rel, info in manifest.get("outputs", {}).items() if rel.endswith(".jsonl") and "/" in rel
    }
    if sorted(lines) != sorted(expected):
        raise CorpusError(
            f"{root}: the shards hold corpus files {sorted(lines)}, the manifest lists {sorted(expected)}"
        )
    for file, by_line in lines.items():
        data = b"".join(by_line[i] for i in range(len(by_line))) if set(by_line) == set(range(len(by_line))) else b""
        if hashlib.sha256(data).hexdigest() != expected[file]["sha256"]:
            raise CorpusError(
                f"{root}: {file} rebuilt from the parquet shards differs from its sha256 in manifest.json (a shard is "
                "missing or changed); download or write the upload folder again"
            )
        (out / file).parent.mkdir(parents=True, exist_ok=True)
        (out / file).write_bytes(data)
    _check_media(root, out, manifest)
    for name in ("rejects.jsonl", MEDIA_DIGESTS, "manifest.json"):
        if (root / name).is_file():
            shutil.copyfile(root / name, out / name)


def _check_media(root: Path, out: Path, manifest: dict[str, Any]) -> None:
    """Every media file against `media.sha256`, itself pinned by the manifest (absent in a corpus without media)."""
    from mmaff.data.stage import MEDIA_DIGESTS

    digests = root / MEDIA_DIGESTS
    pinned = manifest.get("outputs", {}).get(MEDIA_DIGESTS, {}).get("sha256")
    if pinned is None:
        return
    if not digests.is_file() or hashlib.sha256(digests.read_bytes()).hexdigest() != pinned:
        raise CorpusError(f"{root}/{MEDIA_DIGESTS}: missing or not the one manifest.json pins; write the folder again")
    for line in digests.read_text(encoding="utf-8").splitlines():
        digest, rel = line.split("  ", 1)
        path = out / _corpus_path(root, rel, "media path")
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise CorpusError(f"{root}: media file {rel} is missing from the shards or differs from {MEDIA_DIGESTS}")


def _write_media(root: Path, out: Path, row: dict[str, Any], place: dict[str, Any]) -> None:
    embedded = [
        *zip(place["images"], row["images"], place["image_originals"]),
        *((video["path"], video, None) for video in row["videos"]),
    ]
    for rel, item, original in embedded:
        path = out / _corpus_path(root, rel, "media path")
        if not path.exists():  # records share media (one image, several subtasks)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(item["bytes"] if original is None else original)


def read_records(
    corpus_root: str | Path,
    split: str,
    *,
    datasets: Sequence[str] | None = None,
    modalities: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Records of one split of a built corpus (``<root>/<split>/<dataset>.jsonl``), in file order; `limit` keeps
    the first N of each dataset."""
    files = sorted((Path(corpus_root) / split).glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{corpus_root}: no {split!r} split")
    records = []
    for path in files:
        if datasets and _dataset_of(path) not in datasets:
            continue
        kept = 0
        with open(path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                if modalities and record["modality"] not in modalities:
                    continue
                if limit is not None and kept >= limit:
                    break
                records.append(record)
                kept += 1
    return records
