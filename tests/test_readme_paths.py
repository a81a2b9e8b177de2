"""The model folders README.md's commands evaluate, serve, card or push are folders a shipped recipe (or a make
target) writes, so the commands cannot drift from `output_dir` / `merge_lora` in recipes/**/*.yaml."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# weights loaded: `--model outputs/...`, `vllm serve outputs/...`
MODEL_PATH = re.compile(r"(?:--model|vllm serve)\s+(outputs/[^\s\\]+)")
# a run's folder (an adapter's too): `--model-card outputs/<run>/README.md`, `push_model` / `push-model outputs/<run>`
RUN_PATH = re.compile(r"--model-card\s+(outputs/[^\s\\]+)/README\.md|push[-_]model\s+(outputs/[^\s\\]+)")


def _makefile_default(name: str) -> str:
    match = re.search(rf"^{name} \?= (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"Makefile has no `{name} ?= ...`"
    return match.group(1)


def recipe_folders() -> tuple[dict[str, str], dict[str, str]]:
    """(folders with full weights, every run folder) -> what writes them: a full recipe's output_dir, a LoRA
    recipe's <output_dir>/merged with merge_lora: true (its output_dir holds the adapter and the card), and the
    tiny model of `make tiny-model`."""
    weights = {_makefile_default("TINY_MODEL"): "make tiny-model"}
    runs = {}
    for path in sorted((ROOT / "recipes").rglob("*.yaml")):
        recipe = yaml.safe_load(path.read_text())
        if "output_dir" not in recipe:  # not a training recipe
            continue
        out, name = recipe["output_dir"], str(path.relative_to(ROOT))
        runs[out] = name
        if not recipe.get("use_peft"):
            weights[out] = name
        elif recipe.get("merge_lora"):
            weights[f"{out}/merged"] = runs[f"{out}/merged"] = name
    return weights, runs


def readme_paths(pattern: re.Pattern[str]) -> list[str]:
    return ["".join(groups) for groups in pattern.findall((ROOT / "README.md").read_text())]


def test_readme_model_paths_are_what_shipped_recipes_write():
    weights, runs = recipe_folders()
    models, run_folders = readme_paths(MODEL_PATH), readme_paths(RUN_PATH)
    assert len(models) >= 6 and len(run_folders) >= 2, (models, run_folders)  # the Evaluation block's, at least
    assert [p for p in models if p not in weights] == [], f"no recipe writes full weights there: {sorted(weights)}"
    assert [p for p in run_folders if p not in runs] == [], f"no recipe writes that run: {sorted(runs)}"


def test_the_smoke_recipe_writes_the_model_eval_smoke_evaluates():
    smoke = yaml.safe_load((ROOT / "recipes" / "smoke" / "config_lora.yaml").read_text())
    assert _makefile_default("SMOKE_OUT") == smoke["output_dir"]
    assert _makefile_default("SMOKE_MODEL") == "$(SMOKE_OUT)/merged" and smoke["merge_lora"]
    assert f"{smoke['output_dir']}/merged" in recipe_folders()[0]


def test_the_patterns_find_each_kind_of_path():
    text = "--model outputs/a \\\n vllm serve outputs/b --x\n--model-card outputs/c/README.md --model mmaff-7b"
    text += "\npython -m mmaff.train.push_model outputs/d <org>/m\nmmaff push-model outputs/e <org>/m"
    assert MODEL_PATH.findall(text) == ["outputs/a", "outputs/b"]
    assert ["".join(g) for g in RUN_PATH.findall(text)] == ["outputs/c", "outputs/d", "outputs/e"]
