"""The dataset registry: `data_builders/registry.yaml` loaded into typed specs.

The YAML holds facts only (source, licence, modality, languages, splits, subtasks, label sets). Builders
(`data_builders/<builder>.py`) read raw files; templates render prompts; this module ties them together.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from mmaff.data.dispositions import SeededSplits
from mmaff.data.schema import MODALITIES, TARGET_TYPES
from mmaff.paths import REGISTRY_PATH


class RegistryError(ValueError):
    pass


@dataclass(frozen=True)
class LabelSet:
    name: str
    ids: tuple[int, ...]
    labels: tuple[str, ...]
    none: dict[str, Any] | None = None  # the answer used when a multi-label item has no label ("0. neutral")

    def space(self) -> dict[str, Any]:
        return {"labels": list(self.labels), "ids": list(self.ids), "none": self.none}


@dataclass(frozen=True)
class Subtask:
    name: str
    task: str
    target_type: str
    template: str
    label_set: LabelSet | None = None
    range: tuple[float, float] | None = None
    classes: dict[int, str] | None = None  # ordinal class names, e.g. {2: "moderate"}
    dims: tuple[str, ...] | None = None  # VAD dimensions
    parts: tuple[str, ...] = ()  # joint: the subtasks answered together
    given: str | None = None  # two-step: subtask whose gold is shown in the prompt
    asks: str | None = None  # two-step: subtask that is asked
    description: str = ""

    def label_space(self, registry_subtasks: dict[str, Subtask]) -> dict[str, Any]:
        if self.target_type in ("single", "multi"):
            return self.label_set.space()
        if self.target_type == "real":
            return {"min": self.range[0], "max": self.range[1]}
        if self.target_type == "ordinal":
            return {
                "min": int(self.range[0]),
                "max": int(self.range[1]),
                "classes": {str(k): v for k, v in self.classes.items()},
            }
        if self.target_type == "vad":
            return {"dims": list(self.dims), "min": self.range[0], "max": self.range[1]}
        if self.target_type == "open":
            return {"vocabulary": "open"}
        parts = [registry_subtasks[p] for p in self.parts]
        return {
            "parts": {p.task: p.label_space(registry_subtasks) for p in parts},
            "types": {p.task: p.target_type for p in parts},
        }


@dataclass(frozen=True)
class DatasetSpec:
    key: str
    title: str
    source: str
    homepage: str
    license: str
    citation: str
    modality: str
    languages: tuple[str, ...]
    raw_dir: str
    builder: str
    splits: dict[str, Any]
    subtasks: dict[str, Subtask]
    prompt: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    option_choices: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # options with a closed set of values
    notes: str = ""
    bibtex: str = ""  # BibTeX entries to cite (the dataset card lists them)
    research_only: bool = True  # the licence restricts use to research (the dataset card asks for gating)

    def builder_module(self) -> ModuleType:
        return importlib.import_module(f"data_builders.{self.builder}")


def _label_set(name: str, raw: dict[str, Any]) -> LabelSet:
    labels = raw["labels"]
    return LabelSet(name, tuple(int(i) for i in labels), tuple(labels.values()), raw.get("none"))


def _subtask(name: str, raw: dict[str, Any], label_sets: dict[str, LabelSet], where: str) -> Subtask:
    target = raw["target"]
    if target not in TARGET_TYPES:
        raise RegistryError(f"{where}: unknown target {target!r}")
    label_set = None
    if target in ("single", "multi"):
        if raw.get("labels") not in label_sets:
            raise RegistryError(f"{where}: unknown label set {raw.get('labels')!r}")
        label_set = label_sets[raw["labels"]]
    classes = {int(k): v for k, v in raw["classes"].items()} if "classes" in raw else None
    if classes and not all(isinstance(v, str) for v in classes.values()):
        raise RegistryError(f"{where}: class names must be strings (quote YAML words like 'no')")
    return Subtask(
        name=name,
        task=raw["task"],
        target_type=target,
        template=raw["template"],
        label_set=label_set,
        range=tuple(raw["range"]) if "range" in raw else None,
        classes=classes,
        dims=tuple(raw["dims"]) if "dims" in raw else None,
        parts=tuple(raw.get("parts", ())),
        given=raw.get("given"),
        asks=raw.get("asks"),
        description=raw.get("description", ""),
    )


def _dataset(key: str, raw: dict[str, Any], label_sets: dict[str, LabelSet]) -> DatasetSpec:
    if raw["modality"] not in MODALITIES:
        raise RegistryError(f"{key}: unknown modality {raw['modality']!r}")
    subtasks = {name: _subtask(name, st, label_sets, f"{key}.{name}") for name, st in raw["subtasks"].items()}
    if raw["splits"].get("strategy") == "seeded":
        try:
            SeededSplits.from_config(raw["splits"])
        except ValueError as err:
            raise RegistryError(f"{key}: {err}") from None
    for st in subtasks.values():
        missing = [p for p in (*st.parts, st.given, st.asks) if p and p not in subtasks]
        if missing:
            raise RegistryError(f"{key}.{st.name}: refers to unknown subtasks {missing}")
    return DatasetSpec(
        key=key,
        title=raw["title"],
        source=raw["source"],
        homepage=raw.get("homepage", ""),
        license=raw["license"],
        citation=raw.get("citation", ""),
        modality=raw["modality"],
        languages=tuple(raw["languages"]),
        raw_dir=raw.get("raw_dir", key),
        builder=raw.get("builder", key),
        splits=raw["splits"],
        subtasks=subtasks,
        prompt=raw.get("prompt", {}),
        options=raw.get("options", {}),
        option_choices={name: tuple(values) for name, values in raw.get("option_choices", {}).items()},
        notes=raw.get("notes", ""),
        bibtex=raw.get("bibtex", "").strip(),
        research_only=bool(raw.get("research_only", True)),
    )


@functools.cache
def load_registry(path: Path = REGISTRY_PATH) -> dict[str, DatasetSpec]:
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    label_sets = {name: _label_set(name, ls) for name, ls in raw["label_sets"].items()}
    return {key: _dataset(key, ds, label_sets) for key, ds in raw["datasets"].items()}
