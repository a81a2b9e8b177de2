"""Corpus records of one task as encoder examples: the record's text and its structured gold as head targets.

A task is a registry subtask, ``<dataset>/<subtask>``. Each head covers one target: the task itself, or each part
of a joint task (``semeval2018/V-reg+E-c`` -> heads SI and EC). Targets: multi -> multi-hot, single / ordinal ->
a class index, real -> the value. Records without text (image-only) cannot be read by a text encoder: they are
skipped and counted. Two-step tasks (gold of another subtask in the prompt) are refused: the encoder sees text only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmaff.data.registry import DatasetSpec, Subtask, load_registry
from mmaff.encode.corpus import read_records

HEAD_KINDS = ("multi", "single", "ordinal", "real")


class TaskError(ValueError):
    """A task the encoder recipe cannot train or predict as configured (the message names the fix)."""


@dataclass(frozen=True)
class Head:
    """One output head: its part name, kind, label names (class names; ``[name]`` for a real value) and space."""

    name: str
    kind: str
    labels: tuple[str, ...]
    space: dict[str, Any]

    @property
    def width(self) -> int:
        """Logit columns of the head."""
        return 1 if self.kind == "real" else len(self.labels)

    @property
    def target_width(self) -> int:
        """Columns of the head's target in a joint model's flat target vector (a class index takes one)."""
        return len(self.labels) if self.kind == "multi" else 1

    def target(self, gold: Any) -> float | int | list[float]:
        if self.kind == "multi":
            chosen = set(gold)
            return [1.0 if label in chosen else 0.0 for label in self.labels]
        if self.kind == "single":
            return self.labels.index(gold)
        if self.kind == "ordinal":
            return self.labels.index(str(gold))
        return float(gold)


@dataclass(frozen=True)
class EncoderTask:
    """A registry subtask as encoder heads (one head, or one per joint part)."""

    name: str  # <dataset>/<subtask>
    dataset: str
    subtask: Subtask
    spec: DatasetSpec
    heads: tuple[Head, ...]

    @property
    def joint(self) -> bool:
        return self.subtask.target_type == "joint"


def _head(name: str, subtask: Subtask, subtasks: dict[str, Subtask]) -> Head:
    space = subtask.label_space(subtasks)
    if subtask.target_type in ("multi", "single"):
        labels = tuple(space["labels"])
    elif subtask.target_type == "ordinal":
        labels = tuple(str(k) for k in sorted(int(k) for k in space["classes"]))
    elif subtask.target_type == "real":
        labels = (name,)
    else:
        raise TaskError(
            f"{subtask.name}: target type {subtask.target_type!r} has no encoder head (heads: {', '.join(HEAD_KINDS)}, "
            "or a joint task of them); MASIVE's open spans are the seq2seq recipe's"
        )
    return Head(name, subtask.target_type, labels, space)


def encoder_task(name: str, registry: dict[str, DatasetSpec] | None = None) -> EncoderTask:
    """`<dataset>/<subtask>` as heads; an unknown task or one the encoder cannot read is a `TaskError`."""
    registry = registry or load_registry()
    dataset, _, subtask_name = name.partition("/")
    if dataset not in registry or subtask_name not in registry[dataset].subtasks:
        raise TaskError(f"task {name!r}: not a registry subtask; give <dataset>/<subtask>, e.g. semeval2018/E-c")
    spec = registry[dataset]
    subtask = spec.subtasks[subtask_name]
    if subtask.given or subtask.asks:
        raise TaskError(
            f"task {name!r} is two-step (another subtask's gold in the prompt); the encoder reads text only: "
            f"train the joint task or the single parts instead"
        )
    if subtask.target_type == "joint":
        heads = tuple(_head(spec.subtasks[p].task, spec.subtasks[p], spec.subtasks) for p in subtask.parts)
    else:
        heads = (_head(subtask.task, subtask, spec.subtasks),)
    return EncoderTask(name, dataset, subtask, spec, heads)


@dataclass
class Examples:
    """Texts, targets and ids of one split of a task, and how many records were skipped for lack of text."""

    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    golds: list[Any] = field(default_factory=list)
    templates: list[str] = field(default_factory=list)  # style/family that wrote each record's answer
    skipped_no_text: int = 0

    def targets(self, task: EncoderTask) -> list[Any]:
        """The `labels` column: the one head's target, or a joint task's flat vector (parts in head order)."""
        if not task.joint:
            return [task.heads[0].target(gold) for gold in self.golds]
        rows = []
        for gold in self.golds:
            row: list[float] = []
            for head in task.heads:
                value = head.target(gold[head.name])
                row.extend(value if isinstance(value, list) else [float(value)])
            rows.append(row)
        return rows


def split_examples(corpus_root: str | Path, split: str, task: EncoderTask) -> Examples:
    """The task's records of `split` in file order; records without text are counted, not kept."""
    examples = Examples()
    try:
        records = read_records(corpus_root, split, datasets=[task.dataset])
    except FileNotFoundError:
        return examples
    for record in records:
        if record["subtask"] != task.subtask.name:
            continue
        if not (record.get("text") or "").strip():
            examples.skipped_no_text += 1
            continue
        examples.ids.append(record["id"])
        examples.texts.append(record["text"])
        examples.golds.append(record["gold"])
        examples.templates.append(record["template"]["name"])
    return examples
