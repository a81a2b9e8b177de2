"""Batched vs batch-1 greedy generation with the HF backend: samples/s, and the outputs must be identical.

End to end as `mmaff.eval.generate.HFGenerator.predict` runs it (media loading, left-padded batches grouped by target
type, per-target-type max_new_tokens), on the tiny Qwen2.5-VL over the built corpus's test split: text records
only, then all records (text + image + video). The tiny model's own random weights decode every prompt to the same
newlines, so by default its matrices are redrawn at std 0.1 (``--weight-std``) to make outputs input-dependent and
the identity check meaningful; that changes no shape, hence no cost. A random model never emits EOS, so every
record decodes its full max_new_tokens in both modes.

On CPU the tiny model is bound by its 152k-row output projection (read once per decoding step at batch 1, shared
by the rows of a batch), so the speed-up grows with the rows per batch; the bundled split is small and split into
7 target types (e.g. 2 text `joint` records decode 64 steps on their own), which caps it. ``--repeat N`` copies
every record N times (ids suffixed) to show the speed-up on a split of realistic size.

    .venv/bin/python benchmarks/bench_generate.py --model outputs/tiny-qwen2.5-vl --corpus data/mmaffin
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from mmaff.encode.corpus import open_corpus, read_records
from mmaff.eval.generate import Backend, HFGenerator
from mmaff.testing.tiny_model import redraw_weights


def timed(backend: Backend, records: list[dict[str, Any]]) -> tuple[float, dict[str, Any]]:
    """Seconds to run `records` through a generation backend (or a label scorer), and its outputs by id."""
    start = time.perf_counter()
    outputs = {p.id: p.text for batch in backend.predict(records) for p in batch}
    return time.perf_counter() - start, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("outputs/tiny-qwen2.5-vl"))
    parser.add_argument("--corpus", default="data/mmaffin")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--weight-std", type=float, default=0.1, help="0: the model as built")
    parser.add_argument("--decoder", default="pyav")
    parser.add_argument("--repeat", type=int, default=1, help="copies of every record (a larger split)")
    parser.add_argument("--sets", default="text,mixed", help="comma list of: text, mixed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    torch.manual_seed(0)

    corpus = open_corpus(args.corpus)
    records = [
        {**r, "id": f"{r['id']}#{k}" if args.repeat > 1 else r["id"]}
        for k in range(args.repeat)
        for r in read_records(corpus.root, args.split)
    ]
    sets = {"text": [r for r in records if r["modality"] == "text"], "mixed": records}
    sets = {name: sets[name] for name in args.sets.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        model = redraw_weights(args.model, Path(tmp) / "model", args.weight_std) if args.weight_std else args.model
        make = {
            bs: HFGenerator(model, corpus.root, corpus.budget, batch_size=bs, decoder=args.decoder, device="cpu")
            for bs in (1, args.batch_size)
        }
        for generator in make.values():  # warm-up: allocator, first media decode, kernels
            timed(generator, records[:2] + [r for r in records if r["modality"] != "text"][:2])
        rows = []
        for name, chosen in sets.items():
            one_s, one = timed(make[1], chosen)
            many_s, many = timed(make[args.batch_size], chosen)
            same = one == many
            distinct = len(set(one.values()))
            rows.append((name, len(chosen), one_s, many_s, same, distinct))

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"repeat {args.repeat}, weight std {args.weight_std}, model {args.model}"
    )
    print(
        f"| set | records | batch 1 (samples/s) | batch {args.batch_size} (samples/s) | speed-up | identical | distinct |"
    )
    print("|---|---:|---:|---:|---:|---|---:|")
    for name, n, one_s, many_s, same, distinct in rows:
        print(f"| {name} | {n} | {n / one_s:.2f} | {n / many_s:.2f} | {one_s / many_s:.1f}x | {same} | {distinct} |")
    if not all(row[4] for row in rows):
        sys.exit("batched outputs differ from batch-1 outputs")


if __name__ == "__main__":
    main()
