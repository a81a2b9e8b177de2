"""Real-token fraction of what the model processes, on a built corpus with the real Qwen2.5 tokenizer:
padded batches (the usual collator) vs padding-free rows vs best-fit packing.

    .venv/bin/python benchmarks/bench_packing.py [--corpus data/mmaffin] [--batch 8] [--budgets 1024 4096]

Every micro-batch goes through the training collator (media decoded, chat template, per-sample mRoPE), so the
counts are what training feeds the model: real tokens / all tokens of the input rows (pad tokens and the masked
dummy image/video that keeps ZeRO-3 ranks in step are the non-real part). For packing it also prints the fill of
a fixed-width row (real tokens / budget), i.e. the fraction if rows were padded to the budget for static shapes.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from transformers import AutoConfig, AutoProcessor

from mmaff.encode.corpus import open_corpus
from mmaff.encode.samples import SampleEncoder
from mmaff.testing.tiny_model import build_tiny_qwen25vl
from mmaff.train.args import DataArguments
from mmaff.train.collator import MixedModalCollator
from mmaff.train.data import load_split, pack


def measure(collator: MixedModalCollator, table, rows: list[list[int]]) -> tuple[int, int]:
    real = processed = 0
    for row in rows:
        stats = collator([{"records": [table[i] for i in row]}])["token_stats"]
        real, processed = real + int(stats[0]), processed + int(stats[1])
    return real, processed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="data/mmaffin")
    parser.add_argument("--model", default=None, help="processor folder (default: the tiny model, real vocabulary)")
    parser.add_argument("--batch", type=int, default=8, help="samples per micro-batch without packing")
    parser.add_argument("--budgets", type=int, nargs="+", default=[1024, 4096], help="packing token budgets")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model_dir = Path(args.model) if args.model else build_tiny_qwen25vl(Path(tempfile.gettempdir()) / "mmaff-tiny")
    corpus = open_corpus(args.corpus)
    encoder = SampleEncoder(AutoProcessor.from_pretrained(model_dir), corpus.root, corpus.budget)
    config = AutoConfig.from_pretrained(model_dir)
    table = load_split(corpus, "train", DataArguments(corpus=args.corpus), weighted=True)
    lengths = [encoder.length(r) for r in table]
    order = list(range(len(table)))
    random.Random(args.seed).shuffle(order)
    batches = [order[i : i + args.batch] for i in range(0, len(order), args.batch)]
    print(
        f"corpus {args.corpus}: {len(table)} training samples, {sum(lengths)} tokens "
        f"(mean {sum(lengths) / len(lengths):.0f}, max {max(lengths)})"
    )
    print(f"{'layout':46} {'rows':>6} {'real':>8} {'processed':>10} {'real fraction':>14} {'row fill':>9}")

    def report(name: str, rows: list[list[int]], padding_free: bool, dummy: bool, budget: int | None = None) -> None:
        started = time.perf_counter()
        collator = MixedModalCollator(encoder, config, padding_free=padding_free, vision_dummy=dummy)
        real, processed = measure(collator, table, rows)
        fill = f"{real / (len(rows) * budget):.3f}" if budget else "-"
        print(
            f"{name:46} {len(rows):>6} {real:>8} {processed:>10} {real / processed:>14.3f} {fill:>9}"
            f"   ({time.perf_counter() - started:.1f} s)"
        )

    for dummy in (False, True):
        tag = " + dummy media" if dummy else ""
        report(f"padded, {args.batch}/batch{tag}", batches, padding_free=False, dummy=dummy)
        report(f"padding-free, {args.batch}/row{tag}", batches, padding_free=True, dummy=dummy)
        for budget in args.budgets:
            packs = pack(lengths, budget)
            report(f"packed (BFD) to {budget} tokens{tag}", packs, padding_free=True, dummy=dummy, budget=budget)


if __name__ == "__main__":
    main()
