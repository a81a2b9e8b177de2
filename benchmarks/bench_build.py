"""Text-build throughput and peak memory on generated inputs (GoEmotions layout: headerless TSV).

    python benchmarks/bench_build.py [--rows 100000 1000000] [--workdir /tmp/mmaff-bench]

For each size it writes train/dev/test.tsv (80/10/10, unique texts, 1-3 labels each), runs the real CLI
(`python -m mmaff.build --no-cache`) in a subprocess, and prints rows/s and that process's peak RSS, plus
the RSS ratio between the largest and smallest size (streaming means it should stay near 1).
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("the a this that movie game post comment really so very not quite pretty absolutely love hate enjoy "
         "fear hope miss think believe wonder thanks sorry great awful funny sad happy angry weird nice boring").split()


def generate(raw: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    names = (ROOT / "data_builders/sample_raw/goemotions/emotions.txt").read_text(encoding="utf-8")
    (raw / "goemotions").mkdir(parents=True, exist_ok=True)
    (raw / "goemotions/emotions.txt").write_text(names, encoding="utf-8")
    bounds = {"train.tsv": (0, int(rows * 0.8)), "dev.tsv": (int(rows * 0.8), int(rows * 0.9)), "test.tsv": (int(rows * 0.9), rows)}
    for name, (start, stop) in bounds.items():
        with open(raw / "goemotions" / name, "w", encoding="utf-8") as f:
            for i in range(start, stop):
                words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
                labels = ",".join(str(x) for x in sorted(rng.sample(range(28), rng.randint(1, 3))))
                f.write(f"{words} #{i}\t{labels}\tc{i:08x}\n")


def run(raw: Path, out: Path, mixture: Path) -> tuple[float, int]:
    command = [sys.executable, "-m", "mmaff.build", "--raw-root", str(raw), "--out", str(out),
               "--mixture", str(mixture), "--no-cache", "--workers", "1"]
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    return elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mmaff-bench"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    mixture = args.workdir / "mixture.yaml"
    mixture.write_text("name: bench\nseed: 1\ndatasets:\n  goemotions: {}\n", encoding="utf-8")
    results = []
    for rows in args.rows:
        raw = args.workdir / f"raw{rows}"
        generate(raw, rows)
        elapsed, rss = run(raw, args.workdir / f"out{rows}", mixture)
        results.append((rows, elapsed, rss))
        print(f"{rows:>9} rows  {elapsed:7.1f} s  {rows / elapsed:9.0f} rows/s  peak RSS {rss} MiB", flush=True)
        shutil.rmtree(raw)
        shutil.rmtree(args.workdir / f"out{rows}")
    if len(results) > 1:
        print(f"peak RSS ratio {results[-1][0]:,} / {results[0][0]:,} rows: {results[-1][2] / results[0][2]:.2f}")


if __name__ == "__main__":
    main()
