"""A built corpus as training and evaluation open it: its manifest and budgets (`open_corpus`), its records in file
order (`read_records`), or a `datasets.DatasetDict` with the fixed schema (`load_corpus`).

Gold values, label spaces and provenance differ in shape between tasks (a label, a list, a number, a dict),
so those fields use the `Json` feature; everything else has a fixed type (`schema.ARROW_FEATURES`). The same
schema is written into the corpus card, so `datasets.load_dataset("<hub id>")` reads a pushed corpus alike.
`datasets` is imported only by the functions that need it: evaluation through an API does not load it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmaff.data.media import MediaBudget
from mmaff.data.schema import ARROW_FEATURES

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
    """A local corpus folder, or a Hub dataset repository holding one (downloaded into the HF cache)."""
    root = Path(corpus).expanduser()
    if not root.exists():
        if looks_local(corpus):
            raise CorpusError(
                f"corpus {corpus}: no such folder; build it with `make build-mmaffin` (data/mmaffin) or check the "
                "path (a Hub dataset id is <org>/<name>)"
            )
        from huggingface_hub import snapshot_download

        root = Path(snapshot_download(corpus, repo_type="dataset", revision=revision))
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise CorpusError(f"{root}: no manifest.json; is this a corpus built by `make build-mmaffin`?")
    return Corpus(root=root, manifest=json.loads(manifest_path.read_text(encoding="utf-8")))


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
