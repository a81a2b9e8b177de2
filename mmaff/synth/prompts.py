"""Prompts of the generation and judge passes, rendered from `templates/synth/{generate,judge}.yaml` through the
project's template loader (`mmaff.data.templates`) with the per-language profiles of `templates/synth/profiles.yaml`.

Every sample records `template_version()`: the template names and versions and the profiles' version.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from mmaff.data.templates import Template, load_template
from mmaff.paths import TEMPLATES_DIR
from mmaff.synth.plan import PlannedSample

STYLE = "synth"
PROFILES_FILE = TEMPLATES_DIR / STYLE / "profiles.yaml"
GENERATE, JUDGE = "generate", "judge"


@functools.cache
def load_profiles(path: Path = PROFILES_FILE) -> dict[str, Any]:
    """The profiles file: version, text_types, length_bands, languages."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def template(family: str) -> Template:
    return load_template(family, STYLE)


def versions() -> dict[str, Any]:
    """What a sample's metadata records of the prompts that made it."""
    return {
        "generate_template": f"{STYLE}/{GENERATE}@{template(GENERATE).version}",
        "judge_template": f"{STYLE}/{JUDGE}@{template(JUDGE).version}",
        "profiles_version": load_profiles()["version"],
    }


def _messages(family: str, ctx: dict[str, Any]) -> list[dict[str, str]]:
    chosen = template(family)
    messages = [{"role": "system", "content": chosen.system}] if chosen.system else []
    return [*messages, {"role": "user", "content": chosen.user.render(ctx).strip()}]


def generation_messages(sample: PlannedSample) -> list[dict[str, str]]:
    profiles = load_profiles()
    band = profiles["length_bands"][sample.length_band]
    ctx = {
        "language": sample.language,
        "profile": profiles["languages"][sample.language],
        "emotions": list(sample.emotions),
        "text_type": {"name": sample.text_type, "description": profiles["text_types"][sample.text_type]},
        "length": {"name": sample.length_band, **band},
        "setting": sample.setting,
        "person": sample.person,
        "platform": sample.platform,
    }
    return _messages(GENERATE, ctx)


def judge_messages(language: str, text: str, labels: list[str]) -> list[dict[str, str]]:
    ctx = {"language": language, "profile": load_profiles()["languages"][language], "labels": labels, "text": text}
    return _messages(JUDGE, ctx)
