"""TRL's SFTTrainer with our data path: items are record lists, the collator builds padding-free rows."""

from __future__ import annotations

from typing import Any

import torch
from trl import SFTTrainer


class AffectSFTTrainer(SFTTrainer):
    """Adds the real-token fraction to the logs and counts tokens right for padding-free rows.

    The collator sends `token_stats` = (real tokens, processed tokens) with every micro-batch. TRL counts a
    batch's tokens from `attention_mask`, or, without one, from `position_ids.size(1)`, which for the (4, 1, L)
    position ids of a padding-free row is the batch size, not the length; so the count is replaced here."""

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
