"""Text-build throughput and peak memory on generated inputs in four official raw layouts.

    python benchmarks/bench_build.py [--rows 100000 1000000] [--workers 1 2] [--workdir /tmp/mmaff-bench]

For each size it writes a raw root with the rows split evenly over four text datasets in their real
layouts (GoEmotions headerless TSV, XED projection TSVs in 5 languages, online_shopping CSV with a BOM,
synthetic_emotions JSONL in 5 languages; unique texts, 1-3 labels each) and runs the real CLI
(`python -m mmaff.data.build --no-cache --workers N`) in a fresh process, `--repeat` times. It prints the median
and best rows/s (wall clock, process start to exit) and the build's peak RSS (largest single process), and
the RSS ratio largest/smallest size: the build streams, so that ratio should stay near 1. A single-dataset
run (GoEmotions only) is printed too.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORDS = (
    "the a this that movie game post comment really so very not quite pretty absolutely love hate enjoy "
    "fear hope miss think believe wonder thanks sorry great awful funny sad happy angry weird nice boring"
).split()
ZH = "我们今天真的很开心这个东西质量不错但是物流太慢了下次还会再来买推荐给大家"
LANGS = ("de", "es", "fr", "it", "pl")
SYNTHETIC_LABELS = (
    "joy",
    "sadness",
    "anger",
    "fear",
    "surprise",
    "disgust",
    "love",
    "gratitude",
    "frustration",
    "contempt",
)
# peak RSS of the build process tree: the wrapper waits for the build and reports RUSAGE_CHILDREN
_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)"
)


def _sentence(rng: random.Random, i: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30))) + f" #{i}"


def write_goemotions(raw: Path, rows: int, rng: random.Random) -> None:
    folder = raw / "goemotions"
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "data_builders/sample_raw/goemotions/emotions.txt", folder)
    bounds = {
        "train.tsv": (0, int(rows * 0.8)),
        "dev.tsv": (int(rows * 0.8), int(rows * 0.9)),
        "test.tsv": (int(rows * 0.9), rows),
    }
    for name, (start, stop) in bounds.items():
        with open(folder / name, "w", encoding="utf-8") as f:
            for i in range(start, stop):
                labels = ",".join(str(x) for x in sorted(rng.sample(range(28), rng.randint(1, 3))))
                f.write(f"{_sentence(rng, i)}\t{labels}\tc{i:08x}\n")


def write_xed(raw: Path, rows: int, rng: random.Random) -> None:
    folder = raw / "xed" / "Projections"
    folder.mkdir(parents=True)
    for k, lang in enumerate(LANGS):
        with open(folder / f"{lang}-projections.tsv", "w", encoding="utf-8", newline="") as f:
            for i in range(k, rows, len(LANGS)):
                labels = ", ".join(str(x) for x in sorted(rng.sample(range(1, 9), rng.randint(1, 3))))
                f.write(f"{_sentence(rng, i)}\t{labels}\r\n")


def write_online_shopping(raw: Path, rows: int, rng: random.Random) -> None:
    folder = raw / "online_shopping_10_cats"
    folder.mkdir(parents=True)
    with open(folder / "online_shopping_10_cats.csv", "w", encoding="utf-8") as f:
        f.write("cat,label,review\n")
        for i in range(rows):
            text = "".join(rng.choice(ZH) for _ in range(rng.randint(10, 60)))
            bom = "\ufeff" if i == 0 else ""  # the real file has a BOM inside the first field
            f.write(f"{rng.choice(['书籍', '手机', '酒店'])},{rng.randint(0, 1)},{bom}{text}{i}\n")


def write_synthetic(raw: Path, rows: int, rng: random.Random) -> None:
    folder = raw / "synthetic_emotions"
    folder.mkdir(parents=True)
    with open(folder / "part-0.jsonl", "w", encoding="utf-8") as f:
        for i in range(rows):
            labels = rng.sample(SYNTHETIC_LABELS, rng.randint(0, 2))
            row = {"id": f"s{i}", "text": _sentence(rng, i), "language": LANGS[i % len(LANGS)], "labels": labels}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


WRITERS = {
    "goemotions": write_goemotions,
    "xed": write_xed,
    "online_shopping": write_online_shopping,
    "synthetic_emotions": write_synthetic,
}


def run(raw: Path, out: Path, mixture: Path, workers: int) -> tuple[float, int]:
    command = [
        sys.executable,
        "-m",
        "mmaff.data.build",
        "--raw-root",
        str(raw),
        "--out",
        str(out),
        "--mixture",
        str(mixture),
        "--no-cache",
        "--workers",
        str(workers),
    ]
    start = time.perf_counter()
    rss = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *command], check=True, cwd=ROOT, capture_output=True, text=True
    )
    return time.perf_counter() - start, int(rss.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration; the median is printed")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mmaff-bench"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    print(
        f"{'input':<18} {'rows':>9} {'workers':>7} {'median s':>9} {'rows/s':>8} {'best rows/s':>11} {'peak RSS MiB':>12}"
    )
    peaks: dict[tuple[str, int], list[int]] = {}
    for rows in args.rows:
        for name, datasets in (("4 text datasets", list(WRITERS)), ("goemotions only", ["goemotions"])):
            raw = args.workdir / "raw"
            shutil.rmtree(raw, ignore_errors=True)
            rng = random.Random(rows)
            for dataset in datasets:
                WRITERS[dataset](raw, rows // len(datasets), rng)
            mixture = args.workdir / "mixture.yaml"
            mixture.write_text(
                "name: bench\ndatasets:\n" + "".join(f"  {d}: {{}}\n" for d in datasets), encoding="utf-8"
            )
            for workers in args.workers:
                runs = []
                for _ in range(args.repeat):
                    runs.append(run(raw, args.workdir / "out", mixture, workers))
                    shutil.rmtree(args.workdir / "out")
                    shutil.rmtree(args.workdir / ".out.stage", ignore_errors=True)
                elapsed, best = statistics.median(t for t, _ in runs), min(t for t, _ in runs)
                rss = max(r for _, r in runs)
                peaks.setdefault((name, workers), []).append(rss)
                print(
                    f"{name:<18} {rows:>9} {workers:>7} {elapsed:>9.1f} {rows / elapsed:>8.0f} {rows / best:>11.0f} {rss:>12}",
                    flush=True,
                )
    if len(args.rows) > 1:
        for (name, workers), values in peaks.items():
            print(
                f"peak RSS ratio {args.rows[-1]:,} / {args.rows[0]:,} rows, {name}, {workers} workers: {values[-1] / values[0]:.2f}"
            )


if __name__ == "__main__":
    main()
