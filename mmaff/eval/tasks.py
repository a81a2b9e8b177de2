"""Evaluation tasks as data: `eval/tasks/<dataset>/<subtask>.yaml`, one file per registry subtask, holding only
what differs from the defaults of its target type.

A task is built in layers, each overriding the one before (``generation`` merged key by key, lists replaced):

1. ``every`` in `eval/tasks/_defaults.yaml` (split, greedy decoding, no grouping);
2. the section of the task's target type in the same file (``max_new_tokens``, metrics, primary);
3. the files named by the task's ``include:`` (relative to the task file; lm-eval style), in order;
4. the task file itself.

Files whose name starts with ``_`` are fragments to include, not tasks. The registry stays the single source of
dataset and subtask names, modality, target type and template family: the task's name is its path, the rest is
read from the registry (`load_tasks` refuses a file that names no registry subtask; `check_tasks` refuses a
registry subtask without a file). Groups: every task is in ``all`` and its modality; a file states the other
groups it belongs to (``groups: [mmaffben]`` for the paper's 14 datasets, the one place that list is written),
and a task outside ``mmaffben`` is in ``extensions``. A ``mmaffben`` task is also scored in `paper_compat` mode.
Unknown keys anywhere are errors naming the file and the key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmaff.data.registry import DatasetSpec, load_registry
from mmaff.data.schema import TARGET_TYPES
from mmaff.paths import TASKS_DIR

DEFAULTS_FILE = "_defaults.yaml"
EVERY = "every"  # the defaults section shared by all target types
PAPER_GROUP = "mmaffben"  # MMAFFBen's tasks: scored in paper_compat mode too
EXTENSIONS_GROUP = "extensions"  # every task outside PAPER_GROUP
MODALITIES = ("text", "image", "video")
DERIVED_GROUPS = frozenset({"all", EXTENSIONS_GROUP, *MODALITIES})

GROUP_KEYS = {"language", "emotion", "subset"}
TASK_KEYS = {"include", "split", "generation", "metrics", "primary", "group_by", "groups", "headline"}
# how the pooled headline of a task grouped by emotion is formed: one figure over all items, or SemEval-2018's
# official EI score (per language, the mean of the per-emotion figures; then the mean over languages)
HEADLINES = ("pooled", "emotion_mean")
DEFAULT_KEYS = TASK_KEYS - {"include"}


class TaskError(ValueError):
    """A task declaration that is malformed or disagrees with the registry (names the file and the key)."""


@dataclass(frozen=True, order=True)
class Decoding:
    """How a task's replies are generated: greedy (``do_sample`` false), or beam search returning the
    ``num_return_sequences`` best beams, ranked (MASIVE's Acc@k), each at most ``max_new_tokens`` long."""

    max_new_tokens: int
    num_beams: int = 1
    num_return_sequences: int = 1
    do_sample: bool = False

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "num_beams", "num_return_sequences"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.do_sample is not False:
            raise ValueError("do_sample must be false: evaluation decodes greedily (or with beams)")
        if self.num_return_sequences > self.num_beams:
            raise ValueError(
                f"num_return_sequences {self.num_return_sequences} > num_beams {self.num_beams} "
                "(greedy decoding has one answer)"
            )

    def override(
        self,
        max_new_tokens: int | None = None,
        num_beams: int | None = None,
        num_return_sequences: int | None = None,
    ) -> Decoding:
        """These settings with a run's overrides (None: keep). Fewer beams than the task returns lower the
        number returned to the number of beams unless `num_return_sequences` is given too."""
        returned = num_return_sequences or min(self.num_return_sequences, num_beams or self.num_beams)
        return dataclasses.replace(
            self,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            num_beams=num_beams or self.num_beams,
            num_return_sequences=returned,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class EvalTask:
    name: str
    dataset: str
    subtask: str
    modality: str
    split: str
    target_type: str
    template: str
    generation: Decoding
    metrics: tuple[str, ...]
    primary: str
    group_by: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    headline: str = "pooled"
    path: Path = field(default=Path(), compare=False)

    @property
    def paper_compat(self) -> bool:
        """MMAFFBen's notebook scores this task: report the paper-compatible mode as well."""
        return PAPER_GROUP in self.groups


# ------------------------------------------------------------------------------------------------ reading


def _read_mapping(path: Path, allowed: set[str], where: str = "") -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise TaskError(f"{path}: {err}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise TaskError(f"{path}: {where or 'the file'} must be a mapping of keys")
    _check_keys(path, data, allowed, where)
    return data


def _check_keys(path: Path, data: Mapping[str, Any], allowed: set[str], where: str = "") -> None:
    prefix = f"{where}." if where else ""
    for key in data:
        if key not in allowed:
            raise TaskError(f"{path}: unknown key {prefix}{key} (allowed: {sorted(allowed)})")
    generation = data.get("generation")
    if generation is not None:
        if not isinstance(generation, dict):
            raise TaskError(f"{path}: {prefix}generation must be a mapping")
        known = {f.name for f in dataclasses.fields(Decoding)}
        for key in generation:
            if key not in known:
                raise TaskError(f"{path}: unknown key {prefix}generation.{key} (allowed: {sorted(known)})")


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    merged = {**base, **{k: v for k, v in layer.items() if k not in ("generation", "include")}}
    merged["generation"] = {**base.get("generation", {}), **layer.get("generation", {})}
    return merged


def _with_includes(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's settings over those of its includes (in order, each with its own includes)."""
    if path in seen:
        raise TaskError(f"{path}: include cycle {' -> '.join(str(p) for p in (*seen, path))}")
    data = _read_mapping(path, TASK_KEYS)
    includes = data.get("include", [])
    includes = [includes] if isinstance(includes, str) else includes
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise TaskError(f"{path}: include must be a file name or a list of them")
    merged: dict[str, Any] = {}
    for name in includes:
        included = (path.parent / name).resolve()
        if not included.is_file():
            raise TaskError(f"{path}: include {name}: no such file ({included})")
        merged = _merge(merged, _with_includes(included, (*seen, path)))
    return _merge(merged, data)


def load_defaults(root: Path = TASKS_DIR) -> dict[str, dict[str, Any]]:
    """`_defaults.yaml`: section ``every`` and one section per target type, with the settings they give."""
    path = root / DEFAULTS_FILE
    data = _read_mapping(path, {EVERY, *TARGET_TYPES})
    for section, settings in data.items():
        if not isinstance(settings, dict):
            raise TaskError(f"{path}: {section} must be a mapping of keys")
        _check_keys(path, settings, DEFAULT_KEYS, section)
    return data


def _groups(path: Path, stated: Any, modality: str) -> tuple[str, ...]:
    if not isinstance(stated, list) or not all(isinstance(g, str) for g in stated):
        raise TaskError(f"{path}: groups must be a list of group names")
    if derived := sorted(DERIVED_GROUPS.intersection(stated)):
        raise TaskError(f"{path}: groups: {derived} are derived (all, the modality, extensions), not stated")
    extension = () if PAPER_GROUP in stated else (EXTENSIONS_GROUP,)
    return ("all", modality, *stated, *extension)


def _task(path: Path, root: Path, defaults: Mapping[str, Any], registry: Mapping[str, DatasetSpec]) -> EvalTask:
    relative = path.relative_to(root)
    dataset, subtask = relative.parent.as_posix(), relative.stem
    spec = registry.get(dataset)
    if spec is None or subtask not in spec.subtasks:
        raise TaskError(f"{path}: {dataset}/{subtask} is not a registry subtask (eval/tasks/<dataset>/<subtask>.yaml)")
    target_type = spec.subtasks[subtask].target_type
    settings = _merge(_merge(defaults.get(EVERY, {}), defaults.get(target_type, {})), _with_includes(path))
    missing = sorted({"split", "metrics", "primary", "group_by", "groups"} - set(settings))
    if missing or "max_new_tokens" not in settings["generation"]:
        raise TaskError(f"{path}: no value for {missing or ['generation.max_new_tokens']} (nor in {DEFAULTS_FILE})")
    try:
        generation = Decoding(**settings["generation"])
    except ValueError as err:
        raise TaskError(f"{path}: generation: {err}") from None
    return EvalTask(
        name=f"{dataset}/{subtask}",
        dataset=dataset,
        subtask=subtask,
        modality=spec.modality,
        split=str(settings["split"]),
        target_type=target_type,
        template=spec.subtasks[subtask].template,
        generation=generation,
        metrics=tuple(settings["metrics"]),
        primary=settings["primary"],
        group_by=tuple(settings["group_by"]),
        groups=_groups(path, settings["groups"], spec.modality),
        headline=str(settings.get("headline", "pooled")),
        path=path,
    )


def task_files(root: Path = TASKS_DIR) -> list[Path]:
    """The task files under `root`: `<dataset>/<subtask>.yaml`, fragments (``_*.yaml``) left out."""
    return sorted(p for p in root.rglob("*.yaml") if not p.name.startswith("_"))


def load_tasks(
    root: Path = TASKS_DIR, group: str | None = None, registry: Mapping[str, DatasetSpec] | None = None
) -> dict[str, EvalTask]:
    """Every task under `root` (or those of `group`), keyed `<dataset>/<subtask>`, in name order."""
    registry = registry if registry is not None else load_registry()
    defaults = load_defaults(root)
    tasks = {task.name: task for task in (_task(p, root, defaults, registry) for p in task_files(root))}
    if group is not None:
        tasks = {k: t for k, t in tasks.items() if group in t.groups}
        if not tasks:
            raise TaskError(f"no task in group {group!r}")
    return tasks


def tasks_in_group(group: str, root: Path = TASKS_DIR) -> tuple[str, ...]:
    """Names of the tasks in `group` (e.g. ``mmaffben``, whose list is the ``groups`` key of the task files)."""
    return tuple(load_tasks(root, group))


def record_task(record: Mapping[str, Any]) -> str:
    """The name of the task a corpus record belongs to."""
    return f"{record['dataset']}/{record['subtask']}"


# ----------------------------------------------------------------------------------------------- checking


def declarable_metrics() -> dict[str, set[str]]:
    """Per target type, the metric names a task may declare: those `mmaff.eval.metrics` registers with the type's
    scoring function (one registry); a joint task is scored part by part (`per_part`)."""
    from mmaff.eval.metrics import METRICS

    return {target: set(entry.metrics) for target, entry in METRICS.items()} | {"joint": {"per_part"}}


def _check_one(task: EvalTask) -> None:
    where = task.path
    allowed = declarable_metrics()[task.target_type]
    if not set(task.metrics) <= allowed or task.primary not in task.metrics:
        raise TaskError(f"{where}: metrics {task.metrics} / primary {task.primary} not in {sorted(allowed)}")
    if task.headline not in HEADLINES or (task.headline == "emotion_mean" and "emotion" not in task.group_by):
        raise TaskError(
            f"{where}: headline {task.headline!r} must be one of {list(HEADLINES)} (emotion_mean needs group_by emotion)"
        )
    if not set(task.group_by) <= GROUP_KEYS:
        raise TaskError(f"{where}: group_by {task.group_by} must be within {sorted(GROUP_KEYS)}")
    if task.target_type != "open" and task.generation.num_return_sequences > 1:
        raise TaskError(f"{where}: generation: only open-vocabulary tasks are scored on ranked replies")


def check_tasks(tasks: dict[str, EvalTask], registry: Mapping[str, DatasetSpec] | None = None) -> None:
    """Every task has known metrics and groupings, and every registry subtask has exactly one task."""
    registry = registry if registry is not None else load_registry()
    for task in tasks.values():
        _check_one(task)
    wanted = {f"{key}/{name}" for key, spec in registry.items() for name in spec.subtasks}
    if missing := sorted(wanted - set(tasks)):
        raise TaskError(f"registry subtasks without an eval task: {missing} (add eval/tasks/<dataset>/<subtask>.yaml)")
