"""SemEval-2018 Task 1 "Affect in Tweets" (Mohammad et al. 2018), English / Arabic / Spanish.

Source: the organisers' SemEval2018-Task1-all-data.zip (or the per-subtask zips / mirrors such as
cbaziotis/ntua-slp-semeval2018). Layout: `SemEval2018-Task1-all-data/{English,Arabic,Spanish}/<subtask>/`
or `{English,Arabic,Spanish}/...` directly under the raw folder; files are found anywhere below it by
name, so both work. Names (case-insensitive, optional `2018-` prefix; other files such as readmes,
zips or partial excerpts are ignored):

    EI-reg-En-anger-train.txt   2018-EI-oc-Es-fear-dev.txt   EI-reg-En-anger-test-gold.txt
    2018-Valence-reg-Ar-train.txt   2018-Valence-oc-En-test.txt   2018-E-c-En-dev.txt

Format: UTF-8 TSV with a header, CRLF (official zips) or LF (mirrors). EI/V files have `ID, Tweet,
Affect Dimension, Intensity Score|Intensity Class`; E-c files `ID, Tweet` + 11 emotion columns (0/1),
read in the header's order. Official splits: train / dev / test (mapped by the registry).

Warts handled:
  - train files of EI-* lack the `2018-` prefix that dev/test files have; mirrors drop it everywhere.
  - Test files come as gold (`-test-gold.txt`) and as the unlabelled release (`-test.txt`, labels NONE).
    The gold file wins and the unlabelled one is not read; an unlabelled file alone is read and each
    row rejected (`unlabelled_test`). Two label-bearing files for one subtask/language/split is an error.
  - EI-reg and V-reg test files end with ~17k "mystery" rows (ids `...-mystery-NNNNN`, Equity Evaluation
    Corpus template sentences with placeholder scores): rejected (`semeval_mystery_row`).
  - Ordinal class strings are translated in Spanish and Arabic ("2: se infiere un grado moderado de
    enojo"): only the leading signed integer is parsed.
  - A missing or wrong header raises RawFormatError naming the file; the early Spanish EI-reg
    pre-release (Oct 2017: no header, ids like `2018-ar-anger-train-1`) is recognised and named.
  - Tweets keep their literal `\\n` escapes as in the source.

Records: EI-reg / EI-oc carry facet {"emotion"} (id and prompt); gold is a float (*-reg, source scale
[0, 1]), an int (*-oc) or the E-c label list in registry order ([] = neutral). Tweets whose ID is in both
the V-reg and the E-c file of one language and split also give the derived (primary=False) records
V-reg+E-c (joint), V-reg>E-c and E-c>V-reg (two-step), located at the V-reg row. Only one language/split's
E-c golds are held in memory.

Rejects: bad_column_count / blank_line / undecodable_bytes (reader), unlabelled_test, semeval_mystery_row,
empty_text, dimension_mismatch, bad_score, score_out_of_range, bad_class, bad_label.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import defaultdict
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
    excerpt,
    read_tsv,
)

SUBTASK_ORDER = ("E-c", "V-reg", "EI-reg", "EI-oc", "V-oc")  # E-c before V-reg: the joint records need its golds
SPLIT_ORDER = ("train", "dev", "test")
DERIVED = ("V-reg+E-c", "V-reg>E-c", "E-c>V-reg")
_KINDS = {"ei-reg": "EI-reg", "ei-oc": "EI-oc", "valence-reg": "V-reg", "v-reg": "V-reg",
          "valence-oc": "V-oc", "v-oc": "V-oc", "e-c": "E-c"}  # fmt: skip
_NAME = re.compile(
    r"^(?:2018-)?(?P<kind>EI-reg|EI-oc|Valence-reg|Valence-oc|V-reg|V-oc|E-c)-(?P<lang>en|ar|es)"
    r"(?:-(?P<emotion>anger|fear|joy|sadness))?-(?P<split>train|dev|test)(?P<gold>-gold)?\.txt$",
    re.IGNORECASE,
)
_SCORE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)$")
_CLASS = re.compile(r"^\s*([+-]?\d+)\s*(?::|$)")
_PRERELEASE_ID = re.compile(r"^\d{4}-[a-z]{2}-[a-z]+-(?:train|dev|test)-\d+$", re.IGNORECASE)
_EI_HEADER = ["ID", "Tweet", "Affect Dimension"]


@dataclass(frozen=True)
class RawFile:
    path: Path
    subtask: str
    language: str
    emotion: str | None
    split: str  # source split: train | dev | test
    gold: bool  # named -gold


def _parse_name(path: Path) -> RawFile | None:
    m = _NAME.match(path.name)
    if not m:
        return None
    subtask, emotion = _KINDS[m["kind"].lower()], (m["emotion"] or "").lower() or None
    if subtask.startswith("EI") != (emotion is not None):
        return None
    return RawFile(path, subtask, m["lang"].lower(), emotion, m["split"].lower(), m["gold"] is not None)


def _discover(ctx: BuildContext) -> list[RawFile]:
    """The files to read, one per subtask/language/emotion/split (a gold test file beats the unlabelled one)."""
    wanted = {s for s in SUBTASK_ORDER if ctx.wants(s, *(DERIVED if s in ("E-c", "V-reg") else ()))}
    groups: dict[tuple, list[RawFile]] = defaultdict(list)
    for path in ctx.find("**/*", required=False):
        raw = _parse_name(path)
        if raw is not None and raw.subtask in wanted:
            groups[raw.language, raw.split, raw.subtask, raw.emotion].append(raw)
    files = []
    for group in groups.values():
        chosen = [f for f in group if f.gold] or group
        if len(chosen) > 1:
            names = ", ".join(sorted(f.path.relative_to(ctx.raw_root).as_posix() for f in chosen))
            raise RawFormatError(chosen[0].path, None, f"several files hold the same data ({names}); keep one")
        files.append(chosen[0])
    if not files:
        raise MissingData(
            f"{ctx.raw_dir}: no SemEval-2018 Task 1 file (e.g. EI-reg-En-anger-train.txt) for {sorted(wanted)}"
        )
    langs = ctx.spec.languages
    return sorted(files, key=lambda f: (langs.index(f.language), SPLIT_ORDER.index(f.split),
                                        SUBTASK_ORDER.index(f.subtask), f.emotion or ""))  # fmt: skip


def _header(raw: RawFile, rel: str, ec_labels: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The header as found (stripped) and, for E-c, the label of each emotion column; RawFormatError if wrong."""
    with open(raw.path, "rb") as f:
        first = f.readline()
    try:
        fields = [c.strip() for c in first.decode("utf-8").removeprefix("\ufeff").rstrip("\r\n").split("\t")]
    except UnicodeDecodeError as err:
        raise RawFormatError(rel, 1, f"header is not UTF-8 ({err})") from err
    lowered = [c.lower() for c in fields]
    if raw.subtask == "E-c":
        expected = f"ID, Tweet and the emotion columns {list(ec_labels)} in any order"
        if lowered[:2] == ["id", "tweet"] and sorted(lowered[2:]) == sorted(ec_labels):
            return fields, lowered[2:]
    else:
        expected = [*_EI_HEADER, "Intensity Score" if raw.subtask.endswith("reg") else "Intensity Class"]
        if lowered == [c.lower() for c in expected]:
            return fields, []
    if not first.strip():
        problem = "empty first line: no header row"
    elif _PRERELEASE_ID.match(fields[0]):
        problem = (
            f"no header row and ids like {fields[0]!r}: this is the early Spanish EI-reg pre-release "
            "(Oct 2017, ids like 2018-ar-anger-train-1), not the final data; use SemEval2018-Task1-all-data"
        )
    else:
        problem = f"expected header {expected}, found {fields}"
    raise RawFormatError(rel, 1, problem)


def _number(value: str, low: float, high: float) -> float:
    value = value.strip()
    if not _SCORE.match(value) or not math.isfinite(score := float(value)):
        raise RowError("bad_score", f"score {value!r}")
    if not low <= score <= high:
        raise RowError("score_out_of_range", f"score {score} outside [{low}, {high}]")
    return score


def _class(value: str, classes: dict[int, str]) -> int:
    m = _CLASS.match(value)
    if not m or int(m[1]) not in classes:
        raise RowError("bad_class", f"class {value!r}")
    return int(m[1])


def _gold(ctx: BuildContext, raw: RawFile, source_id: str, text: str, values: list[str], columns: list[str]) -> Any:
    labels_given = values if raw.subtask == "E-c" else values[1:]
    if raw.split == "test" and all(v.strip().upper() == "NONE" for v in labels_given):
        raise RowError("unlabelled_test", "unlabelled test release (labels NONE)")
    if "-mystery-" in source_id.lower():
        raise RowError("semeval_mystery_row", "Equity Evaluation Corpus row with a placeholder score")
    if not text:
        raise RowError("empty_text")
    sub = ctx.spec.subtasks[raw.subtask]
    if raw.subtask == "E-c":
        flags = [v.strip() for v in values]
        if any(f not in ("0", "1") for f in flags):
            raise RowError("bad_label", f"E-c values {flags}")
        found = {label for label, flag in zip(columns, flags, strict=True) if flag == "1"}
        return [label for label in sub.label_set.labels if label in found]
    dimension, expected = values[0].strip().lower(), raw.emotion or "valence"
    if dimension != expected:
        raise RowError("dimension_mismatch", f"Affect Dimension {values[0]!r} in a {expected} file")
    return _number(values[1], *sub.range) if sub.target_type == "real" else _class(values[1], sub.classes)


def _rows(ctx: BuildContext, raw: RawFile, rel: str) -> Iterator[Example | Reject]:
    header, columns = _header(raw, rel, ctx.spec.subtasks["E-c"].label_set.labels)
    split = ctx.spec.splits["map"][raw.split]
    facet = {"emotion": raw.emotion} if raw.emotion else {}
    for item in read_tsv(raw.path, rel, len(header), header):
        if isinstance(item, Reject):
            yield item
            continue
        line, fields = item
        source_id, text = fields[0].strip(), clean_text(fields[1])
        try:
            gold = _gold(ctx, raw, source_id, text, fields[2:], columns)
        except RowError as skip:
            yield Reject(rel, line, skip.reason, excerpt("\t".join(fields)), skip.detail)
            continue
        yield Example(source_id=source_id, subtask=raw.subtask, language=raw.language, gold=gold, file=rel,
                      line=line, text=text, split=split, facet=dict(facet))  # fmt: skip


def _derived(ctx: BuildContext, v: Example, labels: list[str], wanted: list[str]) -> Iterator[Example]:
    si, ec = ctx.spec.subtasks["V-reg"].task, ctx.spec.subtasks["E-c"].task
    variants = {
        "V-reg+E-c": {"gold": {si: v.gold, ec: list(labels)}},
        "V-reg>E-c": {"given": {si: v.gold}, "gold": list(labels)},
        "E-c>V-reg": {"given": {ec: list(labels)}, "gold": v.gold},
    }
    for subtask in wanted:
        yield Example(source_id=v.source_id, subtask=subtask, language=v.language, file=v.file, line=v.line,
                      text=v.text, split=v.split, primary=False, **variants[subtask])  # fmt: skip


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    derived = [s for s in DERIVED if ctx.wants(s)]
    for _, group in itertools.groupby(_discover(ctx), key=lambda f: (f.language, f.split)):
        ec_golds: dict[str, list[str]] = {}  # this language/split only
        for raw in group:
            for item in _rows(ctx, raw, ctx.track(raw.path)):
                yield item
                if not derived or not isinstance(item, Example):
                    continue
                if item.subtask == "E-c":
                    ec_golds[item.source_id] = item.gold
                elif item.subtask == "V-reg" and item.source_id in ec_golds:
                    yield from _derived(ctx, item, ec_golds[item.source_id], derived)
