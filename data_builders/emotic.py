"""EMOTIC (Emotions in Context, Kosti et al. TPAMI 2019): people in everyday scenes, 26 emotion categories + VAD.

Source (access by request form): `Annotations/Annotations.mat` and the images under
`emotic/{ade20k,emodb_small,framesdb,mscoco}/images/...` (images directly under `<db>/images/` in the
dataset folder are accepted too; an entry's `folder` field, e.g. `mscoco/images`, is looked up in both
places, `emotic/` first).

Annotations, read in this order of preference:
  1. `Annotations/Annotations.mat` (scipy `loadmat(squeeze_me=True, struct_as_record=False)`; MATLAB v7.3
     files are HDF5 and unreadable by scipy -> RawFormatError). Struct arrays `train`, `val`, `test`; each
     image entry has `filename`, `folder`, `image_size`, `original_database` and `person` (one or more). A
     person has `body_bbox` [x1 y1 x2 y2], `annotations_categories` (train: one annotator, a struct with a
     `categories` cell of names; val/test: one struct per annotator), `annotations_continuous` (`valence`,
     `arousal`, `dominance`, ints 1-10, NaN where missing), `gender`, `age`. Val/test persons also carry the
     authors' aggregated annotation; its field names are not verified publicly, we read `combined_categories`
     (a cell of names) and `combined_continuous` (a struct, or 3 numbers). A combined field that is present
     and non-empty is used as it is; otherwise the annotators are aggregated here: the union of their
     categories, the mean of their finite V/A/D triples (`source.labels_from` records which: `annotator`,
     `combined`, `annotators`).
  2. The common CSV conversion (Tandon-A's `mat2py.py`): `train.csv`, `val.csv`, `test.csv` in the dataset
     folder (or `emotic_pre/`), columns `Index, Folder, Filename, Image Size, BBox, Categorical_Labels,
     Continuous_Labels, Gender, Age` found by header name (an extra unnamed pandas index column is fine);
     list cells are Python-list strings, parsed with `ast.literal_eval` (`nan` read as NaN), never `eval`.
     That conversion already uses the combined labels for val/test and drops persons without both label
     types, so its person numbering can differ from the .mat's. If the .mat is present the CSVs are ignored.

Records: one EC record per annotated person (multi-label over emotic26: names lower-cased, the variant
spelling "Disquitement" read as disquietment), plus a derived VAD record (`primary=False`) with each of V, A,
D (1-10) rescaled to [-1, 1] by (x - 5.5) / 4.5 and rounded to 4 decimals. A person without three finite
V/A/D values in 1..10 gets no VAD record (a reject would count as a second row of the person); its EC
record carries `source.vad = "missing"` (NaN or absent) or `"out_of_range"`. Splits are the official ones.

Target person: the image shows whom the question is about. Option `person: box` (default) draws a red
rectangle (width max(2, min(W, H) // 100) px, inside the box) on the full image; `person: crop` crops the box
with a 10% margin on each side instead. Boxes are read as 0-based pixel corners with x2/y2 exclusive (as the
common PyTorch loaders slice them), rounded to ints and clipped to the decoded image (`image_size` is not
trusted). The derived image is written as RGB JPEG (quality 90, 4:4:4 chroma so the thin red line stays red,
no EXIF: byte-deterministic for one Pillow/libjpeg) to `<split>/<source id>.jpg` under the generated media.
EXIF orientation is not applied: boxes refer to the stored pixel grid.

Ids: an entry `mscoco/images/COCO_x.jpg` with persons 1..n gives source ids `mscoco-COCO_x-p1` ... (first
folder component, file stem, 1-based person index within the entry; characters outside [A-Za-z0-9_.-]
become `_`). `source.image` keeps `<folder>/<filename>` and `source.person` the index.

Rows and lines: a CSV row is a person, cited by its line. A .mat person is cited as file
`Annotations/Annotations.mat:<split>` (the `file:part` convention) and line = the 1-based index of its image entry within that split
(persons of one entry share the line; `source.person` tells them apart).

Rejects: bad_annotation (an entry or person whose fields cannot be read), no_person (an entry without
persons), no_label (no category), label_not_in_label_set (an unknown category name), bad_label (unparsable
category cell), bad_bbox (not 4 finite numbers, x2 <= x1 or y2 <= y1, or nothing left after clipping),
bbox_outside_image (the box does not overlap the image), duplicate_id (a second person with the same
source id in one build: its image file would overwrite the first's), and from the image: unsafe_media_path,
missing_media, empty_media, undecodable_image. CSV: bad_column_count, blank_line, undecodable_bytes.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmaff.data.builder import (
    BuildContext,
    Example,
    MediaError,
    MissingData,
    RawFormatError,
    Reject,
    check_image,
    clean_text,
    excerpt,
    read_csv,
    resolve_inside,
)

MAT = "Annotations/Annotations.mat"
MAT_SPLITS = ("train", "val", "test")
CSV_DIRS = ("", "emotic_pre/")
CSV_COLUMNS = ("Folder", "Filename", "BBox", "Categorical_Labels", "Continuous_Labels")
IMAGE_ROOTS = ("emotic", "")  # where an entry's `folder` is looked up, inside the dataset folder
ALIASES = {"disquitement": "disquietment", "doubt confusion": "doubt/confusion", "doubt_confusion": "doubt/confusion"}
VAD_DIMS = ("valence", "arousal", "dominance")
RED = (255, 0, 0)
JPEG_OPTIONS = {"format": "JPEG", "quality": 90, "subsampling": 0, "optimize": False, "progressive": False}
CROP_MARGIN = 0.1
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_NAN = re.compile(r"\bnan\b", re.IGNORECASE)

Box = tuple[int, int, int, int]


@dataclass
class Person:
    """One annotated person as read from either source format."""

    split: str  # source split name: train / val / test
    file: str
    line: int
    folder: str
    filename: str
    index: int  # 1-based within its image entry
    bbox: Any
    categories: list[str]
    continuous: tuple[float, float, float] | None
    labels_from: str
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- .mat reading


def _items(value: Any) -> list[Any]:
    """A MATLAB array as a list: squeeze_me turns 1-element arrays into scalars, so scalars become [value]."""
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    return [] if value is None else [value]


def _is_struct(value: Any) -> bool:
    return hasattr(value, "_fieldnames")


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, np.ndarray):
        return value.size > 0
    if isinstance(value, str):
        return bool(value.strip())
    return True


def _names(value: Any) -> list[str]:
    """Category names from a cell (array of str, nested cells) or a single string."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, np.ndarray):
        return [name for item in value.ravel() for name in _names(item)]
    if value is None:
        return []
    raise TypeError(f"category cell holds {type(value).__name__}")


def _number(value: Any) -> float:
    """One number from a MATLAB value; an empty array ([] for "not annotated") is NaN."""
    numbers = np.asarray(value, dtype=float).ravel()
    if numbers.size > 1:
        raise ValueError(f"expected one number, got {numbers.size}")
    return float(numbers[0]) if numbers.size else math.nan


def _triple(value: Any) -> tuple[float, float, float]:
    """(valence, arousal, dominance) from a struct with those fields or from three numbers."""
    if _is_struct(value):
        return _number(value.valence), _number(value.arousal), _number(value.dominance)
    numbers = np.asarray(value, dtype=float).ravel()
    if numbers.size != 3:
        raise ValueError(f"continuous annotation has {numbers.size} values, expected 3")
    return float(numbers[0]), float(numbers[1]), float(numbers[2])


def _mean_triple(triples: list[tuple[float, float, float]]) -> tuple[float, float, float] | None:
    finite = [t for t in triples if all(math.isfinite(x) for x in t)]
    if not finite:
        return (math.nan,) * 3 if triples else None
    return tuple(sum(t[i] for t in finite) / len(finite) for i in range(3))


def _mat_labels(person: Any) -> tuple[list[str], tuple[float, float, float] | None, str]:
    """Categories, V/A/D and where they come from (`combined` fields preferred; else annotator(s))."""
    annotators = _items(getattr(person, "annotations_categories", None))
    combined = getattr(person, "combined_categories", None)
    if _present(combined):
        categories, source = _names(combined), "combined"
    else:
        names = (_names(a.categories if _is_struct(a) else a) for a in annotators)
        categories = list(dict.fromkeys(n for annotator in names for n in annotator))
        source = "annotator" if len(annotators) == 1 else "annotators"
    combined_cont = getattr(person, "combined_continuous", None)
    if _present(combined_cont):
        continuous = _triple(combined_cont)
    else:
        continuous = _mean_triple([_triple(a) for a in _items(getattr(person, "annotations_continuous", None))])
    return categories, continuous, source


def _mat_extra(person: Any) -> dict[str, Any]:
    """Gender and age when they are plain strings (or the `annotations_gender/age` structs of older files)."""
    extra = {}
    for key in ("gender", "age"):
        value = getattr(person, key, None)
        if value is None and _is_struct(getattr(person, f"annotations_{key}", None)):
            value = getattr(getattr(person, f"annotations_{key}"), key, None)
        if isinstance(value, str) and value.strip():
            extra[key] = value.strip()
    return extra


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"expected a non-empty string, got {value!r}")
    return value.strip()


def _mat_people(ctx: BuildContext, path: Path) -> Iterator[Person | Reject]:
    from scipy.io import loadmat

    rel = ctx.track(path)
    try:
        mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError as err:  # MATLAB v7.3 (HDF5)
        raise RawFormatError(rel, None, f"MATLAB v7.3 file; re-save as -v7 ({err})") from err
    except Exception as err:  # scipy raises many kinds (MatReadError, OSError, ValueError...) on damaged bytes
        raise RawFormatError(rel, None, f"not a readable .mat file ({type(err).__name__}: {err})") from err
    if not any(split in mat for split in MAT_SPLITS):
        raise RawFormatError(rel, None, f"no {list(MAT_SPLITS)} arrays, found {sorted(k for k in mat if k[0] != '_')}")
    for split in MAT_SPLITS:
        file = f"{rel}:{split}"
        for line, entry in enumerate(_items(mat.get(split)), start=1):
            try:
                folder, filename = _text(entry.folder), _text(entry.filename)
                persons = _items(entry.person)
            except (AttributeError, TypeError) as err:
                yield Reject(file, line, "bad_annotation", excerpt(repr(entry)), str(err))
                continue
            if not persons:
                yield Reject(file, line, "no_person", excerpt(f"{folder}/{filename}"))
            for index, person in enumerate(persons, start=1):
                yield _mat_person(split, file, line, folder, filename, index, person)


def _mat_person(
    split: str, file: str, line: int, folder: str, filename: str, index: int, person: Any
) -> Person | Reject:
    try:
        categories, continuous, labels_from = _mat_labels(person)
        bbox, extra = person.body_bbox, _mat_extra(person)
    except (AttributeError, TypeError, ValueError, IndexError) as err:
        return Reject(file, line, "bad_annotation", excerpt(f"{folder}/{filename} person {index}"), str(err))
    return Person(split, file, line, folder, filename, index, bbox, categories, continuous, labels_from, extra)


# ---------------------------------------------------------------- CSV reading


def _literal(cell: str) -> Any:
    """A Python-literal cell (`['Peace', 'Esteem']`, `[5, 6, nan]`); `nan` becomes NaN. ValueError if unreadable."""
    text = _NAN.sub("None", clean_text(cell))
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
        raise ValueError(f"not a Python literal: {cell[:80]!r}") from err
    if isinstance(value, (list, tuple)):
        return [math.nan if v is None else v for v in value]
    return value


def _csv_columns(rel: str, header: list[str]) -> dict[str, int]:
    names = [clean_text(c) for c in header]
    missing = [c for c in CSV_COLUMNS if c not in names]
    if missing:
        raise RawFormatError(rel, 1, f"missing columns {missing} (found {names[:10]})")
    return {name: i for i, name in enumerate(names) if name}


def _csv_person(
    split: str, rel: str, line: int, row: list[str], cols: dict[str, int], counts: dict[tuple[str, str], int]
) -> Person | Reject:
    folder, filename = clean_text(row[cols["Folder"]]), clean_text(row[cols["Filename"]])
    if not folder or not filename:
        return Reject(rel, line, "bad_annotation", excerpt(",".join(row)), "empty Folder or Filename")
    key = (folder, filename)
    counts[key] = counts.get(key, 0) + 1  # person number within the image (file order)
    try:
        categories = _literal(row[cols["Categorical_Labels"]])
        if isinstance(categories, str):
            categories = [categories]
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise ValueError(f"expected a list of names, got {categories!r}")
    except ValueError as err:
        return Reject(rel, line, "bad_label", excerpt(row[cols["Categorical_Labels"]]), str(err))
    try:
        continuous = _triple(_literal(row[cols["Continuous_Labels"]]))
    except (ValueError, TypeError):
        continuous = None
    try:
        bbox = _literal(row[cols["BBox"]])
    except ValueError:
        bbox = row[cols["BBox"]]
    extra = {k.lower(): clean_text(row[cols[k]]) for k in ("Gender", "Age") if k in cols and clean_text(row[cols[k]])}
    return Person(split, rel, line, folder, filename, counts[key], bbox, categories, continuous, "csv", extra)


def _csv_people(ctx: BuildContext, paths: dict[str, Path]) -> Iterator[Person | Reject]:
    for split, path in paths.items():
        rel = ctx.track(path)
        cols: dict[str, int] | None = None
        counts: dict[tuple[str, str], int] = {}
        for item in read_csv(path, rel, header=None):
            if isinstance(item, Reject):
                yield item
                continue
            line, row = item
            if cols is None:
                cols = _csv_columns(rel, row)
                width = len(row)
                continue
            if len(row) != width:
                yield Reject(
                    rel, line, "bad_column_count", excerpt(",".join(row)), f"{len(row)} columns, expected {width}"
                )
                continue
            yield _csv_person(split, rel, line, row, cols, counts)
        if cols is None:
            raise RawFormatError(rel, 1, f"no header row (expected the columns {list(CSV_COLUMNS)})")


def _csv_files(ctx: BuildContext) -> dict[str, Path]:
    for prefix in CSV_DIRS:
        found = {split: p for split in MAT_SPLITS for p in ctx.find(f"{prefix}{split}.csv", required=False)}
        if found:
            return found
    return {}


# ---------------------------------------------------------------- people -> examples


def map_categories(names: Iterable[str], labels: tuple[str, ...]) -> tuple[list[str] | None, list[str]]:
    """(gold in label-set order, unknown names); names are lower-cased and aliased."""
    found, unknown = set(), []
    for raw in names:
        name = " ".join(clean_text(str(raw)).lower().split())
        name = ALIASES.get(name, name)
        if name in labels:
            found.add(name)
        else:
            unknown.append(str(raw))
    return [label for label in labels if label in found], unknown


def rescale_vad(continuous: tuple[float, float, float] | None) -> tuple[dict[str, float] | None, str | None]:
    """({dim: (x - 5.5) / 4.5}, None) or (None, "missing" | "out_of_range")."""
    if continuous is None or not all(math.isfinite(x) for x in continuous):
        return None, "missing"
    if not all(1 <= x <= 10 for x in continuous):
        return None, "out_of_range"
    return {dim: round((x - 5.5) / 4.5, 4) for dim, x in zip(VAD_DIMS, continuous)}, None


def clip_box(bbox: Any, width: int, height: int) -> Box | str:
    """The box rounded and clipped to the image, or the reject reason."""
    try:
        values = [float(v) for v in np.asarray(bbox, dtype=float).ravel()]
    except (TypeError, ValueError):
        return "bad_bbox"
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        return "bad_bbox"
    x1, y1, x2, y2 = (int(round(v)) for v in values)
    if x2 <= x1 or y2 <= y1:
        return "bad_bbox"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return "bbox_outside_image"
    return max(0, x1), max(0, y1), min(width, x2), min(height, y2)


def _show(bbox: Any) -> str:
    return str(bbox.tolist()) if isinstance(bbox, np.ndarray) else repr(bbox)


def box_width(width: int, height: int) -> int:
    return max(2, min(width, height) // 100)


def target_image(image: Any, box: Box, mode: str) -> Any:
    """The full image with a red box drawn inside `box`, or the box cropped with a 10% margin."""
    from PIL import ImageDraw

    x1, y1, x2, y2 = box
    if mode == "crop":
        mx, my = round(CROP_MARGIN * (x2 - x1)), round(CROP_MARGIN * (y2 - y1))
        return image.crop((max(0, x1 - mx), max(0, y1 - my), min(image.width, x2 + mx), min(image.height, y2 + my)))
    drawn = image.copy()
    ImageDraw.Draw(drawn).rectangle((x1, y1, x2 - 1, y2 - 1), outline=RED, width=box_width(*image.size))
    return drawn


def source_id(folder: str, filename: str, index: int) -> str:
    database = _UNSAFE.sub("_", folder.replace("\\", "/").strip("/").split("/")[0])
    stem = _UNSAFE.sub("_", Path(filename).stem)
    return f"{database}-{stem}-p{index}"


class _Images:
    """Finds and decodes an entry's image once for all its persons (persons of an entry are consecutive)."""

    def __init__(self, raw_dir: Path) -> None:
        self.raw_dir = raw_dir
        self.key: tuple[str, str] | None = None
        self.value: Any = None

    def _path(self, folder: str, filename: str) -> Path:
        rel = f"{folder.strip('/')}/{filename}"
        candidates = [resolve_inside(self.raw_dir, f"{root}/{rel}" if root else rel) for root in IMAGE_ROOTS]
        return next((p for p in candidates if p.exists()), candidates[0])

    def get(self, folder: str, filename: str) -> Any:
        """A loaded RGB PIL image, or the MediaError that explains why not."""
        if self.key != (folder, filename):
            from PIL import Image

            self.key = (folder, filename)
            try:
                path = self._path(folder, filename)
                check_image(path)
                with Image.open(path) as image:
                    self.value = image.convert("RGB")
            except MediaError as err:
                self.value = err
        return self.value


def _examples(
    ctx: BuildContext, person: Person, images: _Images, seen: set[str], mode: str
) -> Iterator[Example | Reject]:
    where = excerpt(f"{person.folder}/{person.filename} person {person.index}")
    labels = ctx.spec.subtasks["EC"].label_set.labels
    gold, unknown = map_categories(person.categories, labels)
    if unknown:
        yield Reject(person.file, person.line, "label_not_in_label_set", where, f"unknown categories {unknown}")
        return
    if not gold:
        yield Reject(person.file, person.line, "no_label", where)
        return
    sid = source_id(person.folder, person.filename, person.index)
    if sid in seen:
        yield Reject(person.file, person.line, "duplicate_id", where, f"source id {sid} already used")
        return
    image = images.get(person.folder, person.filename)
    if isinstance(image, MediaError):
        yield Reject(person.file, person.line, image.reason, where, image.detail)
        return
    box = clip_box(person.bbox, *image.size)
    if isinstance(box, str):
        yield Reject(person.file, person.line, box, where, f"body_bbox {_show(person.bbox)}, image {image.size}")
        return
    seen.add(sid)
    path, ref = ctx.generated_media(f"{person.split}/{sid}.jpg")
    if ctx.wants("EC", "VAD"):
        target_image(image, box, mode).save(path, **JPEG_OPTIONS)
    vad, vad_problem = rescale_vad(person.continuous)
    split = ctx.spec.splits["map"][person.split]
    meta = {"image": f"{person.folder}/{person.filename}", "person": person.index, "box": list(box)}
    meta |= {"labels_from": person.labels_from, **person.extra}
    common = {"source_id": sid, "language": "zxx", "file": person.file, "line": person.line, "split": split}
    yield Example(
        subtask="EC", gold=gold, images=[ref], meta=meta | ({"vad": vad_problem} if vad is None else {}), **common
    )
    if vad is not None and ctx.wants("VAD"):
        yield Example(subtask="VAD", gold=vad, images=[ref], meta=meta, primary=False, **common)


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    mode = ctx.options.get("person", "box")
    if mode not in ("box", "crop"):
        raise ValueError(f"emotic: option person must be 'box' or 'crop', got {mode!r}")
    mat = ctx.find(MAT, required=False)
    if mat:
        people: Iterator[Person | Reject] = _mat_people(ctx, mat[0])
    else:
        csvs = _csv_files(ctx)
        if not csvs:
            raise MissingData(f"{ctx.raw_dir}: neither {MAT} nor train/val/test.csv (the mat2py conversion)")
        people = _csv_people(ctx, csvs)
    images, seen = _Images(ctx.raw_dir), set()
    for person in people:
        if isinstance(person, Reject):
            yield person
        else:
            yield from _examples(ctx, person, images, seen, mode)
