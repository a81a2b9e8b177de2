"""Answer formats: how a gold value is written as the assistant's reply, and how a reply is parsed back.

A template declares a format spec per target type, e.g. `{format: numbered_labels, separator: ", "}`. The
same spec renders training answers and parses model outputs, so the two cannot drift. `parse` returns a
`Parsed(value, status)` with status "strict" (exactly the canonical shape), "lenient" (recovered from a
looser reply, e.g. a bare label name or a number after "score:") or "failed" (value None).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_STRICT_NUMBER = re.compile(rf"^{NUMBER}$")
_ANY_NUMBER = re.compile(rf"(?<![\w.]){NUMBER}(?![\w.])")
_CUE_NUMBER = re.compile(rf"(?:score|intensity|value|valence|rating|answer)\s*(?:is|=|:)?\s*({NUMBER})", re.I)
_NUMBERED_ITEM = re.compile(r"^\s*\{?([+-]?\d+)\}?\s*[.:)]\s*(.*?)\s*[.!]?\s*$")
_SEPARATORS = re.compile(r"\s*[,;\n]\s*")
_ID_ONLY = re.compile(r"^\s*([+-]?\d+)()\s*$")
_ORDINAL = re.compile(r"^\s*([+-]?\d+)\s*(?::\s*(.*?))?\s*\.?\s*$")
_INTEGER = re.compile(r"(?<![\w.])[+-]?\d+(?![\w.])")

# Parsing runs once per reply (hundreds of thousands per scoring run), over a handful of label sets, dimensions
# and section titles: the label maps and the regexes built from them are made once per distinct key and kept.
_LABEL_MAPS: dict[tuple[tuple[Any, ...], tuple[Any, ...]], tuple[dict[int, str], dict[str, str]]] = {}
_PATTERNS: dict[tuple[str, Any], re.Pattern[str]] = {}


def _pattern(kind: str, key: Any) -> re.Pattern[str]:
    """The compiled regex of one kind for one label name / none answer / VAD dimension / section title."""
    pattern = _PATTERNS.get((kind, key))
    if pattern is None:
        if kind == "word":  # a label name (lower case) as a whole word
            pattern = re.compile(rf"(?<!\w){re.escape(key)}(?!\w)")
        elif kind == "word_i":  # the none answer's name as a whole word, any case
            pattern = re.compile(rf"(?<!\w){re.escape(key)}(?!\w)", re.I)
        elif kind == "none_item":  # the strict none answer, e.g. "0. neutral"
            pattern = re.compile(rf"^\s*{key[0]}\s*[.:)]\s*{re.escape(key[1])}\s*\.?$", re.I)
        elif kind == "vad":
            pattern = re.compile(rf"{key}\s*[:=]\s*({NUMBER})", re.I)
        elif kind == "section":
            pattern = re.compile(rf"^\s*{re.escape(key)}\s*:\s*(.+?)\s*$", re.I | re.M)
        else:
            raise ValueError(kind)
        _PATTERNS[(kind, key)] = pattern
    return pattern


@dataclass(frozen=True)
class Parsed:
    value: Any
    status: str  # strict | lenient | failed


FAILED = Parsed(None, "failed")


def format_number(value: float, decimals: int) -> str:
    """Round to `decimals`, drop trailing zeros but keep one decimal: 0.7340 -> "0.734", 1 -> "1.0"."""
    text = f"{value:.{decimals}f}".rstrip("0")
    text = text + "0" if text.endswith(".") else text
    return "0.0" if text == "-0.0" else text


def _label_maps(space: dict[str, Any]) -> tuple[dict[int, str], dict[str, str]]:
    """(id -> label, lower-case name -> label), made once per label set (read-only: shared by every call)."""
    key = (tuple(space["labels"]), tuple(space["ids"]))
    maps = _LABEL_MAPS.get(key)
    if maps is None:
        by_id = dict(zip(space["ids"], space["labels"], strict=True))
        by_name = {name.lower(): name for name in space["labels"]}
        maps = _LABEL_MAPS[key] = (by_id, by_name)
    return maps


# ---------------------------------------------------------------- rendering


_LABEL_ORDERS: dict[tuple[str, ...], dict[str, tuple[int, int]]] = {}


def _label_order(space: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """label -> (position, prompt id), cached per label list."""
    key = tuple(space["labels"])
    order = _LABEL_ORDERS.get(key)
    if order is None:
        order = _LABEL_ORDERS[key] = {label: (i, space["ids"][i]) for i, label in enumerate(space["labels"])}
    return order


def render_answer(gold: Any, spec: dict[str, Any], space: dict[str, Any]) -> str:
    fmt = spec["format"]
    if fmt == "numbered_label":
        return f"{_label_order(space)[gold][1]}. {gold}"
    if fmt == "numbered_labels":
        if not gold:
            return f"{space['none']['id']}. {space['none']['name']}"
        order = _label_order(space)
        return spec.get("separator", ", ").join(f"{order[g][1]}. {g}" for g in sorted(gold, key=order.__getitem__))
    if fmt == "number":
        return format_number(gold, spec.get("decimals", 3))
    if fmt == "ordinal":
        return f"{gold}: {space['classes'][str(gold)]}"
    if fmt == "vad":
        return ", ".join(f"{dim}: {format_number(gold[dim], spec.get('decimals', 2))}" for dim in space["dims"])
    if fmt == "terms":
        return spec.get("separator", ", ").join(gold)
    if fmt == "sections":
        return "\n".join(
            f"{part['title']}: {render_answer(gold[task], part, space['parts'][task])}"
            for task, part in spec["parts"].items()
        )
    raise ValueError(f"unknown answer format {fmt!r}")


# ---------------------------------------------------------------- parsing


def _parse_label_item(item: str, by_id: dict[int, str], by_name: dict[str, str]) -> str | None:
    """'3. anger' -> 'anger' when id and name agree (strict item), else None."""
    match = _NUMBERED_ITEM.match(item)
    if not match:
        return None
    label = by_id.get(int(match.group(1)))
    return label if label is not None and match.group(2).lower() == label.lower() else None


def _id_only_item(item: str, by_id: dict[int, str]) -> str | None:
    """'3' or '3.' -> the label with id 3. An item whose name part is not that label ('3. joy') is ambiguous: None."""
    match = _NUMBERED_ITEM.match(item) or _ID_ONLY.match(item)
    if not match or int(match.group(1)) not in by_id:
        return None
    name = match.group(2).strip().lower()
    return by_id[int(match.group(1))] if not name or name == by_id[int(match.group(1))].lower() else None


def _names_in(text: str, by_name: dict[str, str]) -> list[str]:
    lowered = text.lower()  # the substring test is only a shortcut: the regex match needs that substring
    return [label for key, label in by_name.items() if key in lowered and _pattern("word", key).search(lowered)]


def _parse_single(text: str, space: dict[str, Any]) -> Parsed:
    by_id, by_name = _label_maps(space)
    label = _parse_label_item(text.strip(), by_id, by_name)
    if label is not None:
        return Parsed(label, "strict")
    names = _names_in(text, by_name)
    if len(names) == 1:
        return Parsed(names[0], "lenient")
    label = _id_only_item(text.strip(), by_id)
    return Parsed(label, "lenient") if not names and label is not None else FAILED


def _parse_multi(text: str, space: dict[str, Any]) -> Parsed:
    by_id, by_name = _label_maps(space)
    none = space.get("none")
    items = [i for i in _SEPARATORS.split(text.strip()) if i]
    none_item = _pattern("none_item", (none["id"], none["name"])) if none else None
    if none_item is not None and len(items) == 1 and none_item.match(items[0]):
        return Parsed([], "strict")
    strict = [_parse_label_item(i, by_id, by_name) for i in items]
    if items and all(strict) and len(set(strict)) == len(strict):
        return Parsed([label for label in space["labels"] if label in strict], "strict")
    found: set[str] = set(_names_in(text, by_name))
    found.update(label for label in (_id_only_item(item, by_id) for item in items) if label is not None)
    if found:
        return Parsed([label for label in space["labels"] if label in found], "lenient")
    if none is not None and _pattern("word_i", none["name"]).search(text):
        return Parsed([], "lenient")
    return FAILED


def _in_range(value: float, space: dict[str, Any]) -> bool:
    return space["min"] <= value <= space["max"]


def _parse_number(text: str, space: dict[str, Any]) -> Parsed:
    stripped = text.strip().rstrip(".")
    if _STRICT_NUMBER.match(stripped):
        value = float(stripped)
        return Parsed(value, "strict") if _in_range(value, space) else FAILED
    cue = _CUE_NUMBER.search(text)
    candidates = [cue.group(1)] if cue else _ANY_NUMBER.findall(text)
    if len(candidates) == 1 and _in_range(float(candidates[0]), space):
        return Parsed(float(candidates[0]), "lenient")
    return FAILED


def _parse_ordinal(text: str, space: dict[str, Any]) -> Parsed:
    match = _ORDINAL.match(text)
    if match:
        value = int(match.group(1))
        name = space["classes"].get(str(value))
        if name is not None and (match.group(2) is None or match.group(2).lower() == name.lower()):
            return Parsed(value, "strict")
    integers = [int(x) for x in _INTEGER.findall(text)]
    in_range = [x for x in integers if space["min"] <= x <= space["max"]]
    if len(set(in_range)) == 1:
        return Parsed(in_range[0], "lenient")
    return FAILED


def _parse_vad(text: str, space: dict[str, Any], spec: dict[str, Any]) -> Parsed:
    values, strict = {}, True
    for dim in space["dims"]:
        match = _pattern("vad", dim).search(text)
        if not match:
            return FAILED
        values[dim] = float(match.group(1))
        strict &= f"{dim}: {match.group(1)}" in text
    if not all(_in_range(v, space) for v in values.values()):
        return FAILED
    canonical = render_answer(values, spec, space)
    return Parsed(values, "strict" if strict and text.strip() == canonical else "lenient")


def _parse_terms(text: str, spec: dict[str, Any]) -> Parsed:
    separator = spec.get("separator", ", ")
    stripped = text.strip()
    terms = [t.strip() for t in stripped.split(separator.strip() or separator)]
    if stripped and all(terms) and "\n" not in stripped:
        return Parsed(terms, "strict")
    loose = [t.strip(" .\"'") for t in _SEPARATORS.split(stripped) if t.strip(" .\"'")]
    return Parsed(loose, "lenient") if loose else FAILED


def _parse_sections(text: str, spec: dict[str, Any], space: dict[str, Any]) -> Parsed:
    values, statuses = {}, []
    for task, part in spec["parts"].items():
        match = _pattern("section", part["title"]).search(text)
        if not match:
            return FAILED
        parsed = parse_answer(match.group(1), part, space["parts"][task])
        if parsed.status == "failed":
            return FAILED
        values[task] = parsed.value
        statuses.append(parsed.status)
    return Parsed(values, "strict" if all(s == "strict" for s in statuses) else "lenient")


def parse_answer(text: str, spec: dict[str, Any], space: dict[str, Any]) -> Parsed:
    """Parse a model reply written (ideally) in `spec`'s format into a gold-shaped value."""
    if not isinstance(text, str) or not text.strip():
        return FAILED
    fmt = spec["format"]
    if fmt == "numbered_label":
        return _parse_single(text, space)
    if fmt == "numbered_labels":
        return _parse_multi(text, space)
    if fmt == "number":
        return _parse_number(text, space)
    if fmt == "ordinal":
        return _parse_ordinal(text, space)
    if fmt == "vad":
        return _parse_vad(text, space, spec)
    if fmt == "terms":
        return _parse_terms(text, spec)
    if fmt == "sections":
        return _parse_sections(text, spec, space)
    raise ValueError(f"unknown answer format {fmt!r}")
