"""Model loading, freezing and LoRA targeting for Qwen2.5-VL, and merging a trained adapter for serving."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import ModelConfig

from mmaff.train.args import TuningArguments

log = logging.getLogger(__name__)

# Module-name prefixes of the parts a user freezes or trains, for Qwen2_5_VLForConditionalGeneration.
PARTS = {
    "vision_tower": ("model.visual.patch_embed", "model.visual.blocks"),
    "merger": ("model.visual.merger",),
    "language_model": ("model.language_model", "lm_head"),
}


def load_model(model_args: ModelConfig) -> Any:
    dtype = model_args.dtype if model_args.dtype in (None, "auto") else getattr(torch, model_args.dtype)
    model = AutoModelForImageTextToText.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
        attn_implementation=model_args.attn_implementation,
        dtype=dtype,
    )
    return model


def load_processor(model_args: ModelConfig) -> Any:
    return AutoProcessor.from_pretrained(
        model_args.model_name_or_path,
        revision=model_args.model_revision,
    )


def upcast_trainable(model: torch.nn.Module) -> int:
    """Keep trainable weights in float32 when no optimizer wrapper holds fp32 master weights for them.

    Loaded in bf16 and stepped by a plain AdamW, most lr-5e-6 updates of a bf16 weight round away. DeepSpeed's bf16
    mode keeps fp32 masters and PEFT keeps adapters in fp32, so this is for full fine-tuning without DeepSpeed;
    bf16 autocast still runs the matmuls in bf16. Returns the number of upcast tensors."""
    upcast = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.bfloat16, torch.float16):
            param.data = param.data.float()
            upcast += 1
    return upcast


def part_of(name: str) -> str:
    for part, prefixes in PARTS.items():
        if name.startswith(prefixes):
            return part
    return "other"


def freeze_parts(model: torch.nn.Module, tuning: TuningArguments) -> None:
    frozen = {
        "vision_tower": tuning.freeze_vision_tower,
        "merger": tuning.freeze_merger,
        "language_model": tuning.freeze_language_model,
    }
    for name, param in model.named_parameters():
        if frozen.get(part_of(name), False):
            param.requires_grad_(False)


def parameter_report(model: torch.nn.Module) -> dict[str, dict[str, int]]:
    """Trainable and frozen parameters per part (ZeRO-3 partitions report their full size via ds_numel)."""
    report: dict[str, dict[str, int]] = {}
    for name, param in model.named_parameters():
        name = re.sub(r"^(base_model\.model\.)", "", name)
        part = "lora" if "lora_" in name else part_of(name)
        count = getattr(param, "ds_numel", param.numel())
        entry = report.setdefault(part, {"trainable": 0, "frozen": 0})
        entry["trainable" if param.requires_grad else "frozen"] += count
    return report


def lora_config(model_args: ModelConfig, tuning: TuningArguments) -> LoraConfig | None:
    """LoRA on the language model only: a regex over module paths unless `lora_target_modules` is given."""
    if not model_args.use_peft:
        return None
    return LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=model_args.lora_target_modules or tuning.lora_target_regex,
        modules_to_save=model_args.lora_modules_to_save,
        use_rslora=model_args.use_rslora,
        use_dora=model_args.use_dora,
        bias="none",
        task_type="CAUSAL_LM",
    )


def rewrite_in_hub_layout(folder: Path) -> None:
    """Re-save full weights that DeepSpeed wrote from the engine's state dict (transformers 5.23 then writes
    `model.model.layers.*` and an untied `lm_head` copy) in the layout of the released checkpoints, which
    serving stacks such as vLLM expect (`model.layers.*`, `visual.*`)."""
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    loaded = AutoModelForImageTextToText.from_pretrained(folder, dtype="auto")  # reads that layout correctly
    with torch.device("meta"):  # a model built from its config saves in the released layout; a loaded one
        fresh = AutoModelForImageTextToText.from_config(loaded.config, dtype=loaded.dtype)  # keeps the file's
    fresh.load_state_dict(loaded.state_dict(), assign=True)
    staging = folder / ".hub-layout"
    fresh.save_pretrained(staging, safe_serialization=True)
    for old in folder.glob("model*.safetensors*"):
        old.unlink()
    for new in staging.glob("model*.safetensors*"):
        new.rename(folder / new.name)
    import shutil

    shutil.rmtree(staging)


def merge_adapter(base_model: str, adapter_dir: Path, out_dir: Path, dtype: str | None = None) -> Path:
    """Load the base weights and the adapter, merge, and save full safetensors weights + processor in `out_dir`."""
    from peft import PeftModel
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    # Training is over: without this, a ZeRO-3 run would build the base model under zero.Init on this rank alone.
    unset_hf_deepspeed_config()
    torch_dtype = getattr(torch, dtype) if dtype not in (None, "auto") else "auto"
    base = AutoModelForImageTextToText.from_pretrained(base_model, dtype=torch_dtype)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    merged.save_pretrained(tmp, safe_serialization=True)
    AutoProcessor.from_pretrained(adapter_dir).save_pretrained(tmp)
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir
