"""Which `checkpoint-N` folders a resume can load: complete means every file the Trainer reads back is there and
whole, so a run killed while saving falls back to the checkpoint before.

What transformers 5.23 reads on resume (`Trainer.train` / `_load_from_checkpoint` / `_load_optimizer_and_scheduler`):
trainer_state.json (global_step, log_history, stateful callbacks); without DeepSpeed, the model or adapter weights,
optimizer.pt and scheduler.pt; with DeepSpeed, the `latest` tag's `global_step*` folder (model and optimizer
states, read by `engine.load_checkpoint`). RNG and scaler states are optional there, so they are here too."""

from __future__ import annotations

import json
import re
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerState

CHECKPOINT_NAME = re.compile(r"checkpoint-(\d+)")
SAFETENSORS_WEIGHTS = ("model.safetensors", "adapter_model.safetensors")
TORCH_WEIGHTS = ("pytorch_model.bin", "adapter_model.bin")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class ResumeNeeds:
    """What this run's Trainer will load from a checkpoint."""

    deepspeed: bool = False
    optimizer: bool = True  # False with save_only_model: the checkpoint then holds the weights only


def checkpoint_problem(folder: Path, needs: ResumeNeeds) -> str | None:
    """Why a resume from `folder` would fail or silently restart state, or None when it is complete."""
    if not folder.is_dir():
        return "not a folder"
    checks = [_state_problem]
    if needs.deepspeed:
        checks.append(_deepspeed_problem)
    else:
        checks.append(_weights_problem)
        if needs.optimizer:
            checks.append(_optimizer_problem)
    for check in checks:
        if problem := check(folder, needs):
            return problem
    return None


def newest_complete_checkpoint(output_dir: str | Path, needs: ResumeNeeds, warn: Callable[[str], None]) -> Path | None:
    """The highest-numbered complete `checkpoint-N` in `output_dir`; each newer incomplete one is `warn`ed about."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    numbered = sorted(
        ((int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT_NAME.fullmatch(p.name))), reverse=True
    )
    for _, folder in numbered:
        problem = checkpoint_problem(folder, needs)
        if problem is None:
            return folder
        warn(f"skipping incomplete checkpoint {folder}: {problem}")
    return None


def weights_problem(folder: Path) -> str | None:
    """Why the model or adapter weights in `folder` are missing or cut short (a finished run's folder or a
    checkpoint), or None when they are whole."""
    return _weights_problem(folder, ResumeNeeds())


def _state_problem(folder: Path, needs: ResumeNeeds) -> str | None:
    path = folder / "trainer_state.json"
    if not path.is_file():
        return "no trainer_state.json (the save did not finish)"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        return f"trainer_state.json is not valid JSON (truncated?): {error}"
    if not isinstance(data, dict):
        return "trainer_state.json is not a JSON object"
    if not isinstance(data.get("global_step"), int) or not isinstance(data.get("log_history"), list):
        return "trainer_state.json lacks global_step or log_history"
    if not isinstance(data.get("stateful_callbacks", {}), dict):
        return "trainer_state.json: stateful_callbacks is not an object"
    try:
        TrainerState(**data)
    except (TypeError, ValueError) as error:
        return f"trainer_state.json does not load as a TrainerState: {error}"
    named = CHECKPOINT_NAME.fullmatch(folder.name)
    if named and int(named.group(1)) != data["global_step"]:
        return f"trainer_state.json is of step {data['global_step']}, not {named.group(1)}"
    return None


def _weights_problem(folder: Path, needs: ResumeNeeds) -> str | None:
    for name in SAFETENSORS_WEIGHTS + TORCH_WEIGHTS + WEIGHT_INDEXES:
        path = folder / name
        if path.is_file():
            problem = _weights_file_problem(path)
            if problem is None and name.startswith("adapter_") and not (folder / "adapter_config.json").is_file():
                problem = "no adapter_config.json next to the adapter weights"
            return problem
    if any("pytorch_model_fsdp" in p.name for p in folder.iterdir()):
        return None  # FSDP's own layout, loaded by accelerate
    return "no model or adapter weights"


def _weights_file_problem(path: Path) -> str | None:
    if path.name.endswith(".index.json"):
        return _index_problem(path)
    if path.suffix == ".safetensors":
        return _safetensors_problem(path)
    return _torch_file_problem(path)


def _index_problem(path: Path) -> str | None:
    try:
        weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as error:
        return f"{path.name} is not a weight index (truncated?): {error}"
    for shard in shards:
        if problem := _weights_file_problem(path.parent / shard):
            return problem
    return None


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file is whole when its JSON header parses and its tensors end exactly at the file's end."""
    if not path.is_file():
        return f"no {path.name}"
    size = path.stat().st_size
    try:
        with path.open("rb") as f:
            (header_size,) = struct.unpack("<Q", f.read(8))
            if 8 + header_size > size:
                raise ValueError("header runs past the end")
            header = json.loads(f.read(header_size))
        data_end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        return f"{path.name} is not a whole safetensors file: {error}"
    if 8 + header_size + data_end != size:
        return f"{path.name} is {size} bytes, its header says {8 + header_size + data_end} (truncated?)"
    return None


def _torch_file_problem(path: Path) -> str | None:
    """torch.save writes a zip; a cut-short one has no central directory."""
    if not path.is_file():
        return f"no {path.name}"
    try:
        with zipfile.ZipFile(path) as archive:
            archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        return f"{path.name} is not a whole torch.save file (truncated?): {error}"
    return None


def _optimizer_problem(folder: Path, needs: ResumeNeeds) -> str | None:
    if (folder / "optimizer.pt").is_file():
        problem = _torch_file_problem(folder / "optimizer.pt")
    elif (folder / "optimizer.bin").is_file() or any(p.is_dir() and "optimizer" in p.name for p in folder.iterdir()):
        problem = None  # accelerate's / FSDP's optimizer layouts
    else:
        problem = "no optimizer.pt (the optimizer would restart from scratch)"
    return problem or _torch_file_problem(folder / "scheduler.pt")


def _deepspeed_problem(folder: Path, needs: ResumeNeeds) -> str | None:
    latest = folder / "latest"
    if not latest.is_file():
        return "no DeepSpeed `latest` file"
    tag = latest.read_text(encoding="utf-8", errors="replace").strip()
    states = folder / tag
    if not tag or not states.is_dir():
        return f"DeepSpeed `latest` names {tag!r}, which is not a folder here"
    model_states = sorted(states.glob("*model_states.pt"))
    optim_states = sorted(states.glob("*optim_states.pt"))
    if not model_states:
        return f"no model states in {tag}/"
    if needs.optimizer and not optim_states:
        return f"no optimizer states in {tag}/"
    ranks = sorted(int(m.group(1)) for p in optim_states if (m := re.search(r"zero_pp_rank_(\d+)_", p.name)))
    if ranks != list(range(len(ranks))):
        return f"optimizer states of ranks {ranks} in {tag}/: some are missing"
    for path in model_states + optim_states:
        if problem := _torch_file_problem(path):
            return f"{tag}/{problem}"
    return None
