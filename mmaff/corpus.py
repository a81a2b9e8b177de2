"""Reading a built corpus: the Arrow schema of a record and `load_corpus` over `datasets`.

Gold values, label spaces and provenance differ in shape between tasks (a label, a list, a number, a dict),
so those fields use the `Json` feature; everything else has a fixed type. The same schema is written into
the corpus card, so `datasets.load_dataset("<hub id>")` reads a pushed corpus the same way.
"""

from __future__ import annotations

from pathlib import Path

import datasets
from datasets import Features, Json, List, Value

_CONTENT = List({"type": Value("string"), "text": Value("string")})
FEATURES = Features({
    "id": Value("string"), "dataset": Value("string"), "subset": Value("string"), "subtask": Value("string"),
    "task": Value("string"), "target_type": Value("string"), "language": Value("string"),
    "modality": Value("string"), "split": Value("string"),
    "messages": List({"role": Value("string"), "content": _CONTENT}),
    "images": List(Value("string")), "videos": List(Value("string")), "text": Value("string"),
    "gold": Json(), "given": Json(), "label_space": Json(),
    "template": {"name": Value("string"), "version": Value("int64")},
    "source": Json(),
})  # fmt: skip


def features_yaml() -> list[dict]:
    """The schema as the `dataset_info.features` list of a dataset card."""
    return FEATURES._to_yaml_list()


def load_corpus(
    path: str | Path, split: str | None = None, datasets_filter: list[str] | None = None
) -> datasets.DatasetDict | datasets.Dataset:
    """Load a built corpus folder (`<split>/<dataset>.jsonl`) with the fixed schema."""
    root = Path(path)
    data_files = {}
    for split_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(str(f) for f in split_dir.glob("*.jsonl") if not datasets_filter or f.stem in datasets_filter)
        if files:
            data_files[split_dir.name] = files
    return datasets.load_dataset("json", data_files=data_files, features=FEATURES, split=split)
