"""Synthetic corpus filters (`mmaff.synth.filters`): cost per 10k samples of each per-sample check (language id,
script, length, leakage) and of exact + near-duplicate detection (MinHash / LSH), on a realistic mix.

The samples are the filter tests' hand-written sentences of all 23 languages (tests/synth/test_filters.py), each
made distinct by a numbered suffix and varied word order, so the mix has the real scripts and lengths and the
duplicate pass does real LSH work (about 1 in 5 samples is a near duplicate of an earlier one). One-time costs
(detector model load) are reported apart. Median of --repeats runs.

    .venv/bin/python benchmarks/bench_synth_filters.py [--samples 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmaff.synth.filters import (  # noqa: E402
    Candidate,
    FilterRules,
    detect_language,
    near_duplicates,
    per_sample_filters,
)
from tests.synth.test_filters import SENTENCES  # noqa: E402


def make_samples(count: int, seed: int = 0) -> list[Candidate]:
    rng = random.Random(seed)
    languages = sorted(SENTENCES)
    samples = []
    for i in range(count):
        language = languages[i % len(languages)]
        text = rng.choice(SENTENCES[language])
        if rng.random() >= 0.2:  # distinct: a numbered tail and a rotated word order
            words = text.split()
            cut = rng.randrange(len(words)) if len(words) > 1 else 0
            text = " ".join(words[cut:] + words[:cut]) + f" #{i} {rng.randrange(10**6)}"
        samples.append(Candidate(id=f"{language}-{i:06d}", language=language, text=text, labels=("joy",)))
    return samples


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    samples, rules = make_samples(args.samples), FilterRules()
    load = timed(lambda: detect_language("warm up"))
    print(f"machine: nproc={os.cpu_count()}; {args.samples} samples, 23 languages; median of {args.repeats} runs")
    print(f"language detector load (once per process): {load * 1e3:.0f} ms")
    per_10k = 10_000 / args.samples
    for name, check in per_sample_filters():
        runs = [timed(lambda check=check: [check(s, rules) for s in samples]) for _ in range(args.repeats)]
        print(f"{name:10s} {statistics.median(runs) * per_10k:7.2f} s / 10k samples")
    dropped: dict[str, str] = {}

    def dedup() -> None:
        dropped.update(near_duplicates(samples, rules))

    runs = [timed(dedup) for _ in range(args.repeats)]
    exact = sum(reason.startswith("exact") for reason in dropped.values())
    print(
        f"{'dedup':10s} {statistics.median(runs) * per_10k:7.2f} s / 10k samples "
        f"(num_perm {rules.dedup_num_perm}, threshold {rules.dedup_threshold}: {exact} exact, "
        f"{len(dropped) - exact} near duplicates dropped)"
    )


if __name__ == "__main__":
    main()
