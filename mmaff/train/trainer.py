"""TRL's SFTTrainer with our data path: items are record lists, the collator builds padding-free rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import get_last_checkpoint
from trl import SFTTrainer

log = logging.getLogger("mmaff.sft")


class TrainTokenCount(TrainerCallback, ExportableState):
    """Carries the count of trained tokens in each checkpoint's trainer_state.json (`stateful_callbacks`), so that
    `num_tokens` continues after a resume instead of restarting at 0 (TRL keeps it in memory only)."""

    def __init__(self) -> None:
        self.total_train_tokens = 0

    def state(self) -> dict:
        return {"args": {}, "attributes": {"total_train_tokens": self.total_train_tokens}}


class AffectSFTTrainer(SFTTrainer):
    """Adds the real-token fraction to the logs and counts tokens right for padding-free rows.

    The collator sends `token_stats` = (real tokens, processed tokens) with every micro-batch. TRL counts a
    batch's tokens from `attention_mask`, or, without one, from `position_ids.size(1)`, which for the (4, 1, L)
    position ids of a padding-free row is the batch size, not the length; so the count is replaced here."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_callback(TrainTokenCount())

    def compute_loss(
        self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch=None
    ):
        stats = inputs.pop("token_stats", None)
        tokens_before = self._total_train_tokens
        result = super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
        if stats is not None and model.training:
            real, processed = (
                self.accelerator.gather_for_metrics(stats[None].to(self.accelerator.device)).sum(0).tolist()
            )
            self._total_train_tokens = tokens_before + real
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            self._metrics["train"]["real_token_fraction"].append(real / max(processed, 1))
        return result

    def train(self, resume_from_checkpoint: str | bool | None = None, *args: Any, **kwargs: Any):
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
        if resume_from_checkpoint:
            self._total_train_tokens = trained_tokens(Path(resume_from_checkpoint))
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _save_checkpoint(self, model: torch.nn.Module, trial: Any) -> None:
        for callback in self.callback_handler.callbacks:  # the restored instance, if callbacks were restored
            if isinstance(callback, TrainTokenCount):
                callback.total_train_tokens = self._total_train_tokens
        # a state resumed from a checkpoint saved without the counter has no slot for it yet
        self.state.stateful_callbacks.setdefault(TrainTokenCount.__name__, {})
        super()._save_checkpoint(model, trial)


def trained_tokens(checkpoint: Path) -> int:
    """The tokens trained up to `checkpoint`: as saved by TrainTokenCount, else (a checkpoint written before it
    existed) the last logged `num_tokens`, which misses the steps between that log and the save."""
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    saved = state.get("stateful_callbacks", {}).get(TrainTokenCount.__name__)
    if isinstance(saved, dict) and isinstance(saved.get("attributes", {}).get("total_train_tokens"), int):
        return saved["attributes"]["total_train_tokens"]
    logged = [h["num_tokens"] for h in state.get("log_history", []) if isinstance(h.get("num_tokens"), (int, float))]
    if logged:
        log.warning("%s has no saved token count: num_tokens continues from the last logged value", checkpoint)
    return int(logged[-1]) if logged else 0
