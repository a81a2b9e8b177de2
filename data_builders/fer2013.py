"""FER2013 (Kaggle "Challenges in Representation Learning"), optionally relabelled with FER+.

Source: `fer2013.csv`, header `emotion,pixels,Usage` (the column order is taken from the header, so the
`emotion,Usage,pixels` order of Kaggle's later `icml_face_data.csv` also reads). `emotion` is an int in
Kaggle's order (0 Angry, 1 Disgust, 2 Fear, 3 Happy, 4 Sad, 5 Surprise, 6 Neutral), mapped to the ekman7
names; `pixels` is 2304 space-separated ints 0-255, a 48x48 grayscale image in row-major order; `Usage` is
Training / PublicTest / PrivateTest, mapped through the registry's split map (test = PublicTest +
PrivateTest, as MMAFFBen). Each image is written as an 8-bit grayscale PNG (`<Usage>/<source id>.png`
under the generated media; PIL's default PNG options, byte-deterministic).

Source ids. The file has no ids. A row is named `<Usage>-<n>` with n its 0-based running index among the
rows of that Usage (5 digits, e.g. `PublicTest-00012`): the file is a fixed published release whose row
order never changes, this is the order FER+ aligns by, and the id does not move when rows of another
Usage are added or removed. Every row whose Usage is valid takes an index, whatever else is wrong with it,
so fixing a bad row never renames later rows (a row with a bad column count cannot be attributed to a
Usage and takes none; the genuine release has none).

Option `ferplus: true` also reads FER+'s `fer2013new.csv` (Microsoft/FERPlus; header `Usage,Image name,
neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF`, 10 annotators' vote counts),
whose rows align 1:1 with fer2013.csv. The label becomes the plurality vote over the eight emotion
columns plus unknown and NF; rows are rejected when the top count is shared (`ferplus_tie`), when the
winner is contempt (`ferplus_contempt`, not in ekman7) or unknown / NF (`ferplus_unknown`, also when no
vote was cast), and when the image name is empty (`ferplus_not_a_face`: FER+ marks non-faces that way).
With FER+ the source id is FER+'s own published image name without `.png` (`fer0000007`: the 0-based
row of the whole file, FER+'s stable name for the picture), so FER+ records never share ids with plain
FER2013 records, whose gold differs. FER+'s "majority" mode in its own training code also drops items
whose winner has no more than half the votes; we keep plurality winners (no tie) and record the votes in
`source.ferplus_votes`. A row-count or Usage mismatch between the two files is a RawFormatError.

Warts: many files called fer2013.csv on the web are Git LFS pointers, saved HTML pages, or FER+'s file
(the header check catches all three). Rejects (cited at the fer2013.csv line; FER+ problems name the
fer2013new.csv line in `detail`): bad_column_count, blank_line, undecodable_bytes, bad_usage, bad_label
(emotion not 0-6), bad_pixels (not 2304 ints in 0..255), ferplus_not_a_face, ferplus_contempt,
ferplus_unknown, ferplus_tie, ferplus_bad_votes, ferplus_bad_image_name, ferplus_bad_row (a FER+ row
that its own reader rejected).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmaff.data.builder import BuildContext, Example, RawFormatError, Reject, clean_text, excerpt, read_csv

SIDE = 48
PIXELS = SIDE * SIDE
COLUMNS = ("emotion", "pixels", "Usage")
KAGGLE_EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")  # ekman7 names
FERPLUS_HEADER = [
    "Usage", "Image name", "neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear",
    "contempt", "unknown", "NF",
]  # fmt: skip
FERPLUS_VOTES = FERPLUS_HEADER[2:]
FERPLUS_REJECTS = {"contempt": "ferplus_contempt", "unknown": "ferplus_unknown", "NF": "ferplus_unknown"}
_IMAGE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.png$")
_PIXELS = re.compile(rf"\s*[0-9]{{1,3}}(?:\s+[0-9]{{1,3}}){{{PIXELS - 1}}}\s*", re.ASCII)

Row = tuple[int, list[str]]


def _columns(rel: str, header: list[str]) -> tuple[int, int, int]:
    """Positions of emotion, pixels and Usage from the header row."""
    found = [clean_text(c) for c in header]
    if sorted(found) != sorted(COLUMNS):
        raise RawFormatError(rel, 1, f"expected the columns {list(COLUMNS)} (any order), found {found[:5]}")
    return found.index("emotion"), found.index("pixels"), found.index("Usage")


def parse_pixels(raw: str) -> np.ndarray | None:
    """The 48x48 uint8 image of a pixel string, or None unless it is exactly 2304 ints in 0..255."""
    if _PIXELS.fullmatch(raw) is None:  # count, and plain ASCII digits (no signs, "1_0", "1.0" or other scripts)
        return None
    try:
        data = bytes(map(int, raw.split()))  # ValueError above 255
    except ValueError:
        return None
    return np.frombuffer(data, dtype=np.uint8).reshape(SIDE, SIDE)


def write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(image).save(path, format="PNG")  # a 2-D uint8 array gives mode "L"


def ferplus_label(votes: list[int]) -> tuple[str | None, str | None]:
    """(ekman7 name, None) for a plurality winner, or (None, reject reason)."""
    top = max(votes)
    winners = [name for name, count in zip(FERPLUS_VOTES, votes) if count == top]
    if top == 0:
        return None, "ferplus_unknown"
    if len(winners) > 1:
        return None, "ferplus_tie"
    winner = winners[0]
    if winner in FERPLUS_REJECTS:
        return None, FERPLUS_REJECTS[winner]
    return winner, None


@dataclass
class _FerPlus:
    """FER+'s rows, held whole (35,887 short rows) and consumed in step with fer2013.csv."""

    rel: str
    rows: list[Row | Reject]

    @classmethod
    def read(cls, ctx: BuildContext) -> _FerPlus:
        (path,) = ctx.find("fer2013new.csv")
        rel = ctx.track(path)
        return cls(rel, list(read_csv(path, rel, header=FERPLUS_HEADER)))

    def aligned(self, index: int, fer_rel: str) -> Row | Reject:
        """The FER+ row of the index-th (0-based) data row of fer2013.csv."""
        if index >= len(self.rows):
            raise RawFormatError(self.rel, None, f"{len(self.rows)} rows but {fer_rel} has more")
        return self.rows[index]

    def relabel(self, item: Row | Reject, usage: str) -> tuple[str, str, dict[str, int]] | Reject:
        """(ekman7 name, image stem, votes) from an aligned FER+ row, or a Reject (file and line set by the caller)."""
        if isinstance(item, Reject):
            return Reject("", 0, "ferplus_bad_row", item.excerpt, f"{self.rel}:{item.line}: {item.reason}")
        line, row = item
        where = f"{self.rel}:{line}"
        if clean_text(row[0]) != usage:
            raise RawFormatError(self.rel, line, f"Usage {row[0]!r} but fer2013.csv has {usage!r}: files not aligned")
        name = clean_text(row[1])
        if not name:
            return Reject("", 0, "ferplus_not_a_face", "", where)
        if not _IMAGE_NAME.match(name):
            return Reject("", 0, "ferplus_bad_image_name", excerpt(name), where)
        cells = [clean_text(c) for c in row[2:]]
        if not all(c.isascii() and c.isdigit() for c in cells):
            return Reject("", 0, "ferplus_bad_votes", excerpt(",".join(row)), where)
        votes = [int(c) for c in cells]
        label, reason = ferplus_label(votes)
        if reason:
            return Reject("", 0, reason, excerpt(",".join(row)), where)
        return label, name.removesuffix(".png"), dict(zip(FERPLUS_VOTES, votes))


@dataclass
class _Rows:
    """Turns fer2013.csv data rows into examples (writing their PNGs) or rejects."""

    ctx: BuildContext
    rel: str
    columns: tuple[int, int, int]
    ferplus: _FerPlus | None
    counters: Counter[str] = field(default_factory=Counter)  # rows seen per Usage: the n of `<Usage>-<n>`

    def convert(self, item: Row, aligned: Row | Reject | None) -> Example | Reject:
        line, row = item
        raw_emotion, raw_pixels, raw_usage = (row[i] for i in self.columns)
        short = excerpt(f"{raw_emotion},{raw_pixels[:40]}…,{raw_usage}")
        split_map: dict[str, str] = self.ctx.spec.splits["map"]
        usage = clean_text(raw_usage)
        if usage not in split_map:
            return Reject(self.rel, line, "bad_usage", short, f"Usage {raw_usage!r}")
        source_id = f"{usage}-{self.counters[usage]:05d}"
        self.counters[usage] += 1
        emotion = clean_text(raw_emotion)
        if not (emotion.isascii() and emotion.isdigit() and int(emotion) < len(KAGGLE_EMOTIONS)):
            return Reject(self.rel, line, "bad_label", short, f"emotion {raw_emotion!r}")
        image = parse_pixels(raw_pixels)
        if image is None:
            count = len(raw_pixels.split())
            detail = (
                f"{count} values, expected {PIXELS}" if count != PIXELS else "a value that is not an int in 0..255"
            )
            return Reject(self.rel, line, "bad_pixels", short, detail)
        gold = KAGGLE_EMOTIONS[int(emotion)]
        meta: dict[str, object] = {"usage": usage}
        if self.ferplus is not None and aligned is not None:
            relabelled = self.ferplus.relabel(aligned, usage)
            if isinstance(relabelled, Reject):
                return Reject(self.rel, line, relabelled.reason, relabelled.excerpt or short, relabelled.detail)
            meta = {"usage": usage, "fer2013_label": gold, "ferplus_votes": relabelled[2]}
            gold, source_id = relabelled[0], relabelled[1]
        target, ref = self.ctx.generated_media(f"{usage}/{source_id}.png")
        if self.ctx.wants("EC"):
            write_png(target, image)
        return Example(
            source_id=source_id,
            subtask="EC",
            language="zxx",
            gold=gold,
            file=self.rel,
            line=line,
            split=split_map[usage],
            images=[ref],
            meta=meta,
        )


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    (path,) = ctx.find("fer2013.csv")
    rel = ctx.track(path)
    ferplus = _FerPlus.read(ctx) if ctx.options.get("ferplus") else None
    rows: _Rows | None = None
    index = -1  # 0-based data row, for the 1:1 alignment with FER+
    for item in read_csv(path, rel, header=None, columns=3):
        if rows is None:
            if isinstance(item, Reject) or item[0] != 1:
                raise RawFormatError(rel, 1, "no header line `emotion,pixels,Usage`")
            rows = _Rows(ctx, rel, _columns(rel, item[1]), ferplus)
            continue
        index += 1
        aligned = ferplus.aligned(index, rel) if ferplus is not None else None
        yield item if isinstance(item, Reject) else rows.convert(item, aligned)
    if rows is None:
        raise RawFormatError(rel, 1, "empty file (no header line `emotion,pixels,Usage`)")
    if ferplus is not None and index + 1 != len(ferplus.rows):
        raise RawFormatError(ferplus.rel, None, f"{len(ferplus.rows)} rows but {rel} has {index + 1}")
