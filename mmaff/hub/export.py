"""Export a built corpus for LLaMA-Factory: `python -m mmaff.hub.export llamafactory CORPUS OUT`.

OUT is a LLaMA-Factory `dataset_dir` that stands on its own:

    dataset_info.json            one entry per dataset x split (`meld_test`), and MMAFFBen's names where our records
                                 correspond to one of its files (`MELD_EC_test`, `semeval2018_english_test`, ...)
    <dataset>_<split>.json       sharegpt rows: `messages` (role/content, string contents), `system`, `images`,
                                 `videos`, and `id`, `dataset`, `subtask`, `language` to join predictions back
    mmaffben/<NAME>.json         the rows of a MMAFFBen-named entry, in MMAFFBen's subtask order
    media/...                    the corpus's media under the same relative paths (reflinked where the file system
                                 can, else copied: editing the export never touches the corpus)

Contents are strings: the user turn's parts joined in order, each image/video part written as LLaMA-Factory's
`<image>` / `<video>` placeholder where it stands (our prompts put the media first, as MMAFFBen's do). The system
prompt is the `system` column (declared in `columns`); media paths are relative to OUT, which LLaMA-Factory resolves
against `media_dir` (default: `dataset_dir`). Rows, files and `dataset_info.json` are written in a fixed order, so
the same corpus gives byte-identical JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mmaff.data.imports import MIXED_LANGUAGES, MMAFFBEN_FILES
from mmaff.data.schema import SPLITS
from mmaff.data.stage import reflink
from mmaff.encode.corpus import read_records

PLACEHOLDERS = {"image": "<image>", "video": "<video>"}
# MMAFFBen's split suffixes (dataset_info.json names SemEval's validation entries `_dev`, its files `_val`)
MMAFFBEN_SPLIT = {"train": "train", "validation": "val", "test": "test"}
_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}


class ExportError(ValueError):
    """A corpus or output folder the export cannot use; the message names the fix."""


def content_string(parts: list[dict[str, Any]]) -> str:
    """A message's content parts as one string, media as placeholders where they stand."""
    return "".join(PLACEHOLDERS[p["type"]] if p["type"] in PLACEHOLDERS else p["text"] for p in parts)


def sharegpt_row(record: dict[str, Any]) -> dict[str, Any]:
    messages = record["messages"]
    system = content_string(messages[0]["content"]) if messages[0]["role"] == "system" else ""
    return {
        "id": record["id"],
        "dataset": record["dataset"],
        "subtask": record["subtask"],
        "language": record["language"],
        "system": system,
        "messages": [
            {"role": m["role"], "content": content_string(m["content"])} for m in messages if m["role"] != "system"
        ],
        "images": list(record["images"]),
        "videos": list(record["videos"]),
    }


def dataset_entry(file_name: str) -> dict[str, Any]:
    columns = {"messages": "messages", "system": "system", "images": "images", "videos": "videos"}
    return {"file_name": file_name, "formatting": "sharegpt", "columns": columns, "tags": dict(_TAGS)}


def mmaffben_names(split: str) -> Iterable[tuple[str, str, str, tuple[str, ...]]]:
    """(entry name, dataset, subset, subtasks) of every MMAFFBen dataset name for one of our splits."""
    for name, kind in MMAFFBEN_FILES.items():
        if name == "CHSIMS_EI":  # dataset_info.json's alias of CHSIMS_SI: written as an alias entry below
            continue
        suffix = "dev" if name.startswith("semeval2018") and split == "validation" else MMAFFBEN_SPLIT[split]
        yield f"{name}_{suffix}", kind.dataset, kind.subset, kind.subtasks


def _mmaffben_rows(records: list[dict[str, Any]], subset: str, subtasks: tuple[str, ...]) -> list[dict[str, Any]]:
    """Our records that MMAFFBen's file holds, in its order: by subtask as listed, then corpus order."""
    order = {subtask: i for i, subtask in enumerate(subtasks)}
    chosen = [r for r in records if r["subtask"] in order and subset in (MIXED_LANGUAGES, r["subset"])]
    return [sharegpt_row(r) for r in sorted(chosen, key=lambda r: order[r["subtask"]])]


def _write_json(path: Path, rows: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _copy_media(corpus: Path, out: Path, paths: Iterable[str]) -> int:
    copied = 0
    for relative in sorted(set(paths)):
        source, target = corpus / relative, out / relative
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if not reflink(source, target):
            shutil.copyfile(source, target)
        copied += 1
    return copied


def export_llamafactory(corpus: Path, out: Path) -> dict[str, Any]:
    """Write the LLaMA-Factory dataset folder `out` from the corpus folder `corpus`; the dataset_info mapping."""
    if not (corpus / "manifest.json").is_file():
        raise ExportError(f"{corpus}: no manifest.json; give a corpus folder built by `mmaff build`")
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out}: exists and is not empty; remove it or choose another folder")
    info: dict[str, Any] = {}
    media: list[str] = []
    for split in SPLITS:
        if not (corpus / split).is_dir():
            continue
        by_dataset: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for record in read_records(corpus, split):
            by_dataset[record["dataset"]].append(record)
            media += record["images"] + record["videos"]
        for dataset, records in sorted(by_dataset.items()):
            name = f"{dataset}_{split}"
            _write_json(out / f"{name}.json", [sharegpt_row(r) for r in records])
            info[name] = dataset_entry(f"{name}.json")
        for name, dataset, subset, subtasks in mmaffben_names(split):
            rows = _mmaffben_rows(by_dataset.get(dataset, []), subset, subtasks)
            if rows:
                _write_json(out / "mmaffben" / f"{name}.json", rows)
                info[name] = dataset_entry(f"mmaffben/{name}.json")
                if name.startswith("CHSIMS_SI_"):
                    info[name.replace("CHSIMS_SI_", "CHSIMS_EI_")] = dataset_entry(f"mmaffben/{name}.json")
    if not info:
        raise ExportError(f"{corpus}: no records in {', '.join(SPLITS)}; build the corpus first")
    _copy_media(corpus, out, media)
    _write_json(out / "dataset_info.json", dict(sorted(info.items())))
    return info


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmaff export", description=__doc__.split("\n\n")[0])
    parser.add_argument("format", choices=["llamafactory"], help="export format")
    parser.add_argument("corpus", type=Path, help="built corpus folder (e.g. data/mmaffin)")
    parser.add_argument("out", type=Path, help="output folder (a LLaMA-Factory dataset_dir; must be new or empty)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        info = export_llamafactory(args.corpus, args.out)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({len(info)} dataset_info.json entries; dataset_dir={args.out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
