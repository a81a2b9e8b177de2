"""Synthetic multilingual multi-label emotions (format of arXiv 2604.12633, Borisov 2026; corpus not released).

Since the paper's corpus is not public, this is OUR input format. Folder `<raw_root>/synthetic_emotions/`
holding one or more `*.jsonl` files (read in sorted name order), UTF-8, one JSON object per line:

    {"id": "en-000123", "text": "Thanks so much, I love it!", "language": "en",
     "labels": ["gratitude", "love"], "split": "train"}

- `id`: non-empty string, unique per language (the record id is `synthetic_emotions/<language>/EC/<id>`).
- `text`: non-empty string. `language`: an ISO 639-1 code from the registry's language list (lower-cased).
- `labels`: list of names from the EC subtask's label set (registry `synthetic11` unless pointed elsewhere),
  case-insensitive, repeats collapsed; `[]` or `["neutral"]` (the label set's `none` name) = no emotion.
- `split`: optional, "train" | "validation" | "test"; absent or null -> seeded split per language.
Other keys are ignored; a UTF-8 BOM on the first line is accepted.
Rejects: undecodable_bytes, blank_line, bad_json (not JSON), bad_json_item (not an object, missing key or
wrong type), unknown_language, bad_split, label_not_in_label_set (label in detail), neutral_with_emotions,
empty_text, duplicate_id / duplicate_text (pipeline).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from mmaff.data.builder import SPLITS, BuildContext, Example, Reject, clean_text, excerpt, read_lines

_TYPES = {"id": str, "text": str, "language": str, "labels": list}


def _check_item(item: Any) -> str | None:
    """Why `item` is not a well-formed object, or None."""
    if not isinstance(item, dict):
        return "expected a JSON object"
    for key, kind in _TYPES.items():
        if not isinstance(item.get(key), kind):
            return f"{key!r} missing or not a {kind.__name__}"
    if not item["id"].strip():
        return "'id' is empty"
    if not all(isinstance(label, str) for label in item["labels"]):
        return "'labels' must hold strings"
    try:  # a JSON escape such as "\ud800" decodes to a lone surrogate, which cannot be written back
        "".join((item["id"], item["text"], item["language"])).encode("utf-8")
    except UnicodeEncodeError:
        return "lone surrogate escape in a string"
    return None


def _gold(
    labels: list[str], names: tuple[str, ...], none: str | None, by_key: dict[str, str]
) -> tuple[list[str] | None, str, str]:
    """(gold in label-set order, "", "") or (None, reject reason, detail); `by_key` maps casefolded names."""
    wanted = {label.strip().casefold() for label in labels}
    has_none = none is not None and none.casefold() in wanted
    wanted.discard(none.casefold() if none else None)
    unknown = sorted(w for w in wanted if w not in by_key)
    if unknown:
        return None, "label_not_in_label_set", f"unknown labels {unknown}"
    if has_none and wanted:
        return None, "neutral_with_emotions", f"{none!r} together with {sorted(wanted)}"
    return [name for name in names if name.casefold() in wanted], "", ""


@functools.cache
def _casefolded(names: tuple[str, ...]) -> dict[str, str]:
    return {name.casefold(): name for name in names}


def _example(ctx: BuildContext, rel: str, number: int, line: str) -> Example | Reject:
    if not line.strip():
        return Reject(rel, number, "blank_line")
    try:
        item = json.loads(line)
    except (ValueError, RecursionError) as err:  # also numbers past int's digit limit, absurd nesting
        return Reject(rel, number, "bad_json", excerpt(line), f"{type(err).__name__}: {err}")
    problem = _check_item(item)
    if problem:
        return Reject(rel, number, "bad_json_item", excerpt(line), problem)
    language, split = item["language"].strip().lower(), item.get("split")
    if language not in ctx.spec.languages:
        return Reject(rel, number, "unknown_language", excerpt(line), repr(item["language"]))
    if split is not None and split not in SPLITS:
        return Reject(rel, number, "bad_split", excerpt(line), repr(split))
    label_set = ctx.spec.subtasks["EC"].label_set
    by_key = _casefolded(label_set.labels)
    gold, reason, detail = _gold(item["labels"], label_set.labels, (label_set.none or {}).get("name"), by_key)
    if gold is None:
        return Reject(rel, number, reason, excerpt(line), detail)
    return Example(
        source_id=item["id"].strip(),
        subtask="EC",
        language=language,
        gold=gold,
        file=rel,
        line=number,
        text=clean_text(item["text"]),
        split=split,
    )


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    for path in ctx.find("*.jsonl"):
        rel = ctx.track(path)
        for item in read_lines(path, rel):
            yield item if isinstance(item, Reject) else _example(ctx, rel, *item)
