"""End to end through `accelerate launch` with 2 CPU processes: LoRA and full fine-tuning under DDP, ZeRO-2 and
ZeRO-3 on mixed text/image/video rows of the bundled corpus; kill-and-resume; the merged model generates.

Each launch starts two Python processes (~20 s of imports on 2 cores) and trains a few steps of the tiny model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).with_name("accelerate"))
CONFIGS = {
    name: str(ROOT / "ds_configs" / "accelerate" / f"{name}.yaml")
    for name in ("cpu_2proc", "cpu_2proc_zero2", "cpu_2proc_zero3")
}

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    env.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions"))
    return env


def _command(config: str, model: Path, corpus: Path, out: Path, *overrides: str) -> list[str]:
    return [
        ACCELERATE,
        "launch",
        "--config_file",
        CONFIGS[config],
        str(ROOT / "recipes" / "sft_7b.py"),
        "--config",
        str(ROOT / "recipes" / "smoke" / "config_lora.yaml"),
        "--model_name_or_path",
        str(model),
        "--corpus",
        str(corpus),
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        *overrides,
    ]


def _run(command: list[str]) -> str:
    done = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    return log


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants (torchrun's workers do not share the launcher's group)."""
    pids, frontier = [pid], [pid]
    while frontier:
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(frontier.pop())], capture_output=True, text=True)
        found = [int(c) for c in children.stdout.split()]
        pids += found
        frontier += found
    for victim in pids:
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _losses(out: Path) -> list[float]:
    state = json.loads((out / "trainer_state.json").read_text())
    return [h["loss"] for h in state["log_history"] if "loss" in h]


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.mark.parametrize("config", ["cpu_2proc", "cpu_2proc_zero2", "cpu_2proc_zero3"])
@pytest.mark.parametrize("method", ["lora", "full"])
def test_training_learns_what_it_should_and_nothing_else(config, method, tiny_model_dir, sample_corpus, tmp_path):
    out = tmp_path / "run"
    overrides = ["--max_steps", "5", "--save_strategy", "no"]
    if method == "full":
        overrides += ["--use_peft", "false", "--merge_lora", "false", "--learning_rate", "1e-3"]
    log = _run(_command(config, tiny_model_dir, sample_corpus, out, *overrides))
    assert "x 2 processes" in log  # two ranks really trained, each on its share of the rows
    losses = _losses(out)
    assert len(losses) == 5 and sum(losses[-2:]) < sum(losses[:2]), losses

    base = _tensors(tiny_model_dir)
    trained = _tensors(out / "merged" if method == "lora" else out)
    assert trained.keys() == base.keys()
    changed = {k for k in base if not torch.equal(base[k].float(), trained[k].float())}
    frozen = {k for k in base if k.startswith("visual.")}
    assert frozen and not changed & frozen, sorted(changed & frozen)[:5]  # vision tower and merger untouched
    llm_linears = {k for k in base if k.startswith("model.layers.") and k.endswith("proj.weight")}
    assert llm_linears <= changed  # every adapted / trained language-model projection moved
    if method == "lora":
        assert changed <= llm_linears  # LoRA touched nothing but its targets (no embeddings, norms, vision MLP)
        adapter = load_file(out / "adapter_model.safetensors")
        assert adapter and all("language_model" in k for k in adapter)
    card = (out / "README.md").read_text()
    # a local base folder is named in the text; `base_model` metadata takes Hub ids only
    assert f"base model `{tiny_model_dir}`" in card and "base_model:" not in card
    assert "recipes/smoke/config_lora.yaml" in card


def test_killed_run_resumes_at_its_last_checkpoint(tiny_model_dir, sample_corpus, tmp_path):
    out = tmp_path / "run"

    def command(max_steps: int) -> list[str]:
        overrides = ["--max_steps", str(max_steps), "--save_steps", "2", "--save_total_limit", "3"]
        return _command("cpu_2proc", tiny_model_dir, sample_corpus, out, *overrides, "--merge_lora", "false")

    with open(tmp_path / "first.log", "w") as first_log:  # a file, not a pipe: a full pipe would stall the run
        first = subprocess.Popen(
            command(60), cwd=ROOT, env=_env(), stdout=first_log, stderr=first_log, start_new_session=True
        )
        try:
            deadline = time.time() + 600
            while not (out / "checkpoint-2" / "trainer_state.json").exists():
                assert first.poll() is None, (tmp_path / "first.log").read_text()[-4000:]
                assert time.time() < deadline
                time.sleep(0.2)
        finally:
            _kill_tree(first.pid)  # the launcher and both ranks, mid-run
            first.wait()
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").exists())
    last = saved[-1]
    assert last < 60 and not (out / "trainer_state.json").exists()  # it really was cut short

    log = _run(command(last + 2))
    assert f"resuming from {out / f'checkpoint-{last}'}" in log, log[-3000:]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == last + 2
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps == list(range(1, last + 3))  # the old run's history up to the checkpoint, then the new steps


def test_smoke_run_and_merged_model_generates_from_an_image(tiny_model_dir, sample_corpus, tmp_path):
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = tmp_path / "smoke"
    log = _run(_command("cpu_2proc", tiny_model_dir, sample_corpus, out, "--max_steps", "2", "--save_strategy", "no"))
    assert f"model: {out / 'merged'}" in log
    merged = out / "merged"
    model = AutoModelForImageTextToText.from_pretrained(merged)
    processor = AutoProcessor.from_pretrained(merged)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which emotion?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = processor(text=[text], images=[Image.new("RGB", (96, 64), "red")], return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    assert "library_name: transformers" in (merged / "README.md").read_text()
