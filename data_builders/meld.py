"""MELD, the Multimodal EmotionLines Dataset (Poria et al., ACL 2019): Friends utterances as video clips.

Source: annotations `data/MELD/{train,dev,test}_sent_emo.csv` of github.com/declare-lab/MELD; clips from
`MELD.Raw.tar.gz` (its train/dev/test tarballs unpack to `train_splits/`, `dev_splits_complete/` and
`output_repeated_splits_test/`). Layout under the raw folder (`<raw_root>/meld`), also accepted one level
down in `MELD.Raw/` (as the tarball unpacks):

    train_sent_emo.csv  dev_sent_emo.csv  test_sent_emo.csv     (any of them may be absent, not all)
    train_splits/dia{D}_utt{U}.mp4  dev_splits_complete/...  output_repeated_splits_test/...

Format: UTF-8, CRLF, header `Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,
Episode,StartTime,EndTime`; times are SRT-style and quoted because of their comma ("00:16:16,059"). Each
row is one utterance whose clip is `dia{Dialogue_ID}_utt{Utterance_ID}.mp4` in the split's clip folder.
Official splits train / dev / test (mapped by the registry).

Warts handled:
  - Utterances hold curly quotes and ellipses (’ … —): kept as they are (only CR and outer space go).
  - Some rows use a one-digit hour ("0:36:59,425"); times are normalised to "HH:MM:SS,mmm" in the
    record's source metadata (an unparsable time is kept as written: the clip, not the time, is the input).
  - Dialogue ids restart in every split file, so the source id carries the split: `train-dia3_utt1`.
  - Known broken media (dev lacks dia110_utt7.mp4, train's dia125_utt3.mp4 is truncated, some clips are
    empty) are not probed here: the pipeline rejects the record (`missing_media`, `undecodable_video`,
    `empty_media`, ...) at the CSV row. Clips without an annotation row (`final_videos_testdia101_utt0.mp4`)
    are never looked at.
  - The MELD_Dyadic variant (header with Old_Dialogue_ID / Old_Utterance_ID) is a different dataset:
    its header raises RawFormatError naming it.
  - Transcripts are not used for duplicate detection (the pipeline's rule for media datasets): short lines such as "Okay." recur
    across many different clips, and the clip, not the line, is the input.

Records, per row: MELD's emotion mapped to ekman7 (joy -> happiness, the rest by name) for EC, its
sentiment for SP (polarity3), and both for the joint EC+SP (gold {"EC": ..., "SP": ...}). The first wanted
of EC, SP, EC+SP is the row's primary record; the others are derived (`primary=False`), so one row counts
once. Source metadata: speaker, season, episode, start_time, end_time, dialogue_id, utterance_id.

Rejects: bad_column_count / blank_line / undecodable_bytes (reader), bad_id (Dialogue_ID / Utterance_ID
not a non-negative integer), empty_text, label_not_in_label_set (emotion or sentiment outside MELD's
sets); media rejects come from the pipeline.
"""

from __future__ import annotations

import csv
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

HEADER = [
    "Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
    "Episode", "StartTime", "EndTime",
]  # fmt: skip
# (source split, annotation file, clip folder)
SPLIT_FILES = (
    ("train", "train_sent_emo.csv", "train_splits"),
    ("dev", "dev_sent_emo.csv", "dev_splits_complete"),
    ("test", "test_sent_emo.csv", "output_repeated_splits_test"),
)
NESTED_DIR = "MELD.Raw"
EMOTIONS = {"neutral": "neutral", "joy": "happiness", "sadness": "sadness", "anger": "anger",
            "surprise": "surprise", "fear": "fear", "disgust": "disgust"}  # fmt: skip
SENTIMENTS = ("neutral", "positive", "negative")
_TIME = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})[,.](\d{1,3})$")
_ID = re.compile(r"^[0-9]+$")


@dataclass(frozen=True)
class Utterance:
    """One parsed MELD row (labels as in the registry: emotion in ekman7, sentiment in polarity3)."""

    text: str
    speaker: str
    emotion: str
    sentiment: str
    dialogue_id: int
    utterance_id: int
    season: int | str
    episode: int | str
    start_time: str
    end_time: str

    @property
    def clip_name(self) -> str:
        return f"dia{self.dialogue_id}_utt{self.utterance_id}.mp4"

    def meta(self) -> dict[str, Any]:
        return {
            "speaker": self.speaker,
            "season": self.season,
            "episode": self.episode,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "dialogue_id": self.dialogue_id,
            "utterance_id": self.utterance_id,
        }


def normalise_time(value: str) -> str:
    """SRT time with a two-digit hour and three-digit milliseconds ("0:36:59,425" -> "00:36:59,425");
    anything else is returned stripped, as written."""
    value = value.strip()
    m = _TIME.match(value)
    if not m:
        return value
    hours, minutes, seconds, millis = m.groups()
    return f"{int(hours):02d}:{minutes}:{seconds},{millis.ljust(3, '0')}"


def _int_or_text(value: str) -> int | str:
    value = value.strip()
    return int(value) if _ID.match(value) else value


def _id(value: str, column: str) -> int:
    value = value.strip()
    if not _ID.match(value):
        raise RowError("bad_id", f"{column} {value!r} is not a non-negative integer")
    return int(value)


def _label(value: str, allowed: dict[str, str], column: str) -> str:
    key = value.strip().lower()
    if key not in allowed:
        raise RowError("label_not_in_label_set", f"{column} {value!r} is not one of {sorted(allowed)}")
    return allowed[key]


def parse_row(fields: list[str]) -> Utterance:
    """One CSV row (the 11 columns of HEADER) as an Utterance; raises RowError(reason) for a bad row."""
    _, utterance, speaker, emotion, sentiment, dialogue, turn, season, episode, start, end = fields
    dialogue_id, utterance_id = _id(dialogue, "Dialogue_ID"), _id(turn, "Utterance_ID")
    text = clean_text(utterance)
    if not text:
        raise RowError("empty_text")
    return Utterance(
        text=text,
        speaker=clean_text(speaker),
        emotion=_label(emotion, EMOTIONS, "Emotion"),
        sentiment=_label(sentiment, {s: s for s in SENTIMENTS}, "Sentiment"),
        dialogue_id=dialogue_id,
        utterance_id=utterance_id,
        season=_int_or_text(season),
        episode=_int_or_text(episode),
        start_time=normalise_time(start),
        end_time=normalise_time(end),
    )


def check_header(path: Path, rel: str) -> None:
    """RawFormatError unless the first row is MELD's header; the Dyadic variant is named as such."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        found = [c.strip() for c in next(csv.reader(f), [])]
    if "Old_Dialogue_ID" in found:
        raise RawFormatError(
            rel, 1, "this is the MELD_Dyadic variant (Old_Dialogue_ID column), not MELD: use data/MELD/*_sent_emo.csv"
        )
    if found != HEADER:
        raise RawFormatError(rel, 1, f"expected header {HEADER}, found {found}")


def _base(ctx: BuildContext) -> Path:
    """The folder holding the CSVs: the raw folder itself, or MELD.Raw/ inside it."""
    for base in (ctx.raw_dir, ctx.raw_dir / NESTED_DIR):
        if any((base / name).is_file() for _, name, _ in SPLIT_FILES):
            return base
    names = [name for _, name, _ in SPLIT_FILES]
    raise MissingData(f"{ctx.raw_dir}: none of {names} (nor in {NESTED_DIR}/)")


def _examples(
    ctx: BuildContext, row: Utterance, rel: str, line: int, source_id: str, split: str, video: str
) -> Iterator[Example]:
    """The row's records, EC / SP / EC+SP as wanted (the first is the row's primary record)."""
    tasks = ctx.spec.subtasks
    golds = {"EC": row.emotion, "SP": row.sentiment,
             "EC+SP": {tasks["EC"].task: row.emotion, tasks["SP"].task: row.sentiment}}  # fmt: skip
    yield from ctx.row_examples(golds, source_id=source_id, language=ctx.spec.languages[0], file=rel, line=line,
                                text=row.text, split=split, meta=row.meta(), videos=[video])  # fmt: skip


def _rows(ctx: BuildContext, path: Path, source_split: str, folder: str) -> Iterator[Example | Reject]:
    rel = ctx.track(path)
    check_header(path, rel)
    split = ctx.spec.splits["map"][source_split]
    clip_dir = path.parent.relative_to(ctx.raw_dir) / folder
    for item in parse_rows(read_csv(path, rel, HEADER), rel, parse_row):
        if isinstance(item, Reject):
            yield item
            continue
        line, row = item
        video = ctx.media_ref((clip_dir / row.clip_name).as_posix())
        source_id = f"{source_split}-{row.clip_name.removesuffix('.mp4')}"
        yield from _examples(ctx, row, rel, line, source_id, split, video)


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    base = _base(ctx)
    for source_split, name, folder in SPLIT_FILES:
        if (base / name).is_file():
            yield from _rows(ctx, base / name, source_split, folder)
