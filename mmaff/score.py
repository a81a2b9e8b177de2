"""Scoring predictions against a built corpus, joined on record ids only (never on row positions).

This part reads a predictions JSONL (`{"id", "prediction"}` lines, as `mmaff.predictions` writes them), joins
it to the corpus items of the selected tasks, reports coverage per dataset/subtask/language, and parses every
reply with the template family that wrote the training answers (strict / lenient / failed).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mmaff.answers import Parsed
from mmaff.registry import DatasetSpec, load_registry
from mmaff.tasks import EvalTask
from mmaff.templates import load_template


class ScoringError(ValueError):
    """Predictions that cannot be joined as given (names the file, line or ids)."""


@dataclass(frozen=True)
class Item:
    """One corpus record reduced to what scoring needs."""

    id: str
    task: str  # <dataset>/<subtask>
    language: str
    gold: Any
    emotion: str | None
    template: str  # style/family


def read_predictions(path: str | Path) -> dict[str, str]:
    """id -> raw prediction text. Duplicate ids, missing keys or bad JSON are errors naming the line."""
    predictions: dict[str, str] = {}
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise ScoringError(f"{path}:{number}: not JSON ({error})") from None
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or "prediction" not in row:
                raise ScoringError(f'{path}:{number}: expected {{"id": str, "prediction": ...}}')
            if row["id"] in predictions:
                raise ScoringError(f"{path}:{number}: duplicate id {row['id']!r}")
            prediction = row["prediction"]
            predictions[row["id"]] = prediction if isinstance(prediction, str) else json.dumps(prediction)
    return predictions


def corpus_items(corpus_root: str | Path, tasks: dict[str, EvalTask]) -> dict[str, Item]:
    """The items of `tasks` from the corpus's split files (JSONL, read directly: only a few fields are needed)."""
    root = Path(corpus_root)
    items: dict[str, Item] = {}
    wanted = {(t.dataset, t.subtask): t for t in tasks.values()}
    for split in sorted({t.split for t in tasks.values()}):
        for path in sorted((root / split).glob("*.jsonl")):
            with open(path, "rb") as f:
                for line in f:
                    record = orjson.loads(line)
                    task = wanted.get((record["dataset"], record["subtask"]))
                    if task is None or task.split != split:
                        continue
                    items[record["id"]] = Item(
                        id=record["id"],
                        task=task.name,
                        language=record["language"],
                        gold=record["gold"],
                        emotion=(record.get("source") or {}).get("emotion"),
                        template=record["template"]["name"],
                    )
    return items


@dataclass
class Coverage:
    """Predicted / expected items per task and language, and the ids that do not belong."""

    expected: Counter = field(default_factory=Counter)
    predicted: Counter = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unknown

    def as_dict(self) -> dict[str, Any]:
        cells = {
            f"{task}|{language}": [self.predicted[(task, language)], n]
            for (task, language), n in sorted(self.expected.items())
        }
        return {
            "complete": self.complete,
            "predicted_of_expected": cells,
            "missing": len(self.missing),
            "unknown": len(self.unknown),
            "missing_examples": self.missing[:10],
            "unknown_examples": self.unknown[:10],
        }


def join(predictions: dict[str, str], items: dict[str, Item], *, allow_partial: bool = False) -> Coverage:
    """Check that predictions and items match id for id; with `allow_partial`, report instead of failing."""
    coverage = Coverage()
    for item in items.values():
        coverage.expected[(item.task, item.language)] += 1
        if item.id in predictions:
            coverage.predicted[(item.task, item.language)] += 1
        else:
            coverage.missing.append(item.id)
    coverage.unknown = sorted(set(predictions) - set(items))
    coverage.missing.sort()
    if not coverage.complete and not allow_partial:
        raise ScoringError(
            f"predictions do not cover the tasks exactly: {len(coverage.missing)} missing "
            f"(e.g. {coverage.missing[:3]}), {len(coverage.unknown)} unknown (e.g. {coverage.unknown[:3]}); "
            "check the corpus and task selection, or pass --allow-partial to score what is there"
        )
    return coverage


class ReplyParser:
    """Parses replies with the template that wrote each item's training answer."""

    def __init__(self, registry: dict[str, DatasetSpec] | None = None) -> None:
        self.registry = registry or load_registry()

    def parse(self, item: Item, reply: str) -> Parsed:
        dataset, subtask_name = item.task.split("/", 1)
        subtasks = self.registry[dataset].subtasks
        style, family = item.template.split("/", 1)
        return load_template(family, style).parse(reply.strip(), subtasks[subtask_name], subtasks)


def parse_all(predictions: dict[str, str], items: dict[str, Item]) -> tuple[dict[str, Parsed], dict[str, Any]]:
    """Parsed replies of the covered items, and parse statuses per task and language."""
    parser = ReplyParser()
    parsed: dict[str, Parsed] = {}
    statuses: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for item_id, item in items.items():
        if item_id not in predictions:
            continue
        parsed[item_id] = parser.parse(item, predictions[item_id])
        statuses[(item.task, item.language)][parsed[item_id].status] += 1
    report = {
        f"{task}|{language}": {**dict(counts), "failure_rate": counts["failed"] / sum(counts.values())}
        for (task, language), counts in sorted(statuses.items())
    }
    return parsed, report
