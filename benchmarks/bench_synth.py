"""Kept samples per second of the whole synthetic pipeline (plan, prompts, requests, parse, filters, dedup, judge,
report; plots off) against the loopback server, at several concurrencies.

    .venv/bin/python benchmarks/bench_synth.py --samples 100 --concurrency 1,16,64

Each run starts from an empty output folder (no cache), languages en de ru hi ja ar; the loopback server answers
at once (`--delay` seconds per answer imitates a real server's latency)."""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from mmaff.synth.pipeline import load_recipe, run
from mmaff.testing.synth_server import SynthServer

SMOKE = Path(__file__).resolve().parents[1] / "recipes" / "synth" / "smoke.yaml"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=100, help="samples per language")
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--delay", type=float, default=0.0, help="server seconds per answer")
    args = p.parse_args()
    recipe = load_recipe(SMOKE)
    recipe = dataclasses.replace(recipe, counts=dict.fromkeys(recipe.counts, args.samples))
    print("| concurrency | planned | kept | seconds | kept samples/s |\n|---|---|---|---|---|")
    for concurrency in map(int, args.concurrency.split(",")):
        with tempfile.TemporaryDirectory() as tmp, SynthServer(delay=args.delay) as server:
            start = time.perf_counter()
            report = run(recipe, Path(tmp), base_url=server.url, concurrency=concurrency, plots=False)
            seconds = time.perf_counter() - start
        kept = report["totals"][report["stages"][-1]]
        print(f"| {concurrency} | {report['totals']['requested']} | {kept} | {seconds:.1f} | {kept / seconds:.1f} |")


if __name__ == "__main__":
    main()
