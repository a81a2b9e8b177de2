"""Reading a built corpus: the Arrow schema of a record and `load_corpus` over `datasets`.

Gold values, label spaces and provenance differ in shape between tasks (a label, a list, a number, a dict),
so those fields use the `Json` feature; everything else has a fixed type (`schema.ARROW_FEATURES`). The same
schema is written into the corpus card, so `datasets.load_dataset("<hub id>")` reads a pushed corpus alike.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets
from datasets import Features

from mmaff.schema import ARROW_FEATURES

FEATURES = Features._from_yaml_list(ARROW_FEATURES)


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
    return datasets.load_dataset("json", data_files=data_files, features=FEATURES, split=split)
