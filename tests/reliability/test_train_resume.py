"""Training resume: a checkpoint cut short while saving is skipped with a warning (or refused when named
explicitly), `num_tokens` continues from the checkpoint instead of restarting at 0, and the ranks of a launch die
with their launcher (a kill -9 of the launcher leaves nothing training)."""

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
from safetensors.torch import save_file

from mmaff.train.sft import last_complete_checkpoint, main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke" / "config_lora.yaml"


def _complete_checkpoint(folder: Path, step: int) -> Path:
    """A checkpoint with every file a LoRA resume loads, in the formats the Trainer writes."""
    folder.mkdir(parents=True)
    state = {"global_step": step, "log_history": [{"step": step, "loss": 1.0}], "stateful_callbacks": {}}
    (folder / "trainer_state.json").write_text(json.dumps(state))
    save_file({"lora_A": torch.zeros(2, 2)}, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text("{}")
    torch.save({"state": {}}, folder / "optimizer.pt")
    torch.save({"last_epoch": step}, folder / "scheduler.pt")
    return folder


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda c: _truncate(c / "trainer_state.json"), "trainer_state.json is not valid JSON"),
        (lambda c: (c / "trainer_state.json").write_text("{}"), "lacks global_step"),
        (lambda c: (c / "trainer_state.json").unlink(), "no trainer_state.json"),
        (lambda c: (c / "optimizer.pt").unlink(), "no optimizer.pt"),
        (lambda c: _truncate(c / "optimizer.pt"), "optimizer.pt is not a whole torch.save file"),
        (lambda c: (c / "scheduler.pt").unlink(), "no scheduler.pt"),
        (lambda c: _truncate(c / "adapter_model.safetensors", 0.9), "adapter_model.safetensors is"),
        (lambda c: (c / "adapter_model.safetensors").unlink(), "no model or adapter weights"),
    ],
)
def test_incomplete_newest_checkpoint_falls_back_with_a_warning(tmp_path, damage, reason):
    for step in (2, 4, 6):
        _complete_checkpoint(tmp_path / f"checkpoint-{step}", step)
    assert last_complete_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-6")
    damage(tmp_path / "checkpoint-6")
    warnings: list[str] = []
    assert last_complete_checkpoint(str(tmp_path), warn=warnings.append) == str(tmp_path / "checkpoint-4")
    assert len(warnings) == 1 and f"checkpoint {tmp_path / 'checkpoint-6'}: " in warnings[0], warnings
    assert reason in warnings[0] and "\n" not in warnings[0]


def test_deepspeed_checkpoint_needs_its_global_step_folder(tmp_path):
    from mmaff.train.checkpoints import ResumeNeeds, checkpoint_problem

    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 2, "log_history": []}))
    needs = ResumeNeeds(deepspeed=True)
    assert "no DeepSpeed `latest` file" in checkpoint_problem(checkpoint, needs)
    (checkpoint / "latest").write_text("global_step2")
    assert "not a folder" in checkpoint_problem(checkpoint, needs)
    states = checkpoint / "global_step2"
    states.mkdir()
    torch.save({}, states / "mp_rank_00_model_states.pt")
    for rank in (0, 1):
        torch.save({}, states / f"bf16_zero_pp_rank_{rank}_mp_rank_00_optim_states.pt")
    assert checkpoint_problem(checkpoint, needs) is None  # ZeRO-2 layout; no model.safetensors needed
    (states / "bf16_zero_pp_rank_0_mp_rank_00_optim_states.pt").unlink()
    assert "ranks [1]" in checkpoint_problem(checkpoint, needs)


def _argv(model: Path, corpus: Path, out: Path, *overrides: str) -> list[str]:
    return [
        "--config", str(SMOKE), "--model_name_or_path", str(model), "--corpus", str(corpus), "--output_dir", str(out),
        "--report_to", "none", "--merge_lora", "false", "--global_batch_size", "2", "--max_steps", "6",
        "--save_steps", "2", "--save_total_limit", "5", "--logging_steps", "3", *overrides,
    ]  # fmt: skip


def test_explicit_incomplete_checkpoint_is_a_one_line_error(tmp_path):
    checkpoint = _complete_checkpoint(tmp_path / "run" / "checkpoint-4", 4)
    _truncate(checkpoint / "trainer_state.json")
    argv = _argv(
        tmp_path / "model", tmp_path / "corpus", tmp_path / "run", "--resume_from_checkpoint", str(checkpoint)
    )
    with pytest.raises(SystemExit) as caught:
        main(argv)
    message = str(caught.value)
    assert message.startswith(f"error: --resume_from_checkpoint {checkpoint}: trainer_state.json is not valid JSON")
    assert "\n" not in message


def _logged_tokens(state_file: Path) -> dict[int, float]:
    history = json.loads(state_file.read_text())["log_history"]
    return {h["step"]: h["num_tokens"] for h in history if "num_tokens" in h}


@pytest.mark.slow
def test_resume_after_a_save_cut_short_continues_the_token_count(tiny_model_dir, sample_corpus, tmp_path, caplog):
    """Train 6 steps (checkpoints at 2, 4, 6; logs at 3, 6), cut the last save short, relaunch: the run resumes at
    step 4 and logs at step 6 the same num_tokens as the uninterrupted run (steps 1-6, not 5-6 only)."""
    out = tmp_path / "run"
    main(_argv(tiny_model_dir, sample_corpus, out))
    uninterrupted = _logged_tokens(out / "trainer_state.json")
    assert sorted(uninterrupted) == [3, 6] and 0 < uninterrupted[3] < uninterrupted[6]

    _truncate(out / "checkpoint-6" / "trainer_state.json")
    (out / "trainer_state.json").unlink()
    with caplog.at_level("INFO", logger="mmaff.sft"):
        main(_argv(tiny_model_dir, sample_corpus, out))
    messages = [r.getMessage() for r in caplog.records if r.name == "mmaff.sft"]
    assert any(m.startswith(f"skipping incomplete checkpoint {out / 'checkpoint-6'}: trainer_state") for m in messages)
    assert f"resuming from {out / 'checkpoint-4'}" in messages

    resumed = _logged_tokens(out / "trainer_state.json")
    assert resumed[6] == uninterrupted[6] > uninterrupted[3]


def _children(pid: int) -> list[int]:
    listed = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in listed.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the ranks' parent-death signal is Linux's prctl")
def test_ranks_die_with_a_killed_launcher(tiny_model_dir, sample_corpus, tmp_path):
    """SIGKILL of the `accelerate launch` process alone (the ranks run in sessions of their own, so a process-group
    kill reaches nothing more) ends both training ranks within seconds."""
    out = tmp_path / "run"
    command = [
        str(Path(sys.executable).with_name("accelerate")), "launch",
        "--config_file", str(ROOT / "ds_configs" / "accelerate" / "cpu_2proc.yaml"), str(ROOT / "recipes" / "sft_7b.py"),
        *_argv(tiny_model_dir, sample_corpus, out, "--max_steps", "500", "--save_strategy", "no"),
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    with open(tmp_path / "launch.log", "w") as log:
        launcher = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)
    ranks: list[int] = []
    try:
        deadline = time.time() + 300
        while not (out / "data_report.json").exists():  # written once both ranks have joined the process group
            assert launcher.poll() is None, (tmp_path / "launch.log").read_text()[-4000:]
            assert time.time() < deadline
            time.sleep(0.2)
        ranks = _children(launcher.pid)
        assert len(ranks) == 2, ranks
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.time() + 10
        while any(_alive(r) for r in ranks) and time.time() < deadline:
            time.sleep(0.2)
        assert not [r for r in ranks if _alive(r)], "ranks still training after their launcher was killed"
    finally:
        for pid in [launcher.pid, *ranks]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
