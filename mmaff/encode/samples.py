"""Corpus records -> Qwen2.5-VL model inputs, shared by training and evaluation: media loading under the corpus's
budgets, the chat template, per-turn labels, the model's own mRoPE positions.

Labels. The conversation is rendered with TRL's training variant of the Qwen2.5-VL chat template, whose
`{% generation %}` markers delimit each assistant turn (answer + `<|im_end|>\n`). The rendered text is cut at
those marks into segments and each segment is tokenized on its own, exactly as at inference time, where the
prompt (ending in `<|im_start|>assistant\n`) is tokenized before the answer is generated. Tokens of assistant
segments are trained, all others get -100; nothing scans for a token id.
"""

from __future__ import annotations

import importlib.resources
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor
from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import Qwen2_5_VLModel
from transformers.utils.chat_template_utils import render_jinja_template
from transformers.video_utils import VideoMetadata

from mmaff.data.media import MediaBudget
from mmaff.encode.media_loader import MediaLoader

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
MEDIA_KINDS = ("image", "video")
MEDIA_TENSORS = ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts")


def training_chat_template() -> str:
    """TRL's Qwen2.5-VL template with `{% generation %}` markers (same output as the model's own template)."""
    return (importlib.resources.files("trl") / "chat_templates" / "qwen2_5_vl_training.jinja").read_text()


class EncodingError(ValueError):
    """A record that cannot be encoded as the corpus describes it (names the record id)."""


@dataclass
class Sample:
    """One encoded conversation (1-D tensors of length L) and its media tensors."""

    id: str
    input_ids: torch.Tensor
    labels: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor | None = None
    image_grid_thw: torch.Tensor | None = None
    pixel_values_videos: torch.Tensor | None = None
    video_grid_thw: torch.Tensor | None = None
    second_per_grid_ts: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.input_ids.numel())

    def has(self, kind: str) -> bool:
        return (self.image_grid_thw if kind == "image" else self.video_grid_thw) is not None

    def followed_by(self, other: Sample) -> Sample:
        """This sample with `other`'s tokens and media appended (one row of a padded batch)."""
        joined = {name: concat_field([self, other], name) for name in MEDIA_TENSORS}
        return Sample(
            self.id,
            torch.cat([self.input_ids, other.input_ids]),
            torch.cat([self.labels, other.labels]),
            torch.cat([self.mm_token_type_ids, other.mm_token_type_ids]),
            **joined,
        )


def _plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Content parts without the None-valued keys Arrow adds (the template tests `'text' in content`)."""
    return [
        {"role": m["role"], "content": [{k: v for k, v in part.items() if v is not None} for part in m["content"]]}
        for m in messages
    ]


def split_turns(messages: list[dict[str, Any]], chat_template: str) -> list[tuple[str, bool]]:
    """The rendered conversation as (text, trained) segments, cut at the template's generation marks."""
    rendered, spans = render_jinja_template(
        conversations=[_plain_messages(messages)], chat_template=chat_template, return_assistant_tokens_mask=True
    )
    text, spans = rendered[0], spans[0]
    segments, at = [], 0
    for start, end in spans:
        if start > at:
            segments.append((text[at:start], False))
        segments.append((text[start:end], True))
        at = end
    if at < len(text):
        segments.append((text[at:], False))
    return segments


def budgeted_processors(processor: Any, budget: MediaBudget) -> None:
    """Give the processor the corpus's pixel budgets, so visual tokens match the counts the builder recorded."""
    image, video = processor.image_processor, processor.video_processor
    processor.image_processor = Qwen2VLImageProcessor(
        min_pixels=budget.image_min_pixels,
        max_pixels=budget.image_max_pixels,
        patch_size=image.patch_size,
        temporal_patch_size=image.temporal_patch_size,
        merge_size=image.merge_size,
        image_mean=image.image_mean,
        image_std=image.image_std,
    )
    processor.video_processor = Qwen2VLVideoProcessor(
        size={"shortest_edge": budget.video_min_pixels, "longest_edge": budget.video_max_pixels},
        patch_size=video.patch_size,
        temporal_patch_size=video.temporal_patch_size,
        merge_size=video.merge_size,
        image_mean=video.image_mean,
        image_std=video.image_std,
        cap_pixels_per_frame=True,
        do_sample_frames=False,
    )


class SampleEncoder:
    """Encodes corpus records with a Qwen2.5-VL processor; media paths are relative to the corpus folder."""

    def __init__(self, processor: Any, corpus_root: str | Path, budget: MediaBudget, decoder: str = "auto") -> None:
        budgeted_processors(processor, budget)
        self.processor = processor
        self.media = MediaLoader(corpus_root, budget, decoder)
        self.budget = budget
        self.chat_template = training_chat_template()
        self.image_token_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
        self.video_token_id = processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")

    # -- lengths (tokenizer only, no media) ------------------------------------------------------------------------
    def length(self, record: dict[str, Any]) -> int:
        """Tokens of the encoded sample: the text tokens plus the record's visual tokens (each media placeholder
        is one token before the processor repeats it)."""
        texts = [text for text, _ in split_turns(record["messages"], self.chat_template)]
        text_tokens = sum(len(ids) for ids in self.processor.tokenizer(texts, add_special_tokens=False)["input_ids"])
        return text_tokens + record["visual_tokens"] - len(record["images"]) - len(record["videos"])

    # -- encoding ----------------------------------------------------------------------------------------------------
    def encode(self, record: dict[str, Any]) -> Sample:
        segments = split_turns(record["messages"], self.chat_template)
        images, videos = self.media.load(record)
        sample = self.process(record["id"], segments, images, videos)
        visual = int((sample.mm_token_type_ids > 0).sum())
        if visual != record["visual_tokens"]:
            raise EncodingError(
                f"{record['id']}: the processor made {visual} visual tokens, the corpus recorded "
                f"{record['visual_tokens']}; was the corpus built with other media budgets than {self.budget}?"
            )
        return sample

    def process(
        self,
        sample_id: str,
        segments: list[tuple[str, bool]],
        images: list[Image.Image],
        videos: list[tuple[np.ndarray, VideoMetadata]],
    ) -> Sample:
        kwargs: dict[str, Any] = {}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = [frames for frames, _ in videos]
            kwargs["video_metadata"] = [meta for _, meta in videos]
        # A list of texts: the processor expands each media placeholder in order across the list, then tokenizes
        # every segment separately.
        out = self.processor(text=[text for text, _ in segments], return_tensors=None, **kwargs)
        ids, labels = [], []
        for (_, trained), segment_ids in zip(segments, out["input_ids"]):
            ids.extend(segment_ids)
            labels.extend(segment_ids if trained else [IGNORE_INDEX] * len(segment_ids))
        input_ids = torch.tensor(ids, dtype=torch.long)
        mm_types = torch.zeros_like(input_ids)
        mm_types[input_ids == self.image_token_id] = 1
        mm_types[input_ids == self.video_token_id] = 2
        sample = Sample(sample_id, input_ids, torch.tensor(labels, dtype=torch.long), mm_types)
        if images:
            sample.pixel_values = torch.as_tensor(np.asarray(out["pixel_values"]))
            sample.image_grid_thw = torch.as_tensor(np.asarray(out["image_grid_thw"]), dtype=torch.long)
        if videos:
            sample.pixel_values_videos = torch.as_tensor(np.asarray(out["pixel_values_videos"]))
            sample.video_grid_thw = torch.as_tensor(np.asarray(out["video_grid_thw"]), dtype=torch.long)
            sample.second_per_grid_ts = torch.as_tensor(out["second_per_grid_ts"], dtype=torch.float)
        return sample

    def dummy(self, kind: str) -> Sample:
        """A user turn holding one tiny black image or 2-frame video; nothing in it is trained."""
        side = 28 * 2  # the smallest size the processors keep (4 patches, 1 visual token per frame pair)
        pad = "<|image_pad|>" if kind == "image" else "<|video_pad|>"
        segments = [(f"<|im_start|>user\n<|vision_start|>{pad}<|vision_end|><|im_end|>\n", False)]
        frame = np.zeros((side, side, 3), dtype=np.uint8)
        if kind == "image":
            return self.process(f"<dummy {kind}>", segments, [Image.fromarray(frame)], [])
        meta = VideoMetadata(total_num_frames=2, fps=2.0, frames_indices=[0, 1])
        return self.process(f"<dummy {kind}>", segments, [], [(np.stack([frame, frame]), meta)])


class RopeIndex:
    """The model's own `get_rope_index`, run on one sample at a time (it only needs the model config)."""

    get_vision_position_ids = Qwen2_5_VLModel.get_vision_position_ids
    get_rope_index = Qwen2_5_VLModel.get_rope_index

    def __init__(self, config: Any) -> None:
        self.config = config

    def positions(self, sample: Sample) -> torch.Tensor:
        """(3, L) mRoPE positions of the sample on its own."""
        position_ids, _ = self.get_rope_index(
            sample.input_ids[None],
            mm_token_type_ids=sample.mm_token_type_ids[None],
            image_grid_thw=sample.image_grid_thw,
            video_grid_thw=sample.video_grid_thw,
            second_per_grid_ts=sample.second_per_grid_ts,
        )
        return position_ids[:, 0]


def concat_field(samples: list[Sample], name: str) -> torch.Tensor | None:
    """One tensor field of several samples concatenated (None where none has it)."""
    parts = [getattr(s, name) for s in samples if getattr(s, name) is not None]
    return torch.cat(parts) if parts else None
