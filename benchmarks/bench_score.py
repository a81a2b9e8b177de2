"""Scoring time for a large predictions file: `mmaff.eval.score.score` end to end, its stages, and peak RSS.

    .venv/bin/python benchmarks/bench_score.py [--items 216000] [--repeat 3] [--cores 0,1] [--workdir DIR]

Builds a synthetic corpus of `--items` test records by replicating the test records of the bundled built corpus
(`data/mmaffin`) with fresh ids (`<id>#<k>`), round-robin over the records, so the dataset / subtask / language mix
stays that of the bundled split; its train split and manifest.json are copied as they are (the scorer reads the
train means). Each item gets one prediction, seeded: 70% the gold answer text (the record's last assistant
message), 20% another valid answer of the same task (the answer of a random train or test record of that
dataset/subtask), 5% a lenient rewrite of the gold answer (bare label names, "The score is x", ...), 5% garbage
(refusals, empty strings, free text with numbers).

Then, in a fresh process pinned to `--cores` (default 0,1: the CI machine's 2 cores; `all` for no pinning), it runs
`score(predictions, corpus, load_tasks())` `--repeat` times and prints the median and best wall time, items/s, the
median time of each stage (the stage functions of `mmaff.eval.score` are wrapped with timers; "other" is the rest:
grouping rows by task, sorting, the report), and the peak RSS of that process. It also times the CLI
(`python -m mmaff.eval.score ...`, imports and writing metrics.json included) once per repeat in fresh processes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
GARBAGE = (
    "I cannot tell.",
    "",
    "As an AI language model, I am unable to determine the emotion of this content.",
    "Hmm, hard to say: maybe 7 out of 10, or perhaps 3?",
    "The text is about a movie and a game; nothing more.",
    "¯\\_(ツ)_/¯",
    "neutral and positive and negative",
    "0.5 1.5 2.5",
)
STAGES = (
    ("read_replies", "read predictions"),
    ("corpus_items", "read corpus items"),
    ("join", "join (coverage)"),
    ("parse_all", "parse replies"),
    ("train_means", "train means"),
    ("score_corrected", "corrected metrics"),
    ("score_paper", "paper_compat"),
)
# peak RSS of the CLI process: the wrapper waits for it and reports RUSAGE_CHILDREN
_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)"
)


def _records(split_dir: Path) -> list[dict[str, Any]]:
    return [
        orjson.loads(line) for path in sorted(split_dir.glob("*.jsonl")) for line in path.read_bytes().splitlines()
    ]


def _answer(record: dict[str, Any]) -> str:
    return record["messages"][-1]["content"][0]["text"]


def _number(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)


def lenient(record: dict[str, Any], rng: random.Random) -> str:
    """The gold answer in a looser shape than the template's (what a chatty model writes)."""
    gold, kind = record["gold"], record["target_type"]
    if kind == "single":
        return rng.choice((f"{gold}", f"The emotion is {gold}.", f"I think it is {gold}"))
    if kind == "multi":
        return " and ".join(gold) if gold else "none of them, it is neutral"
    if kind == "real":
        return rng.choice((f"The score is {_number(gold)}", f"intensity: {_number(gold)} (fairly sure)"))
    if kind == "ordinal":
        return f"I would rate it {gold}."
    if kind == "vad":
        return "; ".join(f"{dim} = {_number(gold[dim])}" for dim in record["label_space"]["dims"])
    if kind == "open":
        return "\n".join(f'"{term}"' for term in gold)
    return _answer(record).lower() + "\n"  # joint: lower-cased section titles


def make_inputs(workdir: Path, n: int, seed: int) -> tuple[Path, Path, dict[str, int]]:
    """Write `<workdir>/corpus` (n test items, train split and manifest copied) and `<workdir>/predictions.jsonl`."""
    source = ROOT / "data" / "mmaffin"
    corpus = workdir / "corpus"
    if corpus.exists():
        shutil.rmtree(corpus)
    (corpus / "test").mkdir(parents=True)
    shutil.copytree(source / "train", corpus / "train")
    shutil.copy(source / "manifest.json", corpus / "manifest.json")
    test = _records(source / "test")
    train = _records(source / "train")
    others: dict[tuple[str, str], list[str]] = defaultdict(list)
    for record in test + train:
        others[(record["dataset"], record["subtask"])].append(_answer(record))
    rng = random.Random(seed)
    mix = {"gold": 0, "other": 0, "lenient": 0, "garbage": 0}
    files: dict[str, Any] = {}
    with open(workdir / "predictions.jsonl", "wb") as predictions:
        for i in range(n):
            record = test[i % len(test)]
            item_id = f"{record['id']}#{i // len(test)}"
            dataset = record["dataset"]
            if dataset not in files:
                files[dataset] = open(corpus / "test" / f"{dataset}.jsonl", "wb")  # noqa: SIM115 - closed below
            files[dataset].write(orjson.dumps({**record, "id": item_id}) + b"\n")
            draw = rng.random()
            if draw < 0.70:
                kind, text = "gold", _answer(record)
            elif draw < 0.90:
                kind, text = "other", rng.choice(others[(dataset, record["subtask"])])
            elif draw < 0.95:
                kind, text = "lenient", lenient(record, rng)
            else:
                kind, text = "garbage", rng.choice(GARBAGE)
            mix[kind] += 1
            predictions.write(orjson.dumps({"id": item_id, "prediction": text, "model": "bench"}) + b"\n")
    for f in files.values():
        f.close()
    return corpus, workdir / "predictions.jsonl", mix


def run_child(predictions: str, corpus: str, repeat: int, profile: str | None) -> None:
    """In a fresh process: score() `repeat` times with per-stage timers; prints one JSON line."""
    import resource

    start = time.perf_counter()
    import mmaff.eval.score as score_module
    from mmaff.eval.tasks import load_tasks

    tasks = load_tasks()
    import_s = time.perf_counter() - start
    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0

        return wrapper

    for name, _ in STAGES:
        setattr(score_module, name, timed(name, getattr(score_module, name)))
    runs = []
    for _ in range(repeat):
        spent.clear()
        t0 = time.perf_counter()
        report = score_module.score(predictions, corpus, tasks)
        total = time.perf_counter() - t0
        report = report[0] if isinstance(report, tuple) else report  # (metrics.json content, scored rows)
        runs.append({"total": total, **spent, "other": total - sum(spent.values())})
        statuses: dict[str, int] = defaultdict(int)
        for counts in report["parse_status"].values():
            for status in ("strict", "lenient", "failed"):
                statuses[status] += counts.get(status, 0)
        summary = {"tasks": len(report["tasks"]), "complete": report["coverage"]["complete"]}
        del report  # not alive during the next run
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before any profiling
    if profile:
        import cProfile

        cProfile.runctx("score_module.score(predictions, corpus, tasks)", globals(), locals(), profile)
    print(
        json.dumps(
            {
                "runs": runs,
                "import_s": import_s,
                **summary,
                "statuses": statuses,
                "peak_rss_mib": peak_rss_mib,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=216_000, help="test items (= predictions)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores", default="0,1", help="CPU ids to pin the scoring processes to, or 'all'")
    parser.add_argument("--workdir", type=Path, help="keep the generated corpus and predictions here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-cli", action="store_true", help="skip timing `python -m mmaff.eval.score`")
    parser.add_argument("--profile", help="also write a cProfile of one score() run to this file")
    parser.add_argument("--child", nargs=2, metavar=("PREDICTIONS", "CORPUS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(*args.child, args.repeat, args.profile)
        return
    if args.cores != "all":
        os.sched_setaffinity(0, {int(c) for c in args.cores.split(",")})  # inherited by the child processes
    cores = sorted(os.sched_getaffinity(0))

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        corpus, predictions, mix = make_inputs(workdir, args.items, args.seed)
        make_s = time.perf_counter() - t0
        sizes = {
            "corpus test split": sum(p.stat().st_size for p in (corpus / "test").glob("*.jsonl")),
            "predictions": predictions.stat().st_size,
        }
        child = [sys.executable, __file__, "--child", str(predictions), str(corpus), "--repeat", str(args.repeat)]
        if args.profile:
            child += ["--profile", args.profile]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
        done = subprocess.run(child, check=True, capture_output=True, text=True, cwd=ROOT, env=env)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        cli, cli_error = [], None
        if not args.no_cli:
            command = [
                sys.executable,
                "-m",
                "mmaff.eval.score",
                "--predictions",
                str(predictions),
                "--corpus",
                str(corpus),
            ]
            command += ["--out", str(workdir / "scores")]
            usage = subprocess.run([*command[:3], "--help"], capture_output=True, text=True, cwd=ROOT, env=env).stdout
            command += ["--no-plots"] if "--no-plots" in usage else []  # time the scoring, not the figures
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                rss = subprocess.run(
                    [sys.executable, "-c", _WRAPPER, *command], capture_output=True, text=True, cwd=ROOT, env=env
                )
                if rss.returncode:
                    cli_error = (rss.stderr.strip().splitlines() or ["?"])[-1]
                    break
                cli.append((time.perf_counter() - t0, int(rss.stdout.strip())))

    runs = result["runs"]
    totals = [r["total"] for r in runs]
    median, best = statistics.median(totals), min(totals)
    n = args.items
    print(
        f"python {sys.version.split()[0]}, cores {','.join(map(str, cores))} ({len(cores)}), {n:,} items, "
        f"repeat {args.repeat}, seed {args.seed}"
    )
    print(f"inputs: written in {make_s:.1f} s; " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in sizes.items()))
    print("prediction mix: " + ", ".join(f"{k} {v / n:.0%}" for k, v in mix.items()))
    statuses = result["statuses"]
    print(
        "parse status: " + ", ".join(f"{k} {statuses[k] / n:.1%}" for k in ("strict", "lenient", "failed")) + f"; "
        f"{result['tasks']} tasks scored, coverage complete: {result['complete']}"
    )
    print()
    print("| what | median s | best s | items/s (median) | share |")
    print("|---|---:|---:|---:|---:|")
    print(f"| **score() end to end** | **{median:.2f}** | {best:.2f} | {n / median:,.0f} | 100% |")
    for key, label in (*STAGES, ("other", "other (group by task, sort, report)")):
        values = [r.get(key, 0.0) for r in runs]
        m = statistics.median(values)
        print(f"| {label} | {m:.2f} | {min(values):.2f} | {n / m if m else float('inf'):,.0f} | {m / median:.0%} |")
    if cli:
        walls = [wall for wall, _ in cli]
        m = statistics.median(walls)
        print(f"| CLI `python -m mmaff.eval.score` (fresh process) | {m:.2f} | {min(walls):.2f} | {n / m:,.0f} | |")
    if cli_error:
        print(f"| CLI `python -m mmaff.eval.score` | failed: {cli_error} | | | |")
    print()
    print(f"peak RSS: score() process {result['peak_rss_mib']:.0f} MiB", end="")
    print(f", CLI process {max(r for _, r in cli)} MiB" if cli else "")
    print(
        "score() runs: " + ", ".join(f"{t:.2f}" for t in totals) + " s (the first one also imports numpy, scipy and "
        f"sklearn lazily); imports + load_tasks before them: {result['import_s']:.2f} s"
    )
    verdict = "met" if median <= 10 else "NOT met"
    print(f"target <= 10 s on 2 cores: {verdict} (median {median:.2f} s on {len(cores)} core(s))")


if __name__ == "__main__":
    main()
