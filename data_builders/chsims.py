"""CH-SIMS (Yu et al., ACL 2020): Chinese video clips with overall and unimodal sentiment labels.

Source: the THUIAR links in github.com/thuiar/MMSA (Baidu Yun / Google Drive), folder `SIMS/`. Layout under
the raw folder (`<raw_root>/chsims`), either directly or inside `SIMS/` as distributed:

    label.csv
    Raw/<video_id>/<clip_id as 4 digits>.mp4        e.g. Raw/video_0001/0001.mp4

Format: `label.csv`, UTF-8 (a BOM is tolerated), header `video_id,clip_id,text,label,label_T,label_A,
label_V,annotation,mode`. `label` is the overall sentiment, the mean of five annotators' -1/0/1 votes: a
multiple of 0.2 in [-1, 1]; label_T / _A / _V are the text-, audio- and vision-only labels; `annotation`
is Negative / Neutral / Positive; `mode` is the official split train / valid / test (mapped by the
registry). `clip_id` is an integer in the CSV (1) while the file name is zero-padded (0001.mp4); an
already padded id is accepted too.

Warts handled:
  - Polarity is not a column: SP is the sign of `label` (< 0 negative, 0 neutral, > 0 positive). Where
    `annotation` disagrees with that sign the sign wins (it is what the SI gold says) and
    `annotation_disagrees: true` is added to the source metadata; `annotation` is always kept there.
  - Float noise in `label` ("-0.6000000001") is tolerated within 1e-6 of a multiple of 0.2; the gold is
    the value rounded to one decimal (MMAFFBen's SI answers are these 11 values).
  - Media are not probed here: a missing, empty or broken clip is the pipeline's reject at the CSV row.
  - Transcripts are not used for duplicate detection (the pipeline's rule for media datasets): short lines recur across
    different clips, and the clip, not the line, is the input.

Records, per row: SP (polarity3), SI (real in [-1, 1]) and the joint SP+SI (gold {"SP": ..., "SI": ...}).
The first wanted of SP, SI, SP+SI is the row's primary record, the others are derived (`primary=False`).
Source id `<video_id>_<clip_id:04d>`. Source metadata: video_id, clip_id, annotation, label_T, label_A,
label_V (numbers when they parse, else the text as written).

Rejects: bad_column_count / blank_line / undecodable_bytes (reader), bad_id (video_id not a plain folder
name, clip_id not a non-negative integer), bad_split (mode not in the split map), empty_text, bad_score
(label not a number, outside [-1, 1], or not a multiple of 0.2).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmaff.data.builder import (
    BuildContext,
    Example,
    MissingData,
    RawFormatError,
    Reject,
    RowError,
    clean_text,
    parse_rows,
    read_csv,
)

HEADER = ["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode"]
LABEL_FILE = "label.csv"
NESTED_DIR = "SIMS"
MEDIA_DIR = "Raw"
STEP, TOLERANCE = 0.2, 1e-6
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]*$")
_CLIP_ID = re.compile(r"^[0-9]+$")
# a row's start (video_id,clip_id,): a later line of a multi-line transcript like it is a swallowed row
WHOLE_ROW = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*,[0-9]+,.*")
_ANNOTATIONS = {"negative": "negative", "neutral": "neutral", "positive": "positive"}


@dataclass(frozen=True)
class Clip:
    """One parsed label.csv row."""

    video_id: str
    clip_id: int
    text: str
    score: float  # overall label rounded to one decimal
    split: str  # registry split
    annotation: str
    unimodal: dict[str, float | str]

    @property
    def source_id(self) -> str:
        return f"{self.video_id}_{self.clip_id:04d}"

    @property
    def media_path(self) -> str:
        return f"{MEDIA_DIR}/{self.video_id}/{self.clip_id:04d}.mp4"

    @property
    def polarity(self) -> str:
        return "negative" if self.score < 0 else "positive" if self.score > 0 else "neutral"

    def meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"video_id": self.video_id, "clip_id": self.clip_id, "annotation": self.annotation}
        if _ANNOTATIONS.get(self.annotation.lower(), self.polarity) != self.polarity:
            meta["annotation_disagrees"] = True
        return meta | self.unimodal


def parse_score(value: str) -> float:
    """The overall label rounded to one decimal; RowError("bad_score") unless it is a multiple of 0.2 in [-1, 1]."""
    value = value.strip()
    number = float(value) if _NUMBER.match(value) else math.nan
    if not math.isfinite(number):
        raise RowError("bad_score", f"label {value!r} is not a number")
    if not -1 - TOLERANCE <= number <= 1 + TOLERANCE:
        raise RowError("bad_score", f"label {number} outside [-1, 1]")
    steps = round(number / STEP)
    if abs(number - steps * STEP) > TOLERANCE:
        raise RowError("bad_score", f"label {number} is not a multiple of {STEP}")
    return round(steps * STEP, 1) + 0.0  # + 0.0 turns -0.0 into 0.0


def _unimodal(value: str) -> float | str:
    value = value.strip()
    return float(value) if _NUMBER.match(value) else value


def parse_row(fields: list[str], split_map: dict[str, str]) -> Clip:
    """One label.csv row as a Clip; raises RowError(reason) for a bad row."""
    video_id, clip_id, text, label, label_t, label_a, label_v, annotation, mode = (f.strip() for f in fields)
    if not _VIDEO_ID.match(video_id) or video_id in (".", ".."):
        raise RowError("bad_id", f"video_id {video_id!r}")
    if not _CLIP_ID.match(clip_id):
        raise RowError("bad_id", f"clip_id {clip_id!r} is not a non-negative integer")
    if mode not in split_map:
        raise RowError("bad_split", f"mode {mode!r} is not one of {sorted(split_map)}")
    text = clean_text(text)
    if not text:
        raise RowError("empty_text")
    return Clip(
        video_id=video_id,
        clip_id=int(clip_id),
        text=text,
        score=parse_score(label),
        split=split_map[mode],
        annotation=annotation,
        unimodal={"label_T": _unimodal(label_t), "label_A": _unimodal(label_a), "label_V": _unimodal(label_v)},
    )


def _label_file(ctx: BuildContext) -> Path:
    """label.csv in the raw folder or in SIMS/ inside it (not both)."""
    found = [p for p in (ctx.raw_dir / LABEL_FILE, ctx.raw_dir / NESTED_DIR / LABEL_FILE) if p.is_file()]
    if not found:
        raise MissingData(f"{ctx.raw_dir}: no {LABEL_FILE} (nor {NESTED_DIR}/{LABEL_FILE})")
    if len(found) > 1:
        names = ", ".join(p.relative_to(ctx.raw_root).as_posix() for p in found)
        raise RawFormatError(found[0], None, f"two copies of the labels ({names}); keep one")
    return found[0]


def _examples(ctx: BuildContext, clip: Clip, rel: str, line: int, video: str) -> Iterator[Example]:
    """The row's records, SP / SI / SP+SI as wanted (the first is the row's primary record)."""
    tasks = ctx.spec.subtasks
    golds = {"SP": clip.polarity, "SI": clip.score,
             "SP+SI": {tasks["SP"].task: clip.polarity, tasks["SI"].task: clip.score}}  # fmt: skip
    yield from ctx.row_examples(golds, source_id=clip.source_id, language=ctx.spec.languages[0], file=rel,
                                line=line, text=clip.text, split=clip.split, meta=clip.meta(), videos=[video])  # fmt: skip


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    path = _label_file(ctx)
    rel = ctx.track(path)
    base = path.parent.relative_to(ctx.raw_dir)
    split_map = ctx.spec.splits["map"]
    for item in parse_rows(
        read_csv(path, rel, HEADER, multiline=True, row_pattern=WHOLE_ROW),
        rel,
        lambda fields: parse_row(fields, split_map),
    ):
        if isinstance(item, Reject):
            yield item
            continue
        line, clip = item
        yield from _examples(ctx, clip, rel, line, ctx.media_ref((base / clip.media_path).as_posix()))
