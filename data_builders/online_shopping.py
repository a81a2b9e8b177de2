"""online_shopping_10_cats (SophonPlus/ChineseNlpCorpus): 62,774 Chinese product reviews in 10 categories.

Layout: `online_shopping_10_cats.csv`, or the distributed `online_shopping_10_cats.zip` holding that one CSV
(read from the zip without unpacking it into the raw folder; rejects then name `<zip>:<member>`). If both are
present the CSV is used. UTF-8 CSV, header `cat,label,review`; label 1 = positive, 0 = negative.
Warts: U+FEFF inside the first field after the header (and inside ~20 other reviews), one empty review,
exact duplicate rows and same-text/different-label rows; rows grouped by category. No official split and no
source ids: the id is a content hash (sha1 of cat, label, review), the split is seeded.
Rejects: unbalanced_quote (a quoted field running over lines: the source has none), bad column count, empty review (empty_text), label not 0/1 (bad_label); the pipeline rejects exact
duplicate rows (duplicate_id) and repeated texts (duplicate_text).
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from mmaff.data.builder import BuildContext, Example, RawFormatError, Reject, clean_text, content_id, excerpt, read_csv

CSV_NAME = "online_shopping_10_cats.csv"
ZIP_NAME = "online_shopping_10_cats.zip"
HEADER = ["cat", "label", "review"]
POLARITY = {"0": "negative", "1": "positive"}


def _zip_member(path: Path, rel: str) -> str:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise RawFormatError(rel, None, f"not a readable zip ({err})") from err
    members = [n for n in names if n.endswith(".csv") and not n.startswith("__MACOSX/")]
    if len(members) != 1:
        raise RawFormatError(rel, None, f"expected one CSV member, found {members}")
    return members[0]


def _zip_rows(path: Path, member: str, file: str) -> Iterator[tuple[int, list[str]] | Reject]:
    """Rows of a zip's CSV member, parsed by rawio.read_csv (which takes a path) from a temporary copy."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "member.csv"
        try:
            with zipfile.ZipFile(path) as archive, archive.open(member) as src, open(copy, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as err:
            raise RawFormatError(file, None, f"damaged zip member ({type(err).__name__}: {err})") from err
        yield from read_csv(copy, file, HEADER)


def _rows(ctx: BuildContext) -> tuple[str, Iterator[tuple[int, list[str]] | Reject]]:
    """(file name used in records and rejects, rows) of the CSV, or of the zip's member if there is no CSV."""
    path = ctx.find(CSV_NAME, ZIP_NAME)[0]  # sorted: the .csv comes before the .zip
    rel = ctx.track(path)
    if path.name == CSV_NAME:
        return rel, read_csv(path, rel, HEADER)
    member = _zip_member(path, rel)
    return f"{rel}:{member}", _zip_rows(path, member, f"{rel}:{member}")


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    file, rows = _rows(ctx)
    for item in rows:
        if isinstance(item, Reject):
            yield item
            continue
        line, (raw_cat, raw_label, raw_review) = item
        cat, label, review = clean_text(raw_cat), clean_text(raw_label), clean_text(raw_review)
        if label not in POLARITY:
            yield Reject(file, line, "bad_label", excerpt(raw_label), f"label {raw_label!r} is not 0 or 1")
            continue
        if not review:
            yield Reject(file, line, "empty_text", excerpt(",".join(item[1])))
            continue
        yield Example(
            source_id=content_id(cat, label, review),
            subtask="SP",
            language="zh",
            gold=POLARITY[label],
            file=file,
            line=line,
            text=review,
            meta={"category": cat},
        )
