"""The mixture YAML (which datasets x subtasks x splits are built, caps, weights, options, media budget), validated
whole before any work: every problem is reported as `<mixture file>: <key path>: <what> (allowed: ...)`.

Options. A dataset's options are the keys of its `options:` in data_builders/registry.yaml (each with its
default, whose type a mixture's value must have; null = any scalar), plus the pipeline's options below.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from mmaff.data.media import DECODERS, MediaBudget
from mmaff.data.registry import DatasetSpec
from mmaff.data.schema import SPLITS
from mmaff.data.templates import STYLE_FILE, TEMPLATES_DIR

DEFAULT_STYLE = "mmaffben"
TOP_KEYS = ("name", "template_style", "media_budget", "datasets")
ENTRY_KEYS = ("subtasks", "splits", "weight", "train_cap_per_language", "train_caps", "options")
# options the pipeline reads (mmaff/stage.py) for every video dataset: {name: (default, allowed values or None)}
VIDEO_OPTIONS: dict[str, tuple[Any, tuple[Any, ...] | None]] = {
    "extract_frames": (False, None),
    "decoder": ("auto", ("auto", *DECODERS)),
}
_PAIRED_BUDGETS = (("image_min_pixels", "image_max_pixels"), ("video_min_pixels", "video_max_pixels"))
_PAIRED_BUDGETS += (("video_min_frames", "video_max_frames"),)


class MixtureError(ValueError):
    """A mixture that cannot be built; the message names the file and the key."""


@dataclass(frozen=True)
class Entry:
    """One mixture line: a dataset, the subtasks and splits taken from it, a train cap and a sampling weight."""

    dataset: str
    subtasks: tuple[str, ...]
    splits: tuple[str, ...]
    weight: float
    caps: dict[str, int | None]
    options: dict[str, Any]


@dataclass(frozen=True)
class Mixture:
    name: str
    template_style: str
    budget: MediaBudget
    entries: list[Entry]


class _Checker:
    """Type checks that raise MixtureError naming the file and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, what: str, allowed: Any = None) -> MixtureError:
        if isinstance(allowed, (list, tuple, set, frozenset, dict)):
            allowed = ", ".join(map(str, allowed)) or "none"
        suffix = f" (allowed: {allowed})" if allowed is not None else ""
        return MixtureError(f"{self.path}: {where or '(top level)'}: {what}{suffix}")

    def mapping(self, value: Any, where: str, allowed_keys: Any, unknown: str = "unknown key") -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"expected a mapping, got {_shown(value)}")
        for key in value:
            if key not in allowed_keys:
                raise self.fail(f"{where}.{key}" if where else str(key), unknown, sorted(allowed_keys))
        return value

    def names(self, value: Any, where: str, allowed: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, f"expected a non-empty list, got {_shown(value)}", list(allowed))
        for i, item in enumerate(value):
            if item not in allowed:
                raise self.fail(f"{where}[{i}]", f"unknown value {_shown(item)}", list(allowed))
        if len(set(value)) != len(value):
            raise self.fail(where, "lists a value twice")
        return tuple(value)

    def number(self, value: Any, where: str, *, whole: bool, minimum: float, exclusive: bool = False) -> Any:
        kinds = (int,) if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = "a whole number" if whole else "a number"
            raise self.fail(where, f"expected {kind}, got {_shown(value)}")
        if value < minimum or (exclusive and value == minimum):
            raise self.fail(where, f"must be {'>' if exclusive else '>='} {minimum}, got {value}")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {_shown(value)}")
        return value


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, (dict, list)) else type(value).__name__


def template_styles() -> list[str]:
    """The record template styles: folders with a `_style.yaml` (not, e.g., `templates/synth/`, the generation
    prompts of `mmaff synth`)."""
    return sorted(p.name for p in TEMPLATES_DIR.iterdir() if (p / STYLE_FILE).is_file())


def _budget(check: _Checker, raw: Any) -> MediaBudget:
    names = [f.name for f in fields(MediaBudget)]
    cfg = check.mapping(raw, "media_budget", names)
    for f in fields(MediaBudget):
        if f.name in cfg:
            check.number(
                cfg[f.name], f"media_budget.{f.name}", whole=isinstance(f.default, int), minimum=0, exclusive=True
            )
    budget = MediaBudget(**cfg)
    for low, high in _PAIRED_BUDGETS:
        if getattr(budget, low) > getattr(budget, high):
            raise check.fail(f"media_budget.{low}", f"{getattr(budget, low)} is above {high} {getattr(budget, high)}")
    return budget


def allowed_options(spec: DatasetSpec) -> dict[str, tuple[Any, tuple[Any, ...] | None]]:
    """{option: (default, allowed values or None)} for a dataset: its registry options, plus the pipeline's."""
    allowed = {name: (default, spec.option_choices.get(name)) for name, default in spec.options.items()}
    return allowed | (VIDEO_OPTIONS if spec.modality == "video" else {})


def _options(check: _Checker, raw: Any, spec: DatasetSpec, where: str) -> dict[str, Any]:
    allowed = allowed_options(spec)
    options = check.mapping(raw, where, allowed)
    for name, value in options.items():
        default, choices = allowed[name]
        if choices is not None and value not in choices:
            raise check.fail(f"{where}.{name}", f"unknown value {_shown(value)}", list(choices))
        if default is None:
            ok = value is None or isinstance(value, (str, int, float, bool))
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise check.fail(f"{where}.{name}", f"expected {type(default).__name__}, got {_shown(value)}")
    return dict(options)


def _entry(check: _Checker, key: str, raw: Any, spec: DatasetSpec) -> Entry:
    where = f"datasets.{key}"
    cfg = check.mapping(raw, where, ENTRY_KEYS)
    all_subtasks = list(spec.subtasks)
    subtasks = check.names(cfg["subtasks"], f"{where}.subtasks", all_subtasks) if "subtasks" in cfg else None
    subtasks = subtasks or tuple(all_subtasks)
    splits = check.names(cfg["splits"], f"{where}.splits", SPLITS) if "splits" in cfg else SPLITS
    weight = float(check.number(cfg.get("weight", 1.0), f"{where}.weight", whole=False, minimum=0))
    cap = cfg.get("train_cap_per_language")
    if cap is not None:
        check.number(cap, f"{where}.train_cap_per_language", whole=True, minimum=0)
    caps: dict[str, int | None] = dict.fromkeys(subtasks, cap)
    for subtask, value in check.mapping(cfg.get("train_caps"), f"{where}.train_caps", subtasks).items():
        if value is not None:
            check.number(value, f"{where}.train_caps.{subtask}", whole=True, minimum=0)
        caps[subtask] = value
    options = _options(check, cfg.get("options"), spec, f"{where}.options")
    return Entry(key, subtasks, tuple(splits), weight, caps, options)


def read_yaml(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise MixtureError(f"cannot read mixture {path}: {' '.join(str(err).split())}") from None


def validate(raw: Any, path: Path, registry: dict[str, DatasetSpec]) -> Mixture:
    """The whole mixture checked; MixtureError at the first problem."""
    check = _Checker(path)
    if not isinstance(raw, dict):
        raise check.fail("", f"expected a mapping, got {_shown(raw)}", TOP_KEYS)
    check.mapping(raw, "", TOP_KEYS)
    name = check.text(raw.get("name", "mmaffin"), "name")
    style = check.text(raw.get("template_style", DEFAULT_STYLE), "template_style")
    if style not in template_styles():
        raise check.fail("template_style", f"no templates/{style}/ folder", template_styles())
    budget = _budget(check, raw.get("media_budget"))
    if raw.get("datasets") is None:
        raise check.fail("datasets", "a mixture needs a `datasets:` mapping")
    datasets = check.mapping(
        raw["datasets"], "datasets", registry, "unknown dataset (not in data_builders/registry.yaml)"
    )
    entries = [_entry(check, key, cfg, registry[key]) for key, cfg in datasets.items()]
    return Mixture(name, style, budget, entries)


def load(path: Path, registry: dict[str, DatasetSpec]) -> Mixture:
    return validate(read_yaml(path), path, registry)
