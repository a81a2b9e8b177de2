"""SAMSEMO (Bujnowski et al., Interspeech 2024): multilingual movie-scene clips with up to two emotions.

Source: Hugging Face Hub `SamsungNLP/SAMSEMO` (CC BY 4.0), unpacked into the dataset folder:
  samsemo.tsv                          all metadata, one utterance a row (also accepted: metadata/samsemo.tsv)
  metadata/meta.pkl                    the same metadata pickled; read ONLY with option `allow_pickle: true`
                                       (unpickling can execute code) and only when there is no samsemo.tsv
  splits/{train,valid,test}_split_{LANG}.txt   one utterance id per line, LANG upper-case (DE EN ES KO PL)
  <LANG>/<utterance_id>.mp4            clips, from data/<LANG>.zip (also accepted: data/<LANG>/<id>.mp4;
                                       the layout is chosen per language by which folder exists)

samsemo.tsv is read as tab-separated CSV (quoted fields allowed) by header name; the columns used are
`utterance_id`, `language`, `aggregated_emotions`, `transcript` and, for provenance only,
`emotion_{1,2}_annotator_{1,2,3}`. The column list is known only from a derived dataset card (unverified).
A pickle may hold a pandas DataFrame, a list of row dicts, {utterance_id: row dict} or {column: list}.

Labels (EC, multi-label over samsemo8): `aggregated_emotions` is split on commas / semicolons / `|`
(brackets and quotes around a Python-list rendering are ignored; a pickled list is taken as is). Names are
mapped case-insensitively (happiness/happy/joy, sadness/sad, anger/angry, fear/fearful, surprise/surprised,
disgust/disgusted, neutral, other/others/other emotion(s) -> "other emotions"); integers are read as
MMAFFBen's ids of samsemo8 (0 neutral ... 6 disgust, 99 other emotions; SAMSEMO's own numeric coding, if
any, is unverified). Gold is in label-set order. "other emotions" counts as one of at most two emotions;
neutral must stand alone.

Language and split come from the split file an utterance is listed in: language = LANG lower-cased, split
via the registry map (train / valid -> validation / test). The tsv `language` column (a code or an English
name) is cross-checked when not empty. Text = the transcript (null when empty; it is shown as `Content:`).
Transcripts are not used for dedup (the pipeline's rule for media datasets): lines such as "Yes." recur in different clips, which
are different items; the utterance id keeps records unique. Video = media_ref(`<LANG>/<utterance_id>.mp4`);
the pipeline checks it (missing_media, undecodable_video, too_short_video, ...).

Rejects, at the metadata row: bad_column_count / blank_line / undecodable_bytes (tsv), missing_id,
no_label, label_not_in_label_set, too_many_labels (more than two emotions), neutral_with_emotion,
not_in_any_split, in_several_splits (listed in split files of different splits or languages),
language_mismatch. At a split-file line: not_in_metadata (an id with no metadata row).
"""

from __future__ import annotations

import math
import pickle
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
    clean_text,
    excerpt,
    read_csv,
    read_lines,
)

TSV_PATTERNS = ("samsemo.tsv", "metadata/samsemo.tsv")
PICKLE_PATTERNS = ("metadata/meta.pkl", "meta.pkl")
REQUIRED = ("utterance_id", "language", "aggregated_emotions", "transcript")
ANNOTATOR_COLUMNS = tuple(
    tuple(f"emotion_{n}_annotator_{a}" for n in (1, 2)) for a in (1, 2, 3)
)  # per annotator: (first, second) emotion
_SPLIT_FILE = re.compile(r"^(?P<split>[a-z]+)_split_(?P<lang>[A-Za-z]{2,3})\.txt$")
_SEPARATORS = re.compile(r"[,;|]")
_STRIP = "[]()'\" \t"
NAME_ALIASES = {
    "happiness": "happiness", "happy": "happiness", "joy": "happiness",
    "sadness": "sadness", "sad": "sadness",
    "anger": "anger", "angry": "anger",
    "fear": "fear", "fearful": "fear",
    "surprise": "surprise", "surprised": "surprise",
    "disgust": "disgust", "disgusted": "disgust",
    "neutral": "neutral",
    "other": "other emotions", "others": "other emotions", "other emotion": "other emotions",
    "other emotions": "other emotions",
}  # fmt: skip
LANGUAGE_NAMES = {"english": "en", "german": "de", "spanish": "es", "korean": "ko", "polish": "pl"}
NEUTRAL = "neutral"
MAX_EMOTIONS = 2


@dataclass(frozen=True)
class Listing:
    """One line of a split file."""

    split: str  # source split name (train / valid / test)
    lang: str  # as in the file name, upper-case
    file: str
    line: int


# ---------------------------------------------------------------- metadata


def _tsv_rows(ctx: BuildContext, path: Path) -> Iterator[tuple[str, int, dict[str, Any]] | Reject]:
    rel = ctx.track(path)
    header: list[str] | None = None
    for item in read_csv(path, rel, header=None, delimiter="\t", multiline=True):
        if isinstance(item, Reject):
            yield item
            continue
        line, row = item
        if header is None:
            header = [clean_text(c) for c in row]
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise RawFormatError(rel, 1, f"missing columns {missing} (found {header[:12]})")
            continue
        if len(row) != len(header):
            yield Reject(
                rel, line, "bad_column_count", excerpt("\t".join(row)), f"{len(row)} columns, expected {len(header)}"
            )
            continue
        yield rel, line, dict(zip(header, row))
    if header is None:
        raise RawFormatError(rel, 1, f"no header row (expected the columns {list(REQUIRED)})")


def _pickle_records(obj: Any, rel: str) -> list[dict[str, Any]]:
    """Row dicts from the shapes a metadata pickle may take."""
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # pandas DataFrame
        return list(obj.to_dict("records"))
    if isinstance(obj, list) and all(isinstance(r, dict) for r in obj):
        return obj
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        return [{"utterance_id": key, **value} for key, value in obj.items()]
    if isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) == 1:
            return [dict(zip(obj, values)) for values in zip(*obj.values())]
    raise RawFormatError(rel, None, f"unexpected pickle content ({type(obj).__name__})")


def _pickle_rows(ctx: BuildContext, path: Path) -> Iterator[tuple[str, int, dict[str, Any]]]:
    rel = ctx.track(path)
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f)  # only reached with the explicit allow_pickle option
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError, TypeError, IndexError,
            KeyError, MemoryError) as err:  # fmt: skip
        raise RawFormatError(rel, None, f"cannot unpickle ({err})") from err
    records = _pickle_records(obj, rel)
    missing = [c for c in REQUIRED if records and c not in records[0]]
    if missing:
        raise RawFormatError(rel, None, f"missing fields {missing} (found {list(records[0])[:12]})")
    for line, record in enumerate(records, start=1):
        yield rel, line, record


def _metadata(ctx: BuildContext) -> Iterator[tuple[str, int, dict[str, Any]] | Reject]:
    tsv = ctx.find(*TSV_PATTERNS, required=False)
    if tsv:
        return _tsv_rows(ctx, tsv[0])
    pickled = ctx.find(*PICKLE_PATTERNS, required=False)
    if not pickled:
        raise MissingData(f"{ctx.raw_dir}: no samsemo.tsv (or metadata/meta.pkl)")
    if not ctx.options.get("allow_pickle"):
        raise MissingData(
            f"{ctx.raw_dir}: no samsemo.tsv, only {pickled[0].name}; unpickling can execute code, so it is read "
            "only with the dataset option `allow_pickle: true` (or download samsemo.tsv)"
        )
    return _pickle_rows(ctx, pickled[0])


# ---------------------------------------------------------------- splits


def _split_listings(ctx: BuildContext) -> dict[str, list[Listing]]:
    """utterance id -> the split-file lines that list it."""
    split_map = ctx.spec.splits["map"]
    listings: dict[str, list[Listing]] = {}
    paths = [p for p in ctx.find("splits/*.txt", required=False) if _SPLIT_FILE.match(p.name)]
    if not paths:
        raise MissingData(f"{ctx.raw_dir}: no splits/<split>_split_<LANG>.txt files")
    for path in paths:
        match = _SPLIT_FILE.match(path.name)
        rel = ctx.track(path)
        if match["split"] not in split_map:
            raise RawFormatError(rel, None, f"unknown split {match['split']!r} (expected {list(split_map)})")
        for item in read_lines(path, rel):
            if isinstance(item, Reject):
                raise RawFormatError(rel, item.line, "undecodable bytes in a split file")
            line, text = item
            uid = text.strip()
            if uid:
                listings.setdefault(uid, []).append(Listing(match["split"], match["lang"].upper(), rel, line))
    return listings


# ---------------------------------------------------------------- labels


def _tokens(raw: Any) -> list[str]:
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return []
    if isinstance(raw, (list, tuple, set)):
        return [t for item in raw for t in _tokens(item)]
    if isinstance(raw, int) and not isinstance(raw, bool):
        return [str(raw)]
    tokens = (t.strip(_STRIP) for t in _SEPARATORS.split(clean_text(str(raw))))
    return [t for t in tokens if t and t.lower() not in ("nan", "none")]


def parse_emotions(raw: Any, labels: tuple[str, ...], ids: tuple[int, ...]) -> tuple[list[str] | None, str, str]:
    """(gold in label-set order, "", "") or (None, reject reason, detail)."""
    by_id = dict(zip(ids, labels))
    names, unknown = set(), []
    for token in _tokens(raw):
        key = " ".join(token.lower().split())
        name = by_id.get(int(key)) if re.fullmatch(r"-?\d+", key) else NAME_ALIASES.get(key)
        if name is None:
            unknown.append(token)
        else:
            names.add(name)
    if unknown:
        return None, "label_not_in_label_set", f"unknown emotions {unknown}"
    if not names:
        return None, "no_label", ""
    if NEUTRAL in names and len(names) > 1:
        return None, "neutral_with_emotion", f"{sorted(names)}"
    if len(names) > MAX_EMOTIONS:
        return None, "too_many_labels", f"{sorted(names)}"
    return [label for label in labels if label in names], "", ""


def _language(raw: Any) -> str:
    text = clean_text(str(raw)) if raw is not None and not (isinstance(raw, float) and math.isnan(raw)) else ""
    return LANGUAGE_NAMES.get(text.lower(), text.lower())


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return clean_text(str(value))


# ---------------------------------------------------------------- examples


class _ClipRefs:
    """`<LANG>/<id>.mp4`, or `data/<LANG>/<id>.mp4` where only that folder exists (decided once per language)."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx, self.prefixes = ctx, {}

    def ref(self, lang: str, uid: str) -> str:
        if lang not in self.prefixes:
            nested = not (self.ctx.raw_dir / lang).is_dir() and (self.ctx.raw_dir / "data" / lang).is_dir()
            self.prefixes[lang] = f"data/{lang}" if nested else lang
        return self.ctx.media_ref(f"{self.prefixes[lang]}/{uid}.mp4")


def _example(
    ctx: BuildContext, rel: str, line: int, row: dict[str, Any], listings: dict[str, list[Listing]], clips: _ClipRefs
) -> Example | Reject:
    uid = _cell(row.get("utterance_id"))
    short = excerpt(f"{uid}: {_cell(row.get('aggregated_emotions'))} | {_cell(row.get('transcript'))}")
    if not uid:
        return Reject(rel, line, "missing_id", short)
    label_set = ctx.spec.subtasks["EC"].label_set
    gold, reason, detail = parse_emotions(row.get("aggregated_emotions"), label_set.labels, label_set.ids)
    if gold is None:
        return Reject(rel, line, reason, short, detail)
    listed = list(dict.fromkeys((entry.split, entry.lang) for entry in listings.get(uid, [])))
    if not listed:
        return Reject(rel, line, "not_in_any_split", short)
    if len(listed) > 1:
        files = sorted({f"{e.file}:{e.line}" for e in listings[uid]})
        return Reject(rel, line, "in_several_splits", short, f"listed in {files}")
    split, lang = listed[0]
    language = lang.lower()
    stated = _language(row.get("language"))
    if stated and stated != language:
        return Reject(rel, line, "language_mismatch", short, f"tsv says {stated!r}, split file says {language!r}")
    annotators = [[_cell(row.get(c)) for c in cols if _cell(row.get(c))] for cols in ANNOTATOR_COLUMNS]
    meta: dict[str, Any] = {
        "split_file": listings[uid][0].file,
        "aggregated_emotions": _cell(row.get("aggregated_emotions")),
    }
    if any(annotators):
        meta["annotator_emotions"] = annotators
    return Example(
        source_id=uid,
        subtask="EC",
        language=language,
        gold=gold,
        file=rel,
        line=line,
        text=_cell(row.get("transcript")) or None,
        split=ctx.spec.splits["map"][split],
        meta=meta,
        videos=[clips.ref(lang, uid)],
    )


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    rows = _metadata(ctx)
    listings = _split_listings(ctx)
    clips, seen = _ClipRefs(ctx), set()
    for item in rows:
        if isinstance(item, Reject):
            yield item
            continue
        rel, line, row = item
        seen.add(_cell(row.get("utterance_id")))
        yield _example(ctx, rel, line, row, listings, clips)
    for uid, entries in listings.items():
        if uid not in seen:
            for entry in entries:
                yield Reject(entry.file, entry.line, "not_in_metadata", excerpt(uid))
