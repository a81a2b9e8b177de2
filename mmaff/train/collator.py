"""Training batches: samples (`mmaff.encode.samples`) into padding-free rows with per-sample mRoPE, or padded rows,
plus dummy media under ZeRO-3.

Padding-free rows. With `padding_free`, every sample of a micro-batch goes into one row: each sample gets its own
mRoPE position ids (the model's `get_rope_index`, run per sample), and the text-position row (0, 1, 2, ... per
sample) is prepended (shape 4 x 1 x L). transformers finds the sample boundaries where that row restarts and keeps
attention inside each sample (block-causal mask for SDPA/eager, varlen for FlashAttention-2), as long as the
forward runs without a KV cache (`use_cache=False`, as in TRL's training forward).

Dummy media. Under ZeRO-3 every rank must run the vision tower each step, or the parameter all-gathers diverge
and the job hangs. When a micro-batch lacks an image (or a video), a tiny one is appended as its own sample after
all real tokens: no label, its own positions, invisible to the real samples.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from mmaff.encode.samples import (
    IGNORE_INDEX,
    MEDIA_KINDS,
    MEDIA_TENSORS,
    EncodingError,
    RopeIndex,
    Sample,
    SampleEncoder,
    concat_field,
)

log = logging.getLogger(__name__)


class MixedModalCollator:
    """DataLoader collate_fn over items `{"records": [...]}` (a pack, see mmaff.train.data) or plain records."""

    def __init__(
        self,
        encoder: SampleEncoder,
        model_config: Any,
        *,
        padding_free: bool = True,
        max_length: int | None = None,
        vision_dummy: bool = False,
    ) -> None:
        self.encoder = encoder
        self.rope = RopeIndex(model_config)
        self.padding_free = padding_free
        self.max_length = max_length
        self.vision_dummy = vision_dummy
        self.pad_token_id = encoder.processor.tokenizer.pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        samples = []
        for record in (record for item in items for record in item.get("records", [item])):
            sample = self.encoder.encode(record)
            if self.max_length is not None and len(sample) > self.max_length:
                # The map-style path drops (and reports) these before packing; only a stream meets them here.
                log.warning("dropping %s: %d tokens > max_length %d", sample.id, len(sample), self.max_length)
                continue
            samples.append(sample)
        if not samples:
            raise EncodingError("a micro-batch with no sample left after dropping over-long ones")
        real = sum(len(s) for s in samples)
        if self.vision_dummy:
            for kind in MEDIA_KINDS:
                if not any(s.has(kind) for s in samples):
                    samples = self._with_dummy(samples, self.encoder.dummy(kind))
        batch = self._flat(samples) if self.padding_free else self._padded(samples)
        for name in MEDIA_TENSORS:
            value = concat_field(samples, name)
            if value is not None:
                batch[name] = value
        batch["token_stats"] = torch.tensor([real, batch["input_ids"].numel()], dtype=torch.long)
        return batch

    def _with_dummy(self, samples: list[Sample], dummy: Sample) -> list[Sample]:
        """A padding-free row takes the dummy as one more sample; a padded batch appends it to its shortest row
        (after that row's real tokens, so causal attention hides it), which costs no extra padded row."""
        if self.padding_free:
            return [*samples, dummy]
        shortest = min(range(len(samples)), key=lambda i: len(samples[i]))
        return [s.followed_by(dummy) if i == shortest else s for i, s in enumerate(samples)]

    def _flat(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        positions = []
        for sample in samples:
            text_row = torch.arange(len(sample))[None]
            positions.append(torch.cat([text_row, self.rope.positions(sample)]))
        return {
            "input_ids": torch.cat([s.input_ids for s in samples])[None],
            "labels": torch.cat([s.labels for s in samples])[None],
            "mm_token_type_ids": torch.cat([s.mm_token_type_ids for s in samples])[None],
            "position_ids": torch.cat(positions, dim=1)[:, None],  # (4, 1, L): text row + t/h/w rows
        }

    def _padded(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        width = max(len(s) for s in samples)

        def pad(values: torch.Tensor, fill: int) -> torch.Tensor:
            return torch.cat([values, torch.full((width - values.numel(),), fill, dtype=values.dtype)])

        return {
            "input_ids": torch.stack([pad(s.input_ids, self.pad_token_id) for s in samples]),
            "labels": torch.stack([pad(s.labels, IGNORE_INDEX) for s in samples]),
            "mm_token_type_ids": torch.stack([pad(s.mm_token_type_ids, 0) for s in samples]),
            "attention_mask": torch.stack([pad(torch.ones(len(s), dtype=torch.long), 0) for s in samples]),
        }
