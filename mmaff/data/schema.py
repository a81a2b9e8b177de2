"""The unified record: what builders yield (`Example`, `Reject`) and what the corpus stores (one JSONL dict).

A corpus record is one training/eval item:

    id           stable, derived from the source's own ids: "<dataset>/<subset>/<subtask>[/<facet>...]/<source id>"
    dataset      registry key                      subset   e.g. "en", "usual", "projections"
    subtask      registry subtask key ("E-c")      task     SP | SI | EC | EI | VAD | ASI | joint "SI+EC" | two-step "SI>EC"
    target_type  single | multi | real | ordinal | vad | open | joint
    language     ISO 639-1 code                    modality text | image | video
    split        train | validation | test
    messages     [{"role", "content": [{"type": "text", "text": ...} | {"type": "image"} | {"type": "video"}]}]
    images, videos   media paths, relative to the corpus directory (`media/<dataset>/...`)
    visual_tokens    Qwen2.5-VL visual tokens of all media under the build's budgets (0 for text)
    media        per image/video: kind, width, height (+ frames, fps, sampled_frames for videos), tokens
    text         the raw input text (tweet, review, transcript) or null
    gold         structured gold: a label, a list of labels, a number, {dim: number}, [terms] or {task: gold}
    given        two-step records: the gold of the first step shown in the prompt ({task: gold}); else null
    label_space  what gold may be (see `check_gold`)
    template     {"name", "version"}
    source       {"file", "line", "source_id", ...} provenance and source metadata
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

TARGET_TYPES = ("single", "multi", "real", "ordinal", "vad", "open", "joint")
MODALITIES = ("text", "image", "video")
SPLITS = ("train", "validation", "test")
RECORD_KEYS = (
    "id", "dataset", "subset", "subtask", "task", "target_type", "language", "modality", "split",
    "messages", "images", "videos", "visual_tokens", "media", "text", "gold", "given", "label_space", "template",
    "source",
)  # fmt: skip


def _string(name: str) -> dict[str, str]:
    return {"name": name, "dtype": "string"}


# The Arrow schema of a record as a dataset card's `dataset_info.features` list (plain data, so writing a card
# needs no `datasets` import). `gold`, `given`, `label_space` and `source` change shape with the task: Json.
ARROW_FEATURES = [
    *(
        _string(k)
        for k in ("id", "dataset", "subset", "subtask", "task", "target_type", "language", "modality", "split")
    ),
    {"name": "messages", "list": [_string("role"), {"name": "content", "list": [_string("type"), _string("text")]}]},
    {"name": "images", "list": "string"},
    {"name": "videos", "list": "string"},
    {"name": "visual_tokens", "dtype": "int64"},
    {"name": "media", "dtype": "json"},
    _string("text"),
    {"name": "gold", "dtype": "json"},
    {"name": "given", "dtype": "json"},
    {"name": "label_space", "dtype": "json"},
    {"name": "template", "struct": [_string("name"), {"name": "version", "dtype": "int64"}]},
    {"name": "source", "dtype": "json"},
]
_TASK_RE = re.compile(r"^(SP|SI|EC|EI|VAD|ASI)([+>](SP|SI|EC|EI|VAD|ASI))*$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]+)?$")
ID_RE = re.compile(r"^[^\s/]+(/[^\s/]+){3,}$")  # dataset/subset/subtask[/facet...]/source id


class RecordError(ValueError):
    """A record or gold value that violates the schema; `reason` is the code written to rejects."""

    def __init__(self, message: str, reason: str = "invalid_record") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Example:
    """One normalised item yielded by a builder; the pipeline turns it into a corpus record.

    `facet` holds template variables that also distinguish records of one source row (e.g. the emotion
    of an EI item) and are therefore part of the id. `primary=False` marks extra records derived from
    rows already counted (joint and two-step records), so per-file row accounting stays exact.
    """

    source_id: str
    subtask: str
    language: str
    gold: Any
    file: str
    line: int
    text: str | None = None
    split: str | None = None
    subset: str | None = None
    facet: dict[str, str] = field(default_factory=dict)
    given: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    dedup_text: str | None = None
    split_group: str | None = None
    images: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)
    primary: bool = True
    media: list[dict[str, Any]] = field(default_factory=list)  # filled by the pipeline: size, frames, tokens per item


class RowError(ValueError):
    """Raised by a builder's row parser for a bad row; the builder turns it into a Reject at that row."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


@dataclass
class Reject:
    """An input row that produced no record, with the reason and where it was."""

    file: str
    line: int
    reason: str
    excerpt: str = ""
    detail: str = ""


def excerpt(raw: Any, limit: int = 200) -> str:
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= limit else text[:limit] + "…"


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_gold(gold: Any, target_type: str, label_space: dict[str, Any]) -> None:
    """Raise RecordError unless `gold` is a valid value of `target_type` inside `label_space`.

    label_space by target type:
      single / multi: {"labels": [names], "ids": [ints], "none": {"id", "name"} | null}  (multi: [] means none)
      real / ordinal: {"min", "max"} (+ "classes" for ordinal: {value: name})
      vad:            {"dims": [names], "min", "max"}
      open:           {"vocabulary": "open"}
      joint:          {"parts": {task: label_space}, "types": {task: target_type}}
    """
    if target_type == "single":
        if gold not in label_space["labels"]:
            raise RecordError(f"label {gold!r} is not in the label set", "label_not_in_label_set")
    elif target_type == "multi":
        if not isinstance(gold, list) or len(set(gold)) != len(gold):
            raise RecordError(f"multi-label gold must be a list without repeats, got {gold!r}", "invalid_gold")
        unknown = [g for g in gold if g not in label_space["labels"]]
        if unknown:
            raise RecordError(f"labels {unknown!r} are not in the label set", "label_not_in_label_set")
        if label_space.get("none") is None and not gold:
            raise RecordError("empty label list but the label set has no 'none' option", "empty_label_set")
    elif target_type in ("real", "ordinal"):
        if not _finite_number(gold) or (target_type == "ordinal" and not isinstance(gold, int)):
            kind = "int" if target_type == "ordinal" else "number"
            raise RecordError(f"{target_type} gold must be a finite {kind}, got {gold!r}", "invalid_gold")
        if not label_space["min"] <= gold <= label_space["max"]:
            raise RecordError(
                f"score {gold} outside [{label_space['min']}, {label_space['max']}]", "score_out_of_range"
            )
    elif target_type == "vad":
        if not isinstance(gold, dict) or list(gold) != label_space["dims"]:
            raise RecordError(f"VAD gold must have dims {label_space['dims']}, got {gold!r}")
        for dim, value in gold.items():
            if not _finite_number(value) or not label_space["min"] <= value <= label_space["max"]:
                raise RecordError(
                    f"{dim} {value!r} outside [{label_space['min']}, {label_space['max']}]", "score_out_of_range"
                )
    elif target_type == "open":
        if not isinstance(gold, list) or not gold or not all(isinstance(t, str) and t.strip() for t in gold):
            raise RecordError(f"open gold must be a non-empty list of terms, got {gold!r}", "invalid_gold")
    elif target_type == "joint":
        if not isinstance(gold, dict) or list(gold) != list(label_space["parts"]):
            raise RecordError(f"joint gold must have parts {list(label_space['parts'])}, got {gold!r}")
        for task, part in gold.items():
            check_gold(part, label_space["types"][task], label_space["parts"][task])
    else:
        raise RecordError(f"unknown target_type {target_type!r}")


def _check_messages(record: dict[str, Any]) -> None:
    messages = record["messages"]
    if not isinstance(messages, list) or len(messages) < 2:
        raise RecordError("messages must be a list with at least a user and an assistant turn")
    counts = {"image": 0, "video": 0}
    for message in messages:
        if message.get("role") not in ("system", "user", "assistant") or not isinstance(message.get("content"), list):
            raise RecordError(f"bad message {message!r}")
        for part in message["content"]:
            kind = part.get("type")
            if kind == "text":
                if not isinstance(part.get("text"), str) or not part["text"]:
                    raise RecordError("empty text part")
            elif kind in counts:
                counts[kind] += 1
            else:
                raise RecordError(f"unknown content part type {kind!r}")
    if messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
        raise RecordError("the last two turns must be user then assistant")
    if counts["image"] != len(record["images"]) or counts["video"] != len(record["videos"]):
        raise RecordError(
            f"{counts['image']} image / {counts['video']} video parts but "
            f"{len(record['images'])} images / {len(record['videos'])} videos"
        )


def _check_shared(record: dict[str, Any]) -> None:
    """Fields every record of one dataset subtask shares (checked once per subtask by the builder)."""
    if not _TASK_RE.match(record["task"]):
        raise RecordError(f"bad task {record['task']!r}")
    if record["target_type"] not in TARGET_TYPES:
        raise RecordError(f"bad target_type {record['target_type']!r}")
    if ("+" in record["task"]) != (record["target_type"] == "joint"):
        raise RecordError("joint tasks (A+B) and target_type 'joint' go together")
    if record["modality"] not in MODALITIES:
        raise RecordError(f"bad modality {record['modality']!r}")
    template = record["template"]
    if not isinstance(template, dict) or set(template) != {"name", "version"}:
        raise RecordError("template must be {name, version}")


def validate_item(record: dict[str, Any]) -> None:
    """The checks that depend on the item's data: id, split, language, text, media paths, provenance."""
    if not ID_RE.match(record["id"]) or not record["id"].startswith(record["dataset"] + "/"):
        raise RecordError(f"bad id {record['id']!r}")
    if ">" in record["task"] and not record["given"]:
        raise RecordError("two-step tasks (A>B) need 'given'")
    if record["split"] not in SPLITS:
        raise RecordError(f"bad split {record['split']!r}")
    if not LANGUAGE_RE.match(record["language"]):
        raise RecordError(f"bad language {record['language']!r}")
    if record["text"] is not None and not record["text"].strip():
        raise RecordError("text is empty", "empty_text")
    for key in ("images", "videos"):
        if record[key] and not all(
            isinstance(p, str) and p and not p.startswith("/") and ".." not in p.split("/") for p in record[key]
        ):
            raise RecordError(f"{key} must be relative paths inside the corpus/media root")
    n_media = len(record["images"]) + len(record["videos"])
    if not isinstance(record["media"], list) or len(record["media"]) != n_media:
        raise RecordError(f"media must describe each of the {n_media} images/videos")
    if record["visual_tokens"] != sum(m.get("tokens", 0) for m in record["media"]):
        raise RecordError("visual_tokens must be the sum of the media tokens")
    source = record["source"]
    if not isinstance(source, dict) or "file" not in source or "line" not in source or "source_id" not in source:
        raise RecordError("source must carry file, line and source_id")


def validate_record(record: dict[str, Any]) -> None:
    """Raise RecordError if `record` is not a valid corpus record."""
    if tuple(record) != RECORD_KEYS:
        raise RecordError(f"record keys must be {RECORD_KEYS}, got {tuple(record)}")
    _check_shared(record)
    _check_messages(record)
    validate_item(record)
    check_gold(record["gold"], record["target_type"], record["label_space"])
