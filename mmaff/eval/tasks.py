"""Evaluation tasks as data: `eval/tasks/<dataset>/<subtask>.yaml`, one declaration per dataset x subtask.

A task says which split to score, which template family parses the replies (the same declaration that wrote the
training answers), how to generate (greedy, a small `max_new_tokens` per target type), which metrics to report
and which one is primary, how to group (per language, per emotion) and which groups it belongs to (`all`,
`text` / `image` / `video`, `mmaffben` for the paper's 14 datasets, `extensions` for ours). The registry stays
the single source of dataset and subtask names: every task must name a registry subtask and every registry
subtask must have a task (`check_tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmaff.data.registry import DatasetSpec, load_registry
from mmaff.paths import TASKS_DIR

METRICS_BY_TARGET = {
    "single": {"accuracy", "macro_f1", "micro_f1"},
    "multi": {"jaccard", "micro_f1", "macro_f1"},
    "real": {"pearson", "spearman", "mae"},
    "ordinal": {"pearson", "accuracy", "macro_f1"},
    "vad": {"pearson_per_dimension", "pearson_mean"},
    "open": {f"acc@{k}{suffix}" for k in (1, 3, 5) for suffix in ("", "_normalised")},
    "joint": {"per_part"},
}
GROUP_KEYS = {"language", "emotion"}
FIELDS = {
    "task",
    "dataset",
    "subtask",
    "modality",
    "split",
    "target_type",
    "template",
    "generation",
    "metrics",
    "primary",
    "group_by",
    "groups",
    "paper_compat",
}


class TaskError(ValueError):
    """A task declaration that is malformed or disagrees with the registry (names the file)."""


@dataclass(frozen=True)
class EvalTask:
    name: str
    dataset: str
    subtask: str
    modality: str
    split: str
    target_type: str
    template: str
    generation: dict[str, Any]
    metrics: tuple[str, ...]
    primary: str
    group_by: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    paper_compat: bool = False
    path: Path = field(default=Path(), compare=False)


def _read(path: Path) -> EvalTask:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) != FIELDS:
        missing, extra = FIELDS - set(data or {}), set(data or {}) - FIELDS
        raise TaskError(f"{path}: fields missing {sorted(missing)}, unknown {sorted(extra)}")
    return EvalTask(
        name=data["task"],
        dataset=data["dataset"],
        subtask=str(data["subtask"]),
        modality=data["modality"],
        split=data["split"],
        target_type=data["target_type"],
        template=data["template"],
        generation=dict(data["generation"]),
        metrics=tuple(data["metrics"]),
        primary=data["primary"],
        group_by=tuple(data["group_by"]),
        groups=tuple(data["groups"]),
        paper_compat=bool(data["paper_compat"]),
        path=path,
    )


def load_tasks(root: Path = TASKS_DIR, group: str | None = None) -> dict[str, EvalTask]:
    """Every task under `root` (or those of `group`), keyed `<dataset>/<subtask>`, in name order."""
    tasks = {}
    for path in sorted(root.rglob("*.yaml")):
        task = _read(path)
        if task.name in tasks:
            raise TaskError(f"{path}: task {task.name} is also declared in {tasks[task.name].path}")
        tasks[task.name] = task
    if group is not None:
        tasks = {k: t for k, t in tasks.items() if group in t.groups}
        if not tasks:
            raise TaskError(f"no task in group {group!r}")
    return tasks


def _check_one(task: EvalTask, registry: dict[str, DatasetSpec]) -> None:
    where = task.path
    spec = registry.get(task.dataset)
    if spec is None or task.subtask not in spec.subtasks:
        raise TaskError(f"{where}: {task.dataset}/{task.subtask} is not a registry subtask")
    subtask = spec.subtasks[task.subtask]
    expected = {
        "task": f"{task.dataset}/{task.subtask}",
        "modality": spec.modality,
        "target_type": subtask.target_type,
        "template": subtask.template,
    }
    actual = {"task": task.name, "modality": task.modality, "target_type": task.target_type, "template": task.template}
    if actual != expected:
        raise TaskError(f"{where}: {actual} disagrees with the registry {expected}")
    allowed = METRICS_BY_TARGET[task.target_type]
    if not set(task.metrics) <= allowed or task.primary not in task.metrics:
        raise TaskError(f"{where}: metrics {task.metrics} / primary {task.primary} not in {sorted(allowed)}")
    if not set(task.group_by) <= GROUP_KEYS or {"all", task.modality} - set(task.groups):
        raise TaskError(f"{where}: group_by must be within {sorted(GROUP_KEYS)}; groups must include all + modality")
    if task.generation.get("do_sample", False) or not task.generation.get("max_new_tokens"):
        raise TaskError(f"{where}: generation must be greedy with a max_new_tokens")


def check_tasks(tasks: dict[str, EvalTask], registry: dict[str, DatasetSpec] | None = None) -> None:
    """Every task matches the registry, and every registry subtask has exactly one task."""
    registry = registry or load_registry()
    for task in tasks.values():
        _check_one(task, registry)
    wanted = {f"{key}/{name}" for key, spec in registry.items() for name in spec.subtasks}
    if missing := sorted(wanted - set(tasks)):
        raise TaskError(f"registry subtasks without an eval task: {missing} (add eval/tasks/<dataset>/<subtask>.yaml)")
