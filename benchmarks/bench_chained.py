"""Chained two-step vs oracle two-step evaluation: samples/s of each over the same items, and the ratio.

Oracle is what `mmaff.generate` does for a two-step record (its prompt shows the gold first step: one generation);
chained is `mmaff.eval.chained.run_chained` (the first step generated, parsed and given to the second: two
generations per item). Both run on the same HF backend (tiny Qwen2.5-VL on CPU by default, the task files'
decoding, batch 8 as in `make eval-smoke`), write their predictions files as the CLIs do, and are timed over the
two-step records of the corpus split, copied ``--repeat`` times (ids suffixed) so that batches fill; the fastest
of ``--trials`` alternating runs of each counts.

A random model's first replies never parse, which would break every chain and skip its second step, hiding its
cost. So each first step is generated in full (its cost counts) and the chain is then handed the first step's gold
answer, as a model that answers in format would give it: every chain asks its second step (checked).

    .venv/bin/python benchmarks/bench_chained.py --model outputs/tiny-qwen2.5-vl --corpus data/mmaffin
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mmaff.encode.corpus import open_corpus, read_records
from mmaff.eval.chained import Chain, build_chains, run_chained
from mmaff.eval.generate import Backend, HFGenerator, Prediction, generate
from mmaff.eval.predictions import PredictionWriter


class InFormatFirstSteps:
    """`backend`, with each first step's reply (generated in full) swapped for its gold answer afterwards."""

    def __init__(self, backend: Backend, first_step_answers: Mapping[str, str]) -> None:
        self.backend, self.answers = backend, first_step_answers
        self.name, self.model_name, self.decoding = backend.name, backend.model_name, backend.decoding

    def predict(self, records: Sequence[dict[str, Any]]) -> Iterator[list[Prediction]]:
        for batch in self.backend.predict(records):
            yield [dataclasses.replace(p, text=self.answers[p.id]) if p.id in self.answers else p for p in batch]


def repeated(records: list[dict[str, Any]], times: int) -> list[dict[str, Any]]:
    """`times` copies of the records, ids suffixed ``#k`` (a chain's first-step id keeps the suffix)."""
    return [{**r, "id": f"{r['id']}#{k}"} for k in range(times) for r in records]


def gold_answer(record: Mapping[str, Any]) -> str:
    return record["messages"][-1]["content"][0]["text"]


def time_oracle(chains: Sequence[Chain], backend: Backend, out: Path) -> float:
    start = time.perf_counter()
    with PredictionWriter(out) as writer:
        generate([c.record for c in chains], backend, writer, progress=False)
    return time.perf_counter() - start


def time_chained(chains: Sequence[Chain], backend: Backend, out: Path) -> float:
    start = time.perf_counter()
    report = run_chained(chains, backend, out)
    seconds = time.perf_counter() - start
    assert report.asked == len(chains) and report.broken == 0, report  # every chain ran both steps
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("outputs/tiny-qwen2.5-vl"))
    parser.add_argument("--corpus", default="data/mmaffin")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=8, help="copies of every two-step item (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=3, help="timed runs of each; the fastest counts (default: 3)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    corpus = open_corpus(args.corpus)
    chains = build_chains(repeated(read_records(corpus.root, args.split), args.repeat))
    hf = HFGenerator(args.model, corpus.root, corpus.budget, batch_size=args.batch_size, device="cpu")
    backend = InFormatFirstSteps(hf, {c.first["id"]: gold_answer(c.first) for c in chains})
    oracle_times, chained_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        time_oracle(chains[: args.batch_size], backend, Path(tmp) / "warm-up.jsonl")  # allocator, kernels
        for trial in range(args.trials):  # alternating, so that a burst of load elsewhere hits both alike
            oracle_times.append(time_oracle(chains, backend, Path(tmp) / f"oracle-{trial}.jsonl"))
            chained_times.append(time_chained(chains, backend, Path(tmp) / f"chained-{trial}.jsonl"))
    oracle_s, chained_s = min(oracle_times), min(chained_times)

    n, firsts = len(chains), len({c.first["id"] for c in chains})
    tasks = sorted({f"{c.record['dataset']}/{c.record['subtask']}" for c in chains})
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads ({os.cpu_count()} CPUs), model {args.model}")
    print(
        f"{n} two-step items ({', '.join(tasks)}; repeat {args.repeat}), batch {args.batch_size}, best of {args.trials}"
    )
    print("| run | generations | seconds | samples/s |")
    print("|---|---:|---:|---:|")
    print(f"| oracle (gold first step) | {n} | {oracle_s:.2f} | {n / oracle_s:.2f} |")
    print(f"| chained (own first step) | {firsts} + {n} | {chained_s:.2f} | {n / chained_s:.2f} |")
    print(f"chained / oracle time: {chained_s / oracle_s:.2f}x")
    print("all trials (s): oracle " + ", ".join(f"{t:.2f}" for t in oracle_times), end="; ")
    print("chained " + ", ".join(f"{t:.2f}" for t in chained_times))


if __name__ == "__main__":
    main()
