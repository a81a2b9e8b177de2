"""Heads and losses of the encoder recipes.

A single-target task is `AutoModelForSequenceClassification` as its authors configure it: `problem_type`
``multi_label_classification`` (sigmoid + BCE over the labels), ``single_label_classification`` (softmax + cross
entropy) or ``regression`` (one output, MSE). A joint task (seed 001, arXiv 2305.17422: e.g. valence + emotions)
is `JointEncoder`: one shared encoder, one linear head per part on the first token's hidden state (as
`*ForSequenceClassification` heads read it), and loss = the sum of the parts' losses, each the loss the single
model of that part would use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from mmaff.baselines.data import Head

PROBLEM_TYPES = {
    "multi": "multi_label_classification",
    "single": "single_label_classification",
    "ordinal": "single_label_classification",
    "real": "regression",
}


def part_loss(head: Head, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of one head, as `*ForSequenceClassification` computes it for the head's problem type."""
    if head.kind == "multi":
        return nn.functional.binary_cross_entropy_with_logits(logits, target.float())
    if head.kind == "real":
        return nn.functional.mse_loss(logits.squeeze(-1), target.float().view(-1))
    return nn.functional.cross_entropy(logits, target.view(-1).long())


def split_columns(tensor: torch.Tensor, widths: Sequence[int]) -> list[torch.Tensor]:
    return list(torch.split(tensor, list(widths), dim=-1))


class JointEncoder(nn.Module):
    """A shared encoder with one head per part; `forward` returns the heads' logits side by side (head order) and,
    given the flat targets (`Examples.targets`), loss = sum of the parts' losses (each also in `part_losses`)."""

    def __init__(self, encoder: nn.Module, heads: Sequence[Head], dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.head_specs = tuple(heads)
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({head.name: nn.Linear(hidden, head.width) for head in heads})
        self.part_losses: dict[str, float] = {}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        pooled = self.dropout(self.encoder(**inputs).last_hidden_state[:, 0])
        logits = [self.heads[head.name](pooled) for head in self.head_specs]
        loss = None
        if labels is not None:
            targets = split_columns(labels, [head.target_width for head in self.head_specs])
            parts = {h.name: part_loss(h, out, t) for h, out, t in zip(self.head_specs, logits, targets, strict=True)}
            self.part_losses = {name: float(value.detach()) for name, value in parts.items()}
            loss = torch.stack(list(parts.values())).sum()
        return SequenceClassifierOutput(loss=loss, logits=torch.cat(logits, dim=-1))
