"""Recipe arguments beside TRL's `SFTConfig` and `ModelConfig`: the corpus and mixture, and what is trained.

A recipe YAML holds all three groups flat (alignment-handbook style); `TrlParser` routes each key to its
dataclass, CLI flags override the YAML, and an unknown key is an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Qwen2.5-VL's vision MLP reuses gate/up/down_proj, so LoRA targets the language model by module path.
LANGUAGE_MODEL_LINEARS = r".*language_model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


@dataclass
class DataArguments:
    corpus: str = field(
        default="data/mmaffin",
        metadata={"help": "A built corpus folder (make build-mmaffin) or a Hub dataset id holding one."},
    )
    corpus_revision: str | None = field(default=None, metadata={"help": "Hub revision when `corpus` is a Hub id."})
    train_split: str = field(default="train")
    eval_split: str | None = field(
        default=None, metadata={"help": "Split evaluated for loss when `eval_strategy` is not 'no'."}
    )
    max_eval_samples: int | None = field(default=512)
    dataset_mixture: dict[str, float] | None = field(
        default=None,
        metadata={
            "help": "Weight per corpus dataset (copies per record: 2 = twice, 0.5 = a seeded half, 0 or not named = left out). "
            "Default: the weights the corpus was built with (manifest.json -> mixture)."
        },
    )
    dataset_caps: dict[str, int] | None = field(
        default=None, metadata={"help": "At most N training samples per dataset after weighting (seeded choice)."}
    )
    modalities: list[str] | None = field(
        default=None, metadata={"help": "Keep only these record modalities (text, image, video)."}
    )
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream the corpus JSONL instead of indexing it (needs max_steps; no token packing)."},
    )
    video_decoder: str = field(default="auto", metadata={"help": "auto (torchcodec > decord > pyav) or one of them."})
    vision_dummy: str = field(
        default="auto",
        metadata={
            "help": "Append a masked dummy image/video when a micro-batch lacks one, so every rank runs the vision "
            "tower each step (needed under ZeRO-3). auto = on when more than one process trains."
        },
    )
    global_batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Samples per optimizer step across all processes: sets gradient_accumulation_steps from the "
            "process count (with packing, from the mean samples per pack)."
        },
    )
    mixture_seed: int = field(default=42, metadata={"help": "Seed of the mixture sampling (weights, caps)."})
    dataset_hub_id: str | None = field(
        default=None,
        metadata={
            "help": "Hub dataset id of the corpus, named in the model card's `datasets`. Default: the push recorded "
            "in <corpus>/hub_push.json by `mmaff push-dataset`, or `corpus` itself when it is a Hub id."
        },
    )


@dataclass
class TuningArguments:
    freeze_vision_tower: bool = field(default=True, metadata={"help": "Freeze the ViT (patch embed + blocks)."})
    freeze_merger: bool = field(default=True, metadata={"help": "Freeze the vision-language merger (projector)."})
    freeze_language_model: bool = field(default=False)
    lora_target_regex: str = field(
        default=LANGUAGE_MODEL_LINEARS,
        metadata={
            "help": "Modules LoRA adapts (full-match regex over module names), used unless "
            "`lora_target_modules` is given."
        },
    )
    merge_lora: bool = field(
        default=False, metadata={"help": "After training, merge the adapter into full weights in <output_dir>/merged."}
    )
