"""Every recipe YAML parses with no unknown key and says what the README promises; LoRA targets exactly the
language model's linears of a real-size Qwen2.5-VL-7B (built on the meta device); helpers of the main script."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from trl import ModelConfig

from mmaff.hub.model_card import model_card, push_folder
from mmaff.train.args import LANGUAGE_MODEL_LINEARS, TuningArguments
from mmaff.train.model import PARTS, freeze_parts, lora_config, parameter_report
from mmaff.train.sft import default_recipe, last_complete_checkpoint, parse, take_over

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("config_*.yaml"))


def test_there_are_recipes_for_both_sizes_and_methods():
    names = {str(p.relative_to(ROOT / "recipes")) for p in RECIPES}
    for size in ("3b", "7b"):
        assert {f"qwen2.5-vl-{size}/sft/config_full.yaml", f"qwen2.5-vl-{size}/sft/config_lora.yaml"} <= names


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_parses_without_unknown_keys(recipe, tmp_path):
    data, tuning, args, model, used = parse(
        ["--config", str(recipe), "--output_dir", str(tmp_path), "--use_cpu", "true"]
    )
    assert used == str(recipe)
    assert args.report_to == ["tensorboard"]
    assert args.max_length and args.packing and model.model_name_or_path
    if "qwen2.5-vl" in str(recipe):
        size = "7B" if "7b" in str(recipe) else "3B"
        assert model.model_name_or_path == f"Qwen/Qwen2.5-VL-{size}-Instruct" and model.dtype == "bfloat16"
        assert args.bf16 and args.activation_checkpointing and args.max_length == 4096
        assert data.global_batch_size == 256 and args.lr_scheduler_type == "cosine"
        assert args.warmup_steps == 100 and args.weight_decay == 0.1 and args.num_train_epochs == 1
        assert tuning.freeze_vision_tower and tuning.freeze_merger and not tuning.freeze_language_model
        if recipe.name == "config_full.yaml":
            assert not model.use_peft and args.learning_rate == 5e-6  # MMAFFLM
        else:
            assert model.use_peft and model.lora_r == 64 and model.lora_target_modules is None


def test_unknown_keys_and_cli_overrides(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("output_dir: x\nuse_cpu: true\nlearning_rate: 1.0e-4\nlearnin_rate: 2\n")
    with pytest.raises(ValueError, match="learnin_rate"):
        parse(["--config", str(recipe)])
    recipe.write_text("output_dir: x\nuse_cpu: true\nlearning_rate: 1.0e-4\n")
    _, _, args, _, _ = parse(["--config", str(recipe), "--learning_rate", "3e-5"])
    assert args.learning_rate == 3e-5  # command line over YAML


def test_served_switches_are_taken_from_trl(tmp_path):
    _, _, args, _, _ = parse(
        ["--output_dir", str(tmp_path), "--use_cpu", "true", "--packing", "true", "--push_to_hub", "true"]
    )
    served = take_over(args)
    assert served.packing and served.padding_free and served.push_to_hub
    assert not args.packing and not args.padding_free and not args.push_to_hub and not args.remove_unused_columns


def test_bare_launch_picks_a_recipe_that_fits(monkeypatch):
    recipes = ROOT / "recipes" / "qwen2.5-vl-7b" / "sft"
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert default_recipe(recipes, single_process="lora").endswith("config_lora.yaml")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert default_recipe(recipes, single_process="lora").endswith("config_full.yaml")
    assert Path(default_recipe(recipes, single_process="lora")).is_file()


def _qwen25_vl_7b_on_meta():
    from transformers import Qwen2_5_VLForConditionalGeneration

    from mmaff.testing.tiny_model import real_size_config

    with torch.device("meta"):
        return Qwen2_5_VLForConditionalGeneration(real_size_config("7b"))


def test_lora_targets_exactly_the_language_model_linears_of_the_real_7b():
    model = _qwen25_vl_7b_on_meta()
    names = [name for name, _ in model.named_modules()]
    targeted = [n for n in names if re.fullmatch(LANGUAGE_MODEL_LINEARS, n)]
    assert len(targeted) == 28 * 7
    assert not [n for n in targeted if "visual" in n]
    suffix_hits = [n for n in names if n.endswith(("gate_proj", "up_proj", "down_proj")) and "visual" in n]
    assert suffix_hits  # the vision MLP reuses the names: a suffix list would adapt it too
    assert (
        lora_config(ModelConfig(use_peft=True, lora_r=64), TuningArguments()).target_modules == LANGUAGE_MODEL_LINEARS
    )
    assert lora_config(ModelConfig(use_peft=False), TuningArguments()) is None


def test_freezing_by_part_on_the_real_7b():
    model = _qwen25_vl_7b_on_meta()
    freeze_parts(model, TuningArguments())
    report = parameter_report(model)
    assert report["vision_tower"]["trainable"] == 0 and report["merger"]["trainable"] == 0
    assert report["language_model"]["frozen"] == 0
    assert sum(v["trainable"] + v["frozen"] for v in report.values()) == 8_292_166_656  # feasibility.md, 7B count
    assert "other" not in report and set(report) == set(PARTS)


def test_resume_picks_the_newest_complete_checkpoint(tmp_path):
    assert last_complete_checkpoint(str(tmp_path / "none")) is None
    for step, complete in ((2, True), (10, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:  # what a LoRA resume loads (a full check of each file: tests/reliability/test_train_resume.py)
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step, "log_history": []}))
            (folder / "adapter_config.json").write_text("{}")
            for name in ("adapter_model.bin", "optimizer.pt", "scheduler.pt"):
                torch.save({}, folder / name)
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")  # 12 was cut short


def test_model_card_and_push(tmp_path, monkeypatch):
    recipe = ROOT / "recipes" / "qwen2.5-vl-7b" / "sft" / "config_lora.yaml"
    manifest = {"corpus": "mmaffin", "totals": {"records": {"train": 3}}, "mixture": {"meld": {"weight": 1.0}}}
    card = model_card(
        base_model="Qwen/Qwen2.5-VL-7B-Instruct",
        corpus="org/mmaffin",
        corpus_manifest=manifest,
        recipe=str(recipe),
        method="lora",
        command=["accelerate", "launch", "recipes/sft_7b.py"],
        results={"global_step": 7},
        data_report={"kept": 3, "dropped": 0, "dropped_samples": []},
    )
    header = card.split("---")[1]
    assert "base_model: Qwen/Qwen2.5-VL-7B-Instruct" in header and "library_name: peft" in header
    assert "- org/mmaffin" in header and "accelerate launch recipes/sft_7b.py" in card
    assert "lora_r: 64" in card and '"global_step": 7' in card

    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs):
            calls["repo"] = (repo_id, kwargs)

        def upload_folder(self, **kwargs):
            calls["upload"] = kwargs
            return type("Commit", (), {"commit_url": "https://hf.co/org/m/commit/1"})()

    monkeypatch.setattr("huggingface_hub.HfApi", FakeApi)
    (tmp_path / "README.md").write_text(card)
    assert push_folder(tmp_path, "org/m", private=True) == "https://hf.co/org/m/commit/1"
    assert calls["repo"] == ("org/m", {"repo_type": "model", "private": True, "exist_ok": True})
    assert calls["upload"]["folder_path"] == str(tmp_path) and "checkpoint-*" in calls["upload"]["ignore_patterns"]
    json.dumps(calls["upload"])  # plain, serialisable arguments


def test_full_fine_tuning_without_deepspeed_keeps_fp32_trainable_weights():
    from mmaff.train.model import upcast_trainable

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)).to(torch.bfloat16)
    model[0].requires_grad_(False)
    assert upcast_trainable(model) == 2
    assert model[0].weight.dtype == torch.bfloat16 and model[1].weight.dtype == torch.float32


def test_persistent_workers_need_workers(tmp_path):
    _, _, args, _, _ = parse(
        ["--output_dir", str(tmp_path), "--use_cpu", "true", "--dataloader_persistent_workers", "true"]
    )
    take_over(args)
    assert not args.dataloader_persistent_workers
