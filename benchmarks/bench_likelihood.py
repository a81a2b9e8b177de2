"""Label-likelihood scoring: prefix sharing (one prompt forward + one batched forward of every candidate over
the shared KV cache) vs one full prompt + candidate forward per label; labels/s and the largest score difference.

End to end as `mmaff.eval.likelihood.LabelScorer.predict` runs it (media loading, batches of prompts), on the tiny
Qwen2.5-VL (matrices redrawn at std 0.1 so scores differ between labels; no shape changes, hence no cost) over the
multi-label records of the built corpus's test split (text, image, video). ``--repeat N`` copies every record.

    .venv/bin/python benchmarks/bench_likelihood.py --model outputs/tiny-qwen2.5-vl --corpus data/mmaffin
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from mmaff.encode.corpus import open_corpus, read_records
from mmaff.eval.likelihood import LabelScorer, select_records
from mmaff.testing.tiny_model import redraw_weights

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generate import timed  # noqa: E402 - the same timing of a backend's predict


def timed_method(scorer: LabelScorer, records: list[dict[str, Any]], method: str) -> tuple[float, dict[str, Any]]:
    scorer.method = method
    return timed(scorer, records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("outputs/tiny-qwen2.5-vl"))
    parser.add_argument("--corpus", default="data/mmaffin")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--decoder", default="pyav")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    corpus = open_corpus(args.corpus)
    records = select_records(read_records(corpus.root, args.split), ("multi",))
    records = [{**r, "id": f"{r['id']}#{k}"} for k in range(args.repeat) for r in records]
    labels = sum(len(r["label_space"]["labels"]) for r in records)
    with tempfile.TemporaryDirectory() as tmp:
        model = redraw_weights(args.model, Path(tmp) / "model", 0.1)
        scorer = LabelScorer(
            model,
            corpus.root,
            corpus.budget,
            batch_size=args.batch_size,
            dtype="float32",
            device="cpu",
            decoder=args.decoder,
        )
        timed_method(scorer, records[:2], "prefix")  # warm-up
        full_s, full = timed_method(scorer, records, "full")
        prefix_s, prefix = timed_method(scorer, records, "prefix")
    diff = max(abs(prefix[i][label] - full[i][label]) for i in full for label in full[i])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, model {args.model}")
    print(f"{len(records)} multi-label records, {labels} labels (candidates)")
    print("| method | seconds | labels/s | speed-up |")
    print("|---|---:|---:|---:|")
    print(f"| full sequence per label | {full_s:.2f} | {labels / full_s:.1f} | 1.0x |")
    print(f"| shared prefix (KV cache) | {prefix_s:.2f} | {labels / prefix_s:.1f} | {full_s / prefix_s:.1f}x |")
    print(f"largest |score difference|: {diff:.2e} nats")


if __name__ == "__main__":
    main()
