"""The builder contract: the one `mmaff` module a dataset builder (`data_builders/<name>.py`) imports.

A builder is a module with `build(ctx: BuildContext) -> Iterator[Example | Reject]`: it reads its raw files
through `ctx` (`find`, `track`, the readers below) and yields one `Example` per record it can make and one
`Reject` per row it cannot (`RowError` raised by a row parser becomes a reject of that row). Everything after
that (checks, duplicates, splits, caps, prompts, media copies) is the pipeline's (`mmaff.data.stage`), which
builders never import. How to add a dataset: data_builders/README.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmaff.data.media import MediaError, check_image, resolve_inside
from mmaff.data.rawio import (
    MissingData,
    RawFormatError,
    clean_text,
    content_id,
    parse_rows,
    read_csv,
    read_json_array,
    read_lines,
    read_tsv,
)
from mmaff.data.registry import DatasetSpec
from mmaff.data.schema import SPLITS, Example, Reject, RowError, excerpt

__all__ = [
    "GENERATED",
    "SPLITS",
    "BuildContext",
    "DatasetSpec",
    "Example",
    "MediaError",
    "MissingData",
    "RawFormatError",
    "Reject",
    "RowError",
    "check_image",
    "clean_text",
    "content_id",
    "excerpt",
    "parse_rows",
    "read_csv",
    "read_json_array",
    "read_lines",
    "read_tsv",
    "resolve_inside",
]

GENERATED = "generated"  # refs under this prefix name files the builder wrote into the stage


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
        checks it (containment, existence, full decode) and copies it into the corpus as media/<dataset>/<ref>."""
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
