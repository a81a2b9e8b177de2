"""Training throughput of our SFT path against LLaMA-Factory on one GPU: tokens/s/GPU, peak memory and MFU.

    # GPU (one H100/H200): 7B LoRA and 3B full FT, packed and padded, 3 warm-up + 20 timed steps each
    python benchmarks/bench_train_gpu.py --work-dir /tmp/bench --deadline-s 560
    # + LLaMA-Factory at MMAFFBen's settings and at its best (separate venv; offline: --lf-wheelhouse)
    python benchmarks/bench_train_gpu.py --work-dir /tmp/bench --runs ours-7b-lora-packed \
        lf-7b-lora-mmaffben lf-7b-lora-best --with-llamafactory
    # CPU, toy scale (checks the whole path, numbers meaningless): tiny model, 40 samples, 3 steps, ours only
    python benchmarks/bench_train_gpu.py --tiny --work-dir /tmp/bench_gpu_tiny

Run names: {ours,lf}-{7b,3b,tiny}-{lora,full}-{packed,padded | mmaffben,best}; LoRA runs at 7B and full FT at 3B
unless --model says otherwise. benchmarks/README_train_gpu.md has the plan for a lent GPU machine.

What it does, in order:

1. Writes a seeded synthetic corpus (`<work>/data`) in OUR corpus format (records valid under mmaff.data.schema,
   manifest.json with MMAFFBen's media budget and mixture weights, visual tokens from mmaff.data.media): mostly short
   text samples (60-250 tokens, MMAFFIn-like emotion-classification prompts), ~20% image samples (48x48 and 640x480
   PNGs), ~5% video samples (3-4 s mp4s at 10-25 fps, 320x240). The SAME samples are written for LLaMA-Factory
   (`<work>/data/llamafactory`: sharegpt "messages" JSON with `<image>`/`<video>` placeholders and absolute media
   paths, plus dataset_info.json).
2. Writes randomly initialised real-size Qwen2.5-VL-3B/7B folders (bf16 safetensors, configs of the published
   models, the real Qwen2.5 tokenizer/processor of `mmaff.testing.tiny_model`), or the tiny model with `--tiny`.
3. Runs each benchmark as its own subprocess: ours through `accelerate launch ... mmaff.train.sft.main` (this
   script is the launched file: it adds a timing callback to the Trainer, then calls `main(argv)` unchanged), and
   LLaMA-Factory through its `run_exp` (same callback). Every run: same global batch (samples per optimizer step),
   max_length/cutoff 4096 (`--tiny`: 1024), MMAFFBen pixel budgets, bf16, gradient checkpointing, SDPA attention
   (LLaMA-Factory at its best: FlashAttention-2 if installed), W warm-up steps then N timed steps.
4. Prints a markdown table and writes `--out` (JSON): real tokens/s/GPU, peak GPU memory, MFU, ratios
   ours / LLaMA-Factory with the targets next to them, and the exact commands.

How it measures:

* Time: a TrainerCallback records a timestamp at the end of every optimizer step, after
  `torch.cuda.synchronize()`. The timed window is the end of warm-up step W to the end of step W+N; it includes
  data loading, the optimizer step and logging, i.e. what a real run spends per step.
* Tokens: real (non-padding) tokens. Ours: deltas of `num_tokens` in trainer_state.json's log_history (our trainer
  logs real tokens, cumulative, every step; `logging_steps 1`) over the timed steps. LLaMA-Factory: the callback
  counts the micro-batches' non-padding tokens (attention mask != 0 and not the pad id: LLaMA-Factory's plain
  packing gives its pads attention 1; the fake image it adds to text-only batches is masked, so not counted). For
  ours the callback adds up the collator's own real-token counts (`tokens_callback` in the JSON: a cross-check).
* Peak memory: `torch.cuda.max_memory_allocated()` read by the callback inside the training process (whole run,
  warm-up included) and, as a second view, the largest `nvidia-smi` memory.used seen by a polling thread (0.5 s) of
  this script while the run's process is alive (includes the CUDA context and allocator cache).
* MFU = model FLOPs / (timed seconds x GPUs x peak bf16 FLOP/s). Model FLOPs: 6N (full FT) or 4N (LoRA: frozen
  base weights, no weight gradients) per real LLM token, N = decoder-layer parameters + the lm_head matmul; plus
  the frozen vision tower's forward, 2N per 14x14x2 patch (4 patches per merged visual token) + the merger's 2N per
  merged token. Attention score FLOPs and recomputation from gradient checkpointing are not counted (that would be
  HFU). Peak: 989 TFLOP/s for H100 SXM / H200 (dense bf16), see `--peak-tflops`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()

# ---------------------------------------------------------------- constants

SYSTEM_PROMPT = "You are a helpful assistant for affective analysis."
EMOTIONS = ("neutral", "happiness", "sadness", "anger", "fear", "surprise", "disgust")
WORDS = (
    "the a this that movie game post comment really so very not quite pretty love hate enjoy fear hope miss think "
    "believe wonder thanks sorry great awful funny sad happy angry weird nice boring day night friend family work "
    "today again never always people time home music food weather city news phone team story world life night"
).split()
PAD_ID, IMAGE_PAD_ID, VIDEO_PAD_ID = 151_643, 151_655, 151_656  # <|endoftext|> pads; real text never holds it
DENSE_BF16_TFLOPS = (  # (substring of the CUDA device name, peak dense bf16 TFLOP/s); first match wins
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),  # same tensor peak as H100 SXM (research notes C.1)
    ("H800", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("A800", 312.0),
)
TARGETS = {"vs_lf_mmaffben": 3.0, "vs_lf_best": 1.2, "mfu": 0.45}

# Published Qwen2.5-VL-3B/7B-Instruct configs (research notes D.1), in transformers 5.x field names.
# ---------------------------------------------------------------- run plan


@dataclass(frozen=True)
class RunSpec:
    """One benchmark run: which trainer, which model size, what is trained, how batches are laid out."""

    tool: str  # ours | lf
    size: str  # 3b | 7b | tiny
    method: str  # lora | full
    layout: str  # packed | padded (ours); mmaffben | best (LLaMA-Factory)

    @property
    def name(self) -> str:
        return f"{self.tool}-{self.size}-{self.method}-{self.layout}"


# (tool, method, layout) -> the size it runs at unless --model forces one: LoRA at 7B, full FT at 3B.
PLAN = (  # in the order they run: packed first, so that a --deadline-s cuts the padded ones
    ("ours", "lora", "packed"),
    ("ours", "full", "packed"),
    ("ours", "lora", "padded"),
    ("ours", "full", "padded"),
    ("lf", "lora", "mmaffben"),
    ("lf", "lora", "best"),
    ("lf", "full", "mmaffben"),
    ("lf", "full", "best"),
)
DEFAULT_SIZE = {"lora": "7b", "full": "3b"}
# The comparisons reported (ours run layout, LLaMA-Factory layout, target key).
COMPARISONS = (("packed", "mmaffben", "vs_lf_mmaffben"), ("packed", "best", "vs_lf_best"))


def all_runs(model: str | None) -> list[RunSpec]:
    return [RunSpec(tool, model or DEFAULT_SIZE[method], method, layout) for tool, method, layout in PLAN]


def select_runs(args: argparse.Namespace) -> list[RunSpec]:
    runs = all_runs(args.model)
    if args.runs:
        by_name = {r.name: r for r in runs}
        unknown = sorted(set(args.runs) - set(by_name))
        if unknown:
            raise SystemExit(f"unknown run(s) {unknown}; known with --model {args.model}: {sorted(by_name)}")
        return [by_name[n] for n in args.runs]
    return [r for r in runs if r.tool == "ours" or args.with_llamafactory]


# ---------------------------------------------------------------- synthetic corpus


@dataclass
class CorpusSummary:
    root: str
    samples: int
    by_modality: dict[str, int]
    tokens: dict[str, dict[str, float]] = field(default_factory=dict)  # modality -> min/mean/max (filled later)


# Label sets of the two prompt shapes used: emotion classification and sentiment polarity (as in MMAFFIn).
LABELS = {
    "EC": (EMOTIONS, tuple(range(len(EMOTIONS))), "emotion", "mmaffben/emotion_classification"),
    "SP": (("negative", "neutral", "positive"), (-1, 0, 1), "polarity", "mmaffben/sentiment_polarity"),
}
SUBJECTS = {
    "text": "the text",
    "face": "the person in the face image",
    "scene": "the target person (in the red box, or the person the image is cropped to) in the image",
    "video": "the speaker in the video clip and its transcript",
}


def _label_prompt(kind: str, task: str, body: str | None) -> str:
    labels, ids, noun, _ = LABELS[task]
    options = "\n".join(f"{i}. {name}" for i, name in zip(ids, labels))
    if task == "EC":
        verb = "Identify the emotion " + ("expressed in " if kind == "text" else "of ") + SUBJECTS[kind]
    else:
        verb = f"Classify the sentiment polarity of {SUBJECTS[kind]}"
    parts = [f"Task: {verb}. Choose exactly one of:\n{options}"]
    if body is not None:
        parts.append(("Text: " if kind == "text" else "Content: ") + body)
    parts.append(f'Answer with one "number. {noun}".')
    return "\n".join(parts)


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(1, words))).capitalize() + "."


def _record(
    dataset: str,
    modality: str,
    index: int,
    task: str,
    prompt: str,
    gold: str,
    media: list[dict[str, Any]],
    paths: list[str],
    text: str | None,
) -> dict[str, Any]:
    """A corpus record in the schema's key order (validated by mmaff.data.schema.validate_record)."""
    labels, ids, _, template = LABELS[task]
    language = "zxx" if modality == "image" else "en"
    kind = "image" if modality == "image" else "video"
    user = [*({"type": kind} for _ in paths), {"type": "text", "text": prompt}]
    source_id = f"s{index:06d}"
    return {
        "id": f"{dataset}/{language}/{task}/{source_id}",
        "dataset": dataset,
        "subset": language,
        "subtask": task,
        "task": task,
        "target_type": "single",
        "language": language,
        "modality": modality,
        "split": "train",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
            {"role": "user", "content": user},
            {"role": "assistant", "content": [{"type": "text", "text": f"{ids[labels.index(gold)]}. {gold}"}]},
        ],
        "images": paths if modality == "image" else [],
        "videos": paths if modality == "video" else [],
        "visual_tokens": sum(m["tokens"] for m in media),
        "media": media,
        "text": text,
        "gold": gold,
        "given": None,
        "label_space": {"labels": list(labels), "ids": list(ids), "none": None},
        "template": {"name": template, "version": 1},
        "source": {"file": "synthetic", "line": index + 1, "source_id": source_id},
    }


def _write_image(path: Path, width: int, height: int, rng: random.Random) -> None:
    """A smooth gradient with a few rectangles and mild noise: cheap to decode, realistic PNG sizes."""
    import numpy as np
    from PIL import Image

    gen = np.random.default_rng(rng.getrandbits(32))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([(x / width) * 255, (y / height) * 255, ((x + y) / (width + height)) * 255], axis=-1)
    image = base * gen.uniform(0.3, 1.0, size=3)
    for _ in range(4):
        x0, y0 = int(gen.integers(0, width - 4)), int(gen.integers(0, height - 4))
        image[y0 : y0 + height // 4, x0 : x0 + width // 4] = gen.uniform(0, 255, size=3)
    image += gen.normal(0, 6, size=image.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path, format="PNG", compress_level=3)


def _write_video(
    path: Path, seconds: float, fps: int, rng: random.Random, width: int = 320, height: int = 240
) -> None:
    """An H.264 (or MPEG-4 part 2) clip of a moving square over a drifting gradient, written with PyAV."""
    import av
    import numpy as np

    gen = np.random.default_rng(rng.getrandbits(32))
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    frames = round(seconds * fps)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    color = gen.uniform(0, 255, size=3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            shift = i * 4
            frame = np.stack([(x + shift) % width / width * 255, y / height * 255, np.full_like(x, 96)], axis=-1)
            cx, cy = (40 + 6 * i) % (width - 40), (30 + 3 * i) % (height - 40)
            frame[cy : cy + 40, cx : cx + 40] = color
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.astype(np.uint8), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _overhead_tokens(length_of: Any, task: str) -> int:
    """Tokens of a text sample with a one-word text (template, system prompt, label list, answer)."""
    probe = _record("bench_text", "text", 0, task, _label_prompt("text", task, "Word."), "neutral", [], [], "Word.")
    return int(length_of(probe)) - 1


@dataclass(frozen=True)
class Planned:
    """One sample to generate, fully decided in the parent process (so the corpus does not depend on --jobs)."""

    index: int
    kind: str  # text | face (48x48 image) | scene (640x480 image) | video
    task: str  # EC | SP
    gold: str
    seed: int  # media pixels and words
    words: int  # words of the text, or of the video's transcript
    seconds: float = 0.0
    fps: int = 0


def plan_samples(
    samples: int, seed: int, image_fraction: float, video_fraction: float, overhead: dict[str, int]
) -> list[Planned]:
    rng = random.Random(seed)
    n_video, n_image = round(samples * video_fraction), round(samples * image_fraction)
    kinds = ["video"] * n_video + ["image"] * n_image + ["text"] * (samples - n_video - n_image)
    rng.shuffle(kinds)
    plans = []
    for index, kind in enumerate(kinds):
        task = rng.choice(("EC", "SP")) if kind == "text" else "EC"
        gold, media_seed = rng.choice(LABELS[task][0]), rng.getrandbits(32)
        if kind == "text":  # total tokens of the sample 60-250 (MMAFFIn-like); one word is about one token
            words = max(1, rng.randint(60, 250) - overhead[task])
            plans.append(Planned(index, "text", task, gold, media_seed, words))
        elif kind == "image":
            plans.append(Planned(index, rng.choice(("face", "scene")), task, gold, media_seed, 0))
        else:
            seconds, fps = rng.uniform(3.0, 4.0), rng.choice((10, 15, 25))
            plans.append(Planned(index, "video", task, gold, media_seed, rng.randint(5, 25), seconds, fps))
    return plans


def make_sample(root: Path, plan: Planned) -> dict[str, Any]:
    """Write the sample's media (if any) and return its corpus record, with media described by mmaff.data.media."""
    from mmaff.data.media import MediaBudget, describe

    rng = random.Random(plan.seed)
    if plan.kind == "text":
        text = _sentence(rng, plan.words)
        prompt = _label_prompt("text", plan.task, text)
        return _record("bench_text", "text", plan.index, plan.task, prompt, plan.gold, [], [], text)
    if plan.kind in ("face", "scene"):
        relative = f"media/bench_image/{plan.index:06d}.png"
        _write_image(root / relative, *((48, 48) if plan.kind == "face" else (640, 480)), rng)
        media = [describe(str(root / relative), "image", MediaBudget())]
        prompt = _label_prompt(plan.kind, plan.task, None)
        return _record("bench_image", "image", plan.index, plan.task, prompt, plan.gold, media, [relative], None)
    relative = f"media/bench_video/{plan.index:06d}.mp4"
    _write_video(root / relative, plan.seconds, plan.fps, rng)
    media = [describe(str(root / relative), "video", MediaBudget())]
    transcript = _sentence(rng, plan.words)
    prompt = _label_prompt("video", plan.task, transcript)
    return _record("bench_video", "video", plan.index, plan.task, prompt, plan.gold, media, [relative], transcript)


def generate_corpus(
    root: Path, samples: int, seed: int, fractions: tuple[float, float], length_of: Any, jobs: int
) -> CorpusSummary:
    """Write the corpus (ours + LLaMA-Factory's format) into `root`; reuse it if the same parameters built it.
    `fractions`: (image, video) shares of the samples."""
    from concurrent.futures import ProcessPoolExecutor

    from mmaff.data.media import MediaBudget
    from mmaff.data.schema import validate_record

    params = {"samples": samples, "seed": seed, "image": fractions[0], "video": fractions[1], "format": 3}
    marker = root / "bench_corpus.json"
    if marker.is_file() and json.loads(marker.read_text()).get("params") == params:
        return CorpusSummary(**json.loads(marker.read_text())["summary"])
    shutil.rmtree(root, ignore_errors=True)
    overhead = {task: _overhead_tokens(length_of, task) for task in LABELS}
    plans = plan_samples(samples, seed, *fractions, overhead)
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            records = list(pool.map(make_sample, [root] * len(plans), plans, chunksize=8))
    else:
        records = [make_sample(root, plan) for plan in plans]
    for record in records:
        if any("error" in m for m in record["media"]):
            raise RuntimeError(f"{record['id']}: generated media failed its check: {record['media']}")
        validate_record(record)
    _write_ours(root, records, MediaBudget())
    _write_llamafactory(root, records)
    by_modality = {m: sum(r["modality"] == m for r in records) for m in ("text", "image", "video")}
    summary = CorpusSummary(root=str(root), samples=len(records), by_modality=by_modality)
    marker.write_text(json.dumps({"params": params, "summary": asdict(summary)}, indent=1) + "\n")
    return summary


def _write_ours(root: Path, records: list[dict[str, Any]], budget: Any) -> None:
    """`train/<dataset>.jsonl` and a manifest.json with what our loader reads: media_budget, mixture weights,
    per-dataset counts (split -> subtask -> language -> records)."""
    (root / "train").mkdir(parents=True, exist_ok=True)
    datasets: dict[str, Any] = {}
    for name in sorted({r["dataset"] for r in records}):
        mine = [r for r in records if r["dataset"] == name]
        with open(root / "train" / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for record in mine:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        counts: dict[str, dict[str, int]] = {}
        for record in mine:
            by_language = counts.setdefault(record["subtask"], {})
            by_language[record["language"]] = by_language.get(record["language"], 0) + 1
        datasets[name] = {
            "status": "built",
            "subtasks": sorted(counts),
            "splits": ["train"],
            "weight": 1.0,
            "counts": {"train": counts},
            "visual_tokens": {"train": sum(r["visual_tokens"] for r in mine)},
        }
    manifest = {
        "corpus": "bench-synthetic",
        "schema_version": 1,
        "media_budget": asdict(budget),
        "template_style": "mmaffben",
        "mixture": {
            name: {"subtasks": entry["subtasks"], "splits": ["train"], "weight": 1.0, "train_caps": {}, "options": {}}
            for name, entry in datasets.items()
        },
        "totals": {"records": {"train": len(records)}},
        "datasets": datasets,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def _write_llamafactory(root: Path, records: list[dict[str, Any]]) -> None:
    """The same samples in LLaMA-Factory's sharegpt "messages" format (role/content strings, placeholders)."""
    out = root / "llamafactory"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for record in records:
        messages = []
        for message in record["messages"]:
            content = "".join(
                f"<{part['type']}>" if part["type"] in ("image", "video") else part["text"]
                for part in message["content"]
            )
            messages.append({"role": message["role"], "content": content})
        rows.append(
            {
                "messages": messages,
                "images": [str((root / p).resolve()) for p in record["images"]],
                "videos": [str((root / p).resolve()) for p in record["videos"]],
            }
        )
    (out / "mmaff_bench.json").write_text(json.dumps(rows, ensure_ascii=False) + "\n")
    info = {
        "mmaff_bench": {
            "file_name": "mmaff_bench.json",
            "formatting": "sharegpt",
            "columns": {"messages": "messages", "images": "images", "videos": "videos"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
    }
    (out / "dataset_info.json").write_text(json.dumps(info, indent=1) + "\n")


def corpus_lengths(root: Path, length_of: Any) -> tuple[list[int], list[str]]:
    """Exact tokens of every sample (our encoder: tokenizer + the recorded visual tokens) and its modality."""
    lengths, modalities = [], []
    for path in sorted((root / "train").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            lengths.append(length_of(record))
            modalities.append(record["modality"])
    return lengths, modalities


def length_stats(lengths: list[int], modalities: list[str]) -> dict[str, dict[str, float]]:
    stats = {}
    for modality in ("text", "image", "video", "all"):
        values = [n for n, m in zip(lengths, modalities) if modality in (m, "all")]
        if values:
            stats[modality] = {
                "n": len(values),
                "min": min(values),
                "mean": sum(values) / len(values),
                "max": max(values),
            }
    return stats


def samples_per_pack(lengths: list[int], budget: int) -> float:
    from mmaff.train.data import pack

    packs = pack([n for n in lengths if n <= budget], budget)
    return sum(len(p) for p in packs) / max(len(packs), 1)


# ---------------------------------------------------------------- models


def write_real_size_model(size: str, out: Path, device: str) -> None:
    """Random-init Qwen2.5-VL-{3B,7B} in bf16, built directly on `device`, saved with the real processor.
    Runs in a subprocess (`_build-model`) so that the benchmark's parent process never holds a CUDA context."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from mmaff.testing.tiny_model import build_generation_config, build_processor, real_size_config

    torch.manual_seed(0)
    staging = out.with_name(out.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(real_size_config(size), dtype=torch.bfloat16)
    model.generation_config = build_generation_config()
    model.save_pretrained(staging, max_shard_size="5GB")
    build_processor().save_pretrained(staging)
    n = sum(p.numel() for p in model.parameters())
    (staging / "bench_model.json").write_text(json.dumps({"size": size, "parameters": n}) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)


def ensure_model(size: str, models: Path, device: str, log: Path) -> Path:
    if size == "tiny":
        from mmaff.testing.tiny_model import build_tiny_qwen25vl

        return build_tiny_qwen25vl(models / "tiny-qwen2.5-vl")
    out = models / f"random-qwen2.5-vl-{size}"
    if (out / "bench_model.json").is_file():
        return out
    command = [sys.executable, str(THIS), "_build-model", size, str(out), device]
    started = time.perf_counter()
    with open(log, "w") as f:
        subprocess.run(command, check=True, stdout=f, stderr=subprocess.STDOUT, env=child_env())
    print(f"built {out} in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return out


@dataclass(frozen=True)
class FlopConstants:
    """Forward FLOPs = 2 x these parameter counts: per LLM token, per ViT patch, per merged visual token."""

    llm_params: int  # decoder layers + lm_head matmul (the embedding lookup costs no FLOPs)
    vit_patch_params: int  # patch embed + ViT blocks, applied to every 14x14x2 patch
    merger_params: int  # applied to every merged (2x2) visual token

    def train_flops(self, method: str, tokens: float, visual_tokens: float) -> float:
        llm = (6 if method == "full" else 4) * self.llm_params * tokens
        vit = 2 * (4 * self.vit_patch_params + self.merger_params) * visual_tokens  # frozen ViT: forward only
        return llm + vit


def flop_constants(model_dir: Path) -> FlopConstants:
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        return model_flop_constants(AutoModelForImageTextToText.from_config(config))


def model_flop_constants(model: Any) -> FlopConstants:
    """Forward-FLOP parameter counts of a Qwen2.5-VL model (PEFT-wrapped too: LoRA weights are not counted)."""
    layers = vit = merger = 0
    for name, param in model.named_parameters():
        name = name.replace("base_model.model.", "").replace(".base_layer", "")
        if "lora_" in name:
            continue
        if name.startswith("model.language_model.layers."):
            layers += param.numel()
        elif name.startswith(("model.visual.patch_embed.", "model.visual.blocks.")):
            vit += param.numel()
        elif name.startswith("model.visual.merger."):
            merger += param.numel()
    text = model.config.text_config
    return FlopConstants(layers + text.vocab_size * text.hidden_size, vit, merger)


# ---------------------------------------------------------------- run commands


@dataclass
class Settings:
    device: str
    global_batch: int
    padded_batch: int
    max_length: int
    warmup_steps: int
    timed_steps: int
    workers: int
    dataset_num_proc: int
    seed: int
    skip_final_save: bool


def ours_command(spec: RunSpec, model_dir: Path, corpus: Path, out: Path, s: Settings) -> list[str]:
    recipe = {
        "lora": ROOT / "recipes" / "qwen2.5-vl-7b" / "sft" / "config_lora.yaml",
        "full": ROOT / "recipes" / "qwen2.5-vl-3b" / "sft" / "config_full.yaml",
    }[spec.method]
    launcher = [
        str(Path(sys.executable).with_name("accelerate")),
        "launch",
        "--config_file",
        str(ROOT / "ds_configs" / "accelerate" / "single_gpu.yaml"),
    ]
    cpu = s.device == "cpu"
    if cpu:
        launcher += ["--cpu", "--mixed_precision", "no"]
    packed = spec.layout == "packed"
    fields = {
        "model_name_or_path": model_dir,
        "corpus": corpus,
        "output_dir": out,
        "max_length": s.max_length,
        "packing": packed,
        "per_device_train_batch_size": 1 if packed else s.padded_batch,
        "global_batch_size": s.global_batch,
        "max_steps": s.warmup_steps + s.timed_steps,
        "attn_implementation": "sdpa",
        "gradient_checkpointing": True,
        "bf16": not cpu,
        "dtype": "float32" if cpu else "bfloat16",
        "use_cpu": cpu,
        "dataloader_num_workers": s.workers,
        "dataloader_persistent_workers": s.workers > 0,
        "dataset_num_proc": s.dataset_num_proc,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": s.seed,
    }
    if spec.method == "lora":
        fields["merge_lora"] = False
    args = [str(THIS), "_ours-worker", "--config", str(recipe)]
    for key, value in fields.items():
        args += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
    return launcher + args


@dataclass(frozen=True)
class LfBest:
    """How LLaMA-Factory runs "at its best" (layout `best`)."""

    gradient_accumulation_steps: int  # packs per step that make the global batch (from our packing of the corpus)
    packing: str  # neat (isolated samples) | plain (greedy knapsack, attention across samples)
    attention: str  # fa2 | sdpa
    liger: bool
    why: str


def choose_lf_best(requested: str, has_flash_attn: bool, liger: bool, ga: int, device: str) -> LfBest:
    """Neat packing needs FlashAttention-2 in LLaMA-Factory 0.9.5: on SDPA/eager its collator builds a 4D block mask
    that is longer than input_ids whenever a pack has no image (the fake image's padding is appended to the mask a
    second time) and the forward fails. Without flash-attn, "best" is therefore plain packing."""
    liger = liger and device != "cpu"  # Liger's kernels are Triton GPU kernels
    if requested == "neat" or (requested == "auto" and has_flash_attn):
        attention = "fa2" if has_flash_attn else "sdpa"
        why = "neat packing" + (" + FlashAttention-2" if has_flash_attn else " on SDPA (crashes on text-only packs)")
        return LfBest(ga, "neat", attention, liger, why)
    why = "plain packing (flash-attn not importable there: neat packing on SDPA fails, see choose_lf_best)"
    return LfBest(ga, "plain", "sdpa", liger, why if requested == "auto" else "plain packing (requested)")


def lf_config(spec: RunSpec, model_dir: Path, data: Path, out: Path, s: Settings, best: LfBest) -> dict[str, Any]:
    """LLaMA-Factory arguments: MMAFFBen's run_sft_stream.sh settings, or LLaMA-Factory at its best."""
    cpu = s.device == "cpu"
    at_best = spec.layout == "best"
    config: dict[str, Any] = {
        "model_name_or_path": str(model_dir),
        "trust_remote_code": True,
        "stage": "sft",
        "do_train": True,
        "finetuning_type": spec.method,
        "freeze_vision_tower": True,
        "freeze_multi_modal_projector": True,
        "freeze_language_model": False,
        "dataset": "mmaff_bench",
        "dataset_dir": str(data / "llamafactory"),
        "template": "qwen2_vl",
        "cutoff_len": s.max_length,
        "image_max_pixels": 262_144,
        "image_min_pixels": 3136,
        "video_max_pixels": 16_384,
        "video_min_pixels": 3136,
        "video_fps": 2.0,
        "video_maxlen": 128,
        "overwrite_cache": True,
        "preprocessing_num_workers": 1 if cpu else 8,  # tokenizing + media token counts, before timing starts
        "dataloader_num_workers": s.workers,
        "output_dir": str(out),
        "overwrite_output_dir": True,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "per_device_train_batch_size": 1,
        "gradient_accumulation_steps": best.gradient_accumulation_steps if at_best else s.global_batch,
        "learning_rate": 1.0e-4 if spec.method == "lora" else 5.0e-6,
        "lr_scheduler_type": "cosine",
        "weight_decay": 0.1,
        "max_steps": s.warmup_steps + s.timed_steps,
        "bf16": not cpu,
        "disable_gradient_checkpointing": False,  # (its default) as ours
        "flash_attn": best.attention if at_best else "sdpa",
        "seed": s.seed,
        "packing": at_best,
        "neat_packing": at_best and best.packing == "neat",
        "enable_liger_kernel": at_best and best.liger,
    }
    if spec.method == "lora":
        config.update(lora_rank=64, lora_alpha=128, lora_dropout=0.05, lora_target="all")
    if cpu:
        config["use_cpu"] = True
    return config


# ---------------------------------------------------------------- LLaMA-Factory install


LF_VERSIONS_PROBE = (
    "import importlib.metadata as m, json, transformers; from llamafactory.train.tuner import run_exp; "
    "print(json.dumps({p: m.version(p) for p in "
    "('llamafactory', 'transformers', 'torch', 'peft', 'trl', 'datasets', 'accelerate')}))"
)


def _python_ok(python: Path, code: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=child_env("lf"))


def make_venv_on_our_torch(venv: Path, log: Any, with_pip: bool) -> Path:
    """A new venv whose sys.path ends with THIS environment's site-packages (a .pth file): packages installed into
    the venv (LLaMA-Factory's pinned transformers/peft/trl/datasets) come first; torch, not reinstalled, comes
    from here, so both tools train on the same torch. Returns the venv's site-packages."""
    import importlib.util

    command = [sys.executable, "-m", "venv", *([] if with_pip else ["--without-pip"]), str(venv)]
    subprocess.run(command, check=True, stdout=log, stderr=subprocess.STDOUT)
    site = Path(
        _python_ok(venv / "bin" / "python", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    )
    torch_site = Path(importlib.util.find_spec("torch").origin).parent.parent
    (site / "zz_bench_base_torch.pth").write_text(f"{torch_site}\n")
    return site


def install_llamafactory(venv: Path, spec: str, wheelhouse: Path | None, log: Path) -> dict[str, str]:
    """Online: `pip install <spec>` and `liger-kernel` in the venv (dependencies resolved, torch seen as installed).
    Offline (`wheelhouse`): every wheel of the folder, `--no-deps`, put into the venv's site-packages by this
    environment's pip (no pip or package index needed in the venv), the way the GPU machines take wheels."""
    steps: dict[str, str] = {}
    with open(log, "a") as f:
        shutil.rmtree(venv, ignore_errors=True)
        site = make_venv_on_our_torch(venv, f, with_pip=wheelhouse is None)
        if wheelhouse:
            wheels = sorted(str(w) for w in wheelhouse.glob("*.whl"))
            pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(site)]
            done = subprocess.run([*pip, *wheels], stdout=f, stderr=subprocess.STDOUT, env=child_env("lf"))
            steps[f"pip install --no-deps {len(wheels)} wheels from {wheelhouse}"] = f"exit {done.returncode}"
            return steps
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
        for target in (spec, "liger-kernel"):
            done = subprocess.run([*pip, target], stdout=f, stderr=subprocess.STDOUT, env=child_env("lf"))
            steps[f"pip install {target}"] = f"exit {done.returncode}"
    return steps


def ensure_llamafactory(venv: Path, spec: str, wheelhouse: Path | None, log: Path) -> tuple[Path | None, dict]:
    """LLaMA-Factory (and Liger, optional) in a separate venv on our torch, installed unless it already imports.
    Returns (its python or None, what happened); the reasons of a failure are in the dict and in `log`."""
    python = venv / "bin" / "python"
    info: dict[str, Any] = {"venv": str(venv), "spec": spec, "log": str(log)}
    if not python.exists() or _python_ok(python, LF_VERSIONS_PROBE).returncode:
        info["install"] = install_llamafactory(venv, spec, wheelhouse, log)
    done = _python_ok(python, LF_VERSIONS_PROBE)
    if done.returncode:
        info["import"] = done.stderr[-2000:]
        return None, info
    info["versions"] = json.loads(done.stdout.strip().splitlines()[-1])  # (importing it logs to stdout)
    for module in ("liger_kernel", "flash_attn"):
        info[module] = _python_ok(python, f"import {module}").returncode == 0
    return python, info


# ---------------------------------------------------------------- running and measuring


def child_env(tool: str = "ours", **extra: str) -> dict[str, str]:
    """Offline HF settings; for our processes the repository on PYTHONPATH (mmaff need not be installed), for
    LLaMA-Factory's no PYTHONPATH at all, so that its venv's packages are not shadowed by ours (e.g. wheels
    installed with `pip --target` and put on PYTHONPATH, as on the GPU machines)."""
    env = dict(os.environ)
    if tool == "lf":
        env.pop("PYTHONPATH", None)
    else:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        DISABLE_VERSION_CHECK="1",  # LLaMA-Factory: its own venv already has the versions it pins
        **extra,
    )
    return env


class GpuMemoryPoller:
    """Largest `nvidia-smi` memory.used (MiB) of GPU 0 while active; None without nvidia-smi."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.peak_mib: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _poll(self) -> None:
        query = ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"]
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                used = int(subprocess.check_output(query, text=True, timeout=5).split()[0])
                self.peak_mib = max(self.peak_mib or 0, used)
            self._stop.wait(self.interval)

    def __enter__(self) -> GpuMemoryPoller:
        if shutil.which("nvidia-smi"):
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()


@dataclass
class RunResult:
    name: str
    tool: str
    size: str
    method: str
    layout: str
    command: str
    status: str = "not run"
    wall_s: float | None = None
    timed_steps: int | None = None
    timed_s: float | None = None
    tokens: int | None = None  # real tokens in the timed steps (the figure used)
    tokens_source: str | None = None
    tokens_callback: int | None = None
    visual_tokens: int | None = None
    processed_tokens: int | None = None  # tokens of the input rows incl. padding / dummy media
    gradient_accumulation_steps: int | None = None
    tokens_per_s_per_gpu: float | None = None
    s_per_step: float | None = None
    real_token_fraction: float | None = None
    peak_allocated_gib: float | None = None
    peak_reserved_gib: float | None = None
    peak_nvidia_smi_gib: float | None = None
    peak_host_rss_gib: float | None = None
    device_name: str | None = None
    model_tflop_per_s: float | None = None
    mfu: float | None = None
    log: str | None = None
    notes: list[str] = field(default_factory=list)


def run_subprocess(
    command: list[str], log: Path, timeout: float | None, tool: str, **env: str
) -> tuple[int, float, int | None]:
    """Run `command` with its output in `log`; (exit status, wall seconds, peak nvidia-smi MiB). The command gets
    its own process group, ended as a whole on timeout (accelerate's launcher starts the trainer as a child)."""
    import signal

    started = time.perf_counter()
    with open(log, "w") as f, GpuMemoryPoller() as poller:
        f.write("$ " + shlex.join(command) + "\n\n")
        f.flush()
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=child_env(tool, **env), start_new_session=True
        )
        try:
            status = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=grace)
                    break
            status = 124
    return status, time.perf_counter() - started, poller.peak_mib


def _tail(path: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def measure(
    result: RunResult,
    timing_file: Path,
    state_file: Path | None,
    warmup: int,
    flops: FlopConstants,
    peak_override: float | None,
) -> None:
    """Fill `result` from the callback's timing file and (ours) trainer_state.json."""
    timing = json.loads(timing_file.read_text())
    steps = {s["step"]: s for s in timing["steps"]}
    last = max(steps)
    first = min(warmup, last - 1)
    if first != warmup:
        result.notes.append(f"only {last} steps ran: timed from step {first}")
    start, end = steps[first], steps[last]
    result.timed_steps = last - first
    result.timed_s = end["time"] - start["time"]
    result.s_per_step = result.timed_s / result.timed_steps
    result.tokens_callback = end["tokens"] - start["tokens"]
    result.visual_tokens = end["visual"] - start["visual"]
    result.processed_tokens = end["processed"] - start["processed"]
    result.gradient_accumulation_steps = timing.get("gradient_accumulation_steps")
    result.device_name = timing.get("device_name")
    gib = 2**30
    if timing.get("peak_allocated") is not None:
        result.peak_allocated_gib = timing["peak_allocated"] / gib
        result.peak_reserved_gib = timing["peak_reserved"] / gib
    result.peak_host_rss_gib = timing.get("peak_host_rss_kib", 0) * 1024 / gib or None
    result.tokens, result.tokens_source = result.tokens_callback, "callback (attention mask != 0, not pad)"
    if state_file is not None and state_file.is_file():
        history = json.loads(state_file.read_text())["log_history"]
        logged = {h["step"]: h["num_tokens"] for h in history if "num_tokens" in h and "loss" in h}
        if last in logged and (first in logged or first == 0):
            result.tokens = int(logged[last] - logged.get(first, 0))
            result.tokens_source = "trainer_state.json log_history num_tokens"
            if result.tokens != result.tokens_callback:
                result.notes.append(
                    f"callback counted {result.tokens_callback} real tokens, log_history {result.tokens}"
                )
        fractions = [h["real_token_fraction"] for h in history if "real_token_fraction" in h and h["step"] > first]
        if fractions:
            result.real_token_fraction = sum(fractions) / len(fractions)
    if result.real_token_fraction is None and result.processed_tokens:
        result.real_token_fraction = result.tokens_callback / result.processed_tokens
    result.tokens_per_s_per_gpu = result.tokens / result.timed_s  # one process, one GPU
    model_flops = flops.train_flops(result.method, result.tokens, result.visual_tokens or 0)
    result.model_tflop_per_s = model_flops / result.timed_s / 1e12
    peak = peak_for(result.device_name, peak_override) if timing.get("cuda") else None
    if peak:
        result.mfu = result.model_tflop_per_s / peak


def peak_for(device_name: str | None, override: float | None) -> float | None:
    if override:
        return override
    for key, tflops in DENSE_BF16_TFLOPS:
        if device_name and key in device_name:
            return tflops
    return None


def execute(spec: RunSpec, ctx: dict[str, Any], s: Settings, args: argparse.Namespace) -> RunResult:
    run_dir = Path(ctx["work"]) / "runs" / spec.name
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    out, timing, log = run_dir / "output", run_dir / "timing.json", run_dir / "log.txt"
    model_dir = ctx["models"][spec.size]
    if spec.tool == "ours":
        command = ours_command(spec, model_dir, ctx["corpus"], out, s)
        python = None
    else:
        python = ctx.get("lf_python")
        config = lf_config(spec, model_dir, ctx["corpus"], out, s, ctx["lf_best"])
        (run_dir / "llamafactory.json").write_text(json.dumps(config, indent=1) + "\n")
        with contextlib.suppress(ImportError):
            import yaml

            (run_dir / "llamafactory.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        command = [str(python or "<lf-venv>/bin/python"), str(THIS), "_lf-worker", str(run_dir / "llamafactory.json")]
    result = RunResult(spec.name, spec.tool, spec.size, spec.method, spec.layout, shlex.join(command), log=str(log))
    if spec.tool == "lf" and python is None:
        result.status = "skipped: LLaMA-Factory does not import (why: meta.llamafactory in the JSON)"
        return result
    timeout = args.run_timeout_s
    if ctx.get("deadline"):
        left = ctx["deadline"] - time.monotonic()
        if left < args.min_run_s:
            result.status = f"skipped: {left:.0f}s left before --deadline-s"
            return result
        timeout = min(timeout, left)
    print(f"[{spec.name}] {result.command}", file=sys.stderr)
    hooks = {"BENCH_TIMING_FILE": str(timing), "BENCH_SKIP_SAVE": "1" if s.skip_final_save else "0"}
    status, result.wall_s, smi_peak = run_subprocess(command, log, timeout, spec.tool, **hooks)
    if smi_peak is not None:
        result.peak_nvidia_smi_gib = smi_peak / 1024
    if status != 0 or not timing.is_file():
        result.status = f"failed (exit {status}); last lines of {log}:\n{_tail(log)}"
        return result
    state = out / "trainer_state.json" if spec.tool == "ours" else None
    measure(result, timing, state, s.warmup_steps, ctx["flops"][spec.size], args.peak_tflops)
    result.status = "ok"
    if not args.keep_outputs:
        shutil.rmtree(out, ignore_errors=True)
    return result


# ---------------------------------------------------------------- report


def _fmt(value: float | None, spec: str = ",.0f", scale: float = 1.0) -> str:
    return "n/a" if value is None else format(value * scale, spec)


def comparisons(results: list[RunResult]) -> list[dict[str, Any]]:
    by_name = {r.name: r for r in results if r.status == "ok"}
    rows = []
    for ours in (r for r in by_name.values() if r.tool == "ours" and r.layout == "packed"):
        for ours_layout, lf_layout, target in COMPARISONS:
            lf = by_name.get(f"lf-{ours.size}-{ours.method}-{lf_layout}")
            if lf is None or ours.layout != ours_layout:
                continue
            ratio = ours.tokens_per_s_per_gpu / lf.tokens_per_s_per_gpu
            rows.append(
                {
                    "ours": ours.name,
                    "llamafactory": lf.name,
                    "ratio": ratio,
                    "target": TARGETS[target],
                    "met": ratio >= TARGETS[target],
                }
            )
    return rows


def markdown(results: list[RunResult], meta: dict[str, Any]) -> str:
    lines = [
        f"Device: {meta.get('device_name') or 'n/a'}; peak {_fmt(meta.get('peak_tflops'), '.0f')} TFLOP/s bf16; "
        f"global batch {meta['settings']['global_batch']} samples; max_length {meta['settings']['max_length']}; "
        f"{meta['settings']['warmup_steps']} warm-up + {meta['settings']['timed_steps']} timed steps.",
        "",
        "| run | status | s/step | real tok/s/GPU | real-token fraction | visual share | peak alloc GiB "
        "| peak nvidia-smi GiB | model TFLOP/s | MFU (target >= 45%) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        status = r.status if r.status in ("ok", "not run") else r.status.split(";")[0].split("\n")[0][:60]
        visual = r.visual_tokens / r.tokens_callback if r.visual_tokens is not None and r.tokens_callback else None
        mfu = "n/a" if r.mfu is None else f"{r.mfu:.1%}" + (" (met)" if r.tool == "ours" and r.mfu >= 0.45 else "")
        peak = _fmt(r.peak_allocated_gib, ".1f")
        if r.peak_allocated_gib is None and r.peak_host_rss_gib is not None:
            peak += f" (host RSS {r.peak_host_rss_gib:.1f})"
        lines.append(
            f"| {r.name} | {status} | {_fmt(r.s_per_step, '.3f')} | {_fmt(r.tokens_per_s_per_gpu)} "
            f"| {_fmt(r.real_token_fraction, '.3f')} | {_fmt(visual, '.3f')} | {peak} "
            f"| {_fmt(r.peak_nvidia_smi_gib, '.1f')} | {_fmt(r.model_tflop_per_s, '.2f')} | {mfu} |"
        )
    compared = comparisons(results)
    if compared:
        lines += ["", "| ours | LLaMA-Factory | tokens/s ratio | target | met |", "|---|---|---:|---:|---|"]
        lines += [
            f"| {c['ours']} | {c['llamafactory']} | {c['ratio']:.2f}x | >= {c['target']}x | {'yes' if c['met'] else 'no'} |"
            for c in compared
        ]
    else:
        lines += [
            "",
            "Ratios ours / LLaMA-Factory: n/a (needs a packed run of ours and a LLaMA-Factory run of the same size "
            "and method; targets: >= 3x LLaMA-Factory at MMAFFBen's settings, >= 1.2x at its best).",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------- workers (run inside the training processes)


def install_bench_hooks() -> None:
    """Add a step clock to every Trainer built in this process and count real/visual/processed tokens per
    micro-batch; optionally skip writing the final weights (BENCH_SKIP_SAVE=1). Nothing of ours is edited: the
    hooks patch transformers' Trainer class in this process only."""
    import resource

    import torch
    from transformers import Trainer, TrainerCallback

    timing_file = os.environ["BENCH_TIMING_FILE"]
    cuda = torch.cuda.is_available()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[dict[str, Any]] = []
            self.counts: dict[str, Any] = {"tokens": 0, "visual": 0, "processed": 0}

        def add(self, inputs: dict[str, Any]) -> None:
            """Accumulate on the device without syncing (read out once per optimizer step)."""
            ids = inputs.get("input_ids")
            if ids is None:
                return
            mask = inputs.get("attention_mask")
            if mask is None:
                real = torch.ones_like(ids, dtype=torch.bool)
            elif mask.dim() == 4:  # LLaMA-Factory's block-diagonal mask: a padding row attends to nothing
                keep = mask[:, 0] == 0 if mask.is_floating_point() else mask[:, 0].bool()
                real = keep.any(-1)[:, : ids.shape[-1]]  # (it can be padded longer than the ids: fully masked rows)
            else:
                real = mask != 0
            real = real & (ids != PAD_ID)  # LLaMA-Factory's plain packing gives its pad tokens attention mask 1
            stats = inputs.get("token_stats")  # ours: (real tokens, processed tokens) from the collator
            tokens = stats[0] if stats is not None else real.sum()
            visual = (((ids == IMAGE_PAD_ID) | (ids == VIDEO_PAD_ID)) & real).sum()
            self.counts["tokens"] = self.counts["tokens"] + tokens
            self.counts["visual"] = self.counts["visual"] + visual
            self.counts["processed"] += ids.numel()

        def _mark(self, step: int) -> None:
            sync()
            now = time.perf_counter()
            self.steps.append({"step": step, "time": now, **{k: int(v) for k, v in self.counts.items()}})

        def on_train_begin(self, args, state, control, **kwargs):
            if cuda:
                torch.cuda.reset_peak_memory_stats()
            self._mark(state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            self._mark(state.global_step)

        def on_train_end(self, args, state, control, **kwargs):
            report = {
                "steps": self.steps,
                "cuda": cuda,
                "device_name": torch.cuda.get_device_name(0) if cuda else "cpu",
                "peak_allocated": torch.cuda.max_memory_allocated() if cuda else None,
                "peak_reserved": torch.cuda.max_memory_reserved() if cuda else None,
                "peak_host_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "gradient_accumulation_steps": args.gradient_accumulation_steps,
                "per_device_train_batch_size": args.per_device_train_batch_size,
            }
            Path(timing_file).write_text(json.dumps(report, indent=1) + "\n")

    original_init = Trainer.__init__

    def init(self: Trainer, *a: Any, **k: Any) -> None:
        original_init(self, *a, **k)
        clock = StepClock()
        self.add_callback(clock)
        step = self.training_step

        def training_step(model: Any, inputs: dict[str, Any], *rest: Any, **kw: Any) -> Any:
            clock.add(inputs)  # training_step only runs in training (it calls model.train() itself)
            return step(model, inputs, *rest, **kw)

        self.training_step = training_step

    Trainer.__init__ = init
    if os.environ.get("BENCH_SKIP_SAVE") == "1":
        Trainer.save_model = lambda self, *a, **k: None


def ours_worker(argv: list[str]) -> None:
    install_bench_hooks()
    from mmaff.train.sft import main

    main(argv)


def lf_worker(config_path: str) -> None:
    install_bench_hooks()
    from llamafactory.train.tuner import run_exp

    run_exp(json.loads(Path(config_path).read_text()))


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="toy scale on CPU: tiny model, 40 samples, 3 steps per run")
    p.add_argument("--work-dir", type=Path, default=Path("/tmp/mmaff-bench-train"))
    p.add_argument("--data-dir", type=Path, help="synthetic corpus folder (default: <work-dir>/data)")
    p.add_argument("--out", type=Path, help="results JSON (default: <work-dir>/results.json)")
    p.add_argument("--merge", action="store_true", help="keep the other runs already in --out (same device only!)")
    p.add_argument(
        "--model",
        choices=("3b", "7b", "tiny"),
        help="run every benchmark at this size (default: LoRA at 7B, full FT at 3B; tiny with --tiny)",
    )
    p.add_argument(
        "--runs",
        nargs="+",
        help="run names (default: all of ours, LLaMA-Factory's with "
        "--with-llamafactory); e.g. ours-7b-lora-packed ours-3b-full-padded lf-7b-lora-mmaffben",
    )
    p.add_argument("--with-llamafactory", action="store_true")
    p.add_argument("--device", choices=("cuda", "cpu"), help="default: cpu with --tiny, else cuda")
    p.add_argument("--samples", type=int, help="synthetic samples (default 2048; --tiny 40)")
    p.add_argument("--image-fraction", type=float, default=0.20)
    p.add_argument("--video-fraction", type=float, default=0.05)
    p.add_argument("--global-batch", type=int, help="samples per optimizer step (default 64; --tiny 4)")
    p.add_argument("--padded-batch", type=int, help="per-device batch of the padded runs (default 8; --tiny 2)")
    p.add_argument("--max-length", type=int, help="max_length / cutoff_len / pack budget (default 4096; --tiny 1024)")
    p.add_argument("--warmup-steps", type=int, help="steps before the timed ones (default 3; --tiny 1)")
    p.add_argument("--steps", type=int, help="timed optimizer steps (default 20; --tiny 2)")
    p.add_argument("--workers", type=int, help="dataloader workers (default 4; --tiny 0)")
    p.add_argument("--dataset-num-proc", type=int, help="processes counting tokens in our runs (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, help="processes writing media (default: CPU count up to 16; --tiny 1)")
    p.add_argument("--peak-tflops", type=float, help="peak dense bf16 TFLOP/s per GPU (default: from device name)")
    p.add_argument(
        "--deadline-s",
        type=float,
        help="skip runs that would start later than this many seconds "
        "after launch minus --min-run-s, and stop a run at it (the device tool allows 600 s a command)",
    )
    p.add_argument("--min-run-s", type=float, default=90.0)
    p.add_argument("--run-timeout-s", type=float, default=1800.0)
    p.add_argument("--keep-outputs", action="store_true", help="keep each run's output_dir")
    p.add_argument(
        "--keep-final-save",
        action="store_true",
        help="let the trainers write final weights (skipped by default: not timed, slow for 3B full)",
    )
    p.add_argument("--lf-venv", type=Path, default=Path("/tmp/lf-venv"))
    p.add_argument("--lf-spec", default="llamafactory==0.9.5", help="what pip installs for LLaMA-Factory")
    p.add_argument("--lf-wheelhouse", type=Path, help="install LLaMA-Factory offline from this folder of wheels")
    p.add_argument(
        "--lf-best-packing",
        choices=("auto", "neat", "plain"),
        default="auto",
        help="LLaMA-Factory at its best: neat packing with FlashAttention-2 when flash-attn imports in its venv, "
        "else plain packing (auto)",
    )
    args = p.parse_args(argv)
    tiny = args.tiny
    defaults = {
        "device": "cpu" if tiny else "cuda",
        "samples": 40 if tiny else 2048,
        "global_batch": 4 if tiny else 64,
        "padded_batch": 2 if tiny else 8,
        "max_length": 1024 if tiny else 4096,  # tiny: CPU cost is ~all in the 152k-vocab logits, i.e. per token
        "warmup_steps": 1 if tiny else 3,
        "steps": 2 if tiny else 20,
        "workers": 0 if tiny else 4,
        "dataset_num_proc": 1,  # a few thousand samples tokenize in about a second; workers cost more to start
        "jobs": 1 if tiny else min(16, os.cpu_count() or 1),
    }
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if tiny and args.model is None:
        args.model = "tiny"
    args.data_dir = args.data_dir or args.work_dir / "data"
    args.out = args.out or args.work_dir / "results.json"
    return args


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        device=args.device,
        global_batch=args.global_batch,
        padded_batch=args.padded_batch,
        max_length=args.max_length,
        warmup_steps=args.warmup_steps,
        timed_steps=args.steps,
        workers=args.workers,
        dataset_num_proc=args.dataset_num_proc,
        seed=args.seed,
        skip_final_save=not args.keep_final_save,
    )


def prepare(args: argparse.Namespace, sizes: list[str], phases: dict[str, float]) -> dict[str, Any]:
    """Models, corpus (with token statistics), FLOP constants and, if asked for, LLaMA-Factory."""
    started = time.perf_counter()
    logs = args.work_dir / "logs"
    models = {
        size: ensure_model(size, args.work_dir / "models", args.device, logs / f"build-{size}.log") for size in sizes
    }
    phases["models_s"] = time.perf_counter() - started

    started = time.perf_counter()
    from transformers import AutoProcessor

    from mmaff.data.media import MediaBudget
    from mmaff.encode.samples import SampleEncoder

    # Token counts need only the tokenizer (visual tokens come from the records); every model shares it.
    encoder = SampleEncoder(AutoProcessor.from_pretrained(models[sizes[0]]), args.data_dir, MediaBudget())
    fractions = (args.image_fraction, args.video_fraction)
    summary = generate_corpus(args.data_dir, args.samples, args.seed, fractions, encoder.length, args.jobs)
    lengths, modalities = corpus_lengths(args.data_dir, encoder.length)
    summary.tokens = length_stats(lengths, modalities)
    spp = samples_per_pack(lengths, args.max_length)
    phases["corpus_s"] = time.perf_counter() - started
    return {
        "work": str(args.work_dir),
        "corpus": args.data_dir.resolve(),
        "summary": summary,
        "samples_per_pack": spp,
        "models": models,
        "flops": {size: flop_constants(models[size]) for size in sizes},
    }


def prepare_llamafactory(args: argparse.Namespace, ctx: dict[str, Any], phases: dict[str, float]) -> None:
    started = time.perf_counter()
    log = args.work_dir / "logs" / "llamafactory-install.log"
    python, info = ensure_llamafactory(args.lf_venv, args.lf_spec, args.lf_wheelhouse, log)
    ga = max(1, round(args.global_batch / ctx["samples_per_pack"]))
    has = {module: bool(info.get(module)) for module in ("flash_attn", "liger_kernel")}
    best = choose_lf_best(args.lf_best_packing, has["flash_attn"], has["liger_kernel"], ga, args.device)
    ctx.update(lf_python=python, lf_info=info, lf_best=best)
    phases["llamafactory_install_s"] = time.perf_counter() - started


def merged(results: list[RunResult], out: Path) -> list[RunResult]:
    """`results` plus the runs of an earlier `out` that were not run again."""
    names = {r.name for r in results}
    earlier = [RunResult(**r) for r in json.loads(out.read_text())["runs"] if r["name"] not in names]
    return earlier + results


def report(args: argparse.Namespace, ctx: dict[str, Any], results: list[RunResult], meta: dict[str, Any]) -> None:
    from mmaff.data.media import available_decoder

    device_name = next((r.device_name for r in results if r.device_name), None)
    meta.update(
        device_name=device_name,
        peak_tflops=peak_for(device_name, args.peak_tflops) if device_name not in (None, "cpu") else None,
        video_decoder=available_decoder("auto"),
        corpus=asdict(ctx["summary"]),
        samples_per_pack=ctx["samples_per_pack"],
        llamafactory=ctx.get("lf_info"),
        llamafactory_best=asdict(ctx["lf_best"]) if ctx.get("lf_best") else None,
        flop_constants={size: asdict(c) for size, c in ctx["flops"].items()},
        models={size: str(path) for size, path in ctx["models"].items()},
        bench_command=shlex.join([sys.executable, *sys.argv]),
    )
    table = markdown(results, meta)
    document = {
        "meta": meta,
        "runs": [asdict(r) for r in results],
        "comparisons": comparisons(results),
        "targets": TARGETS,
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, default=str) + "\n")
    print(corpus_line(ctx["summary"], ctx["samples_per_pack"], args.max_length))
    print(table)
    if ctx.get("lf_best"):
        print(f"\nLLaMA-Factory at its best: {ctx['lf_best'].why}")
    if ctx.get("lf_info", {}).get("import"):
        print(f"\nLLaMA-Factory does not import:\n{ctx['lf_info']['import']}")
    print("\nCommands:")
    for r in results:
        print(f"  {r.name}: {r.command}")
    for r in results:
        if r.status != "ok":
            print(f"\n{r.name}: {r.status}")
    print(f"\nresults: {args.out}; total {meta['total_s']:.0f}s")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    launched = time.monotonic()
    (args.work_dir / "logs").mkdir(parents=True, exist_ok=True)
    runs = select_runs(args)
    phases: dict[str, float] = {}
    ctx = prepare(args, sorted({r.size for r in runs}), phases)
    ctx["deadline"] = launched + args.deadline_s if args.deadline_s else None
    if any(r.tool == "lf" for r in runs):
        prepare_llamafactory(args, ctx, phases)
    settings = settings_from(args)
    results = [execute(spec, ctx, settings, args) for spec in runs]
    if args.merge and args.out.is_file():
        results = merged(results, args.out)
    meta = {"settings": asdict(settings), "phases": phases, "total_s": time.monotonic() - launched}
    report(args, ctx, results, meta)
    return 0 if all(r.status == "ok" or r.status.startswith("skipped") for r in results) else 1


def corpus_line(summary: CorpusSummary, spp: float, budget: int) -> str:
    stats = summary.tokens
    parts = [f"{m} {int(v['n'])} ({v['min']:.0f}/{v['mean']:.0f}/{v['max']:.0f})" for m, v in stats.items()]
    return (
        f"Synthetic corpus {summary.root}: {summary.samples} samples; tokens min/mean/max by modality: "
        f"{', '.join(parts)}; {spp:.1f} samples per {budget}-token pack.\n"
    )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hidden = sys.argv[1] if len(sys.argv) > 1 else ""
    if hidden != "_lf-worker" and str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))  # mmaff from this checkout, installed or not (the GPU machines: not)
    if hidden == "_ours-worker":
        ours_worker(sys.argv[2:])
    elif hidden == "_lf-worker":
        lf_worker(sys.argv[2])
    elif hidden == "_build-model":
        write_real_size_model(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(main())
