"""The synthetic-corpus pipeline end to end against the loopback server (mmaff/testing/synth_server.py): every
planned sample kept or rejected once with a reason, the kept file built by `mmaff build`, two runs byte-identical,
a run killed with SIGKILL resumed without duplicate ids, bad recipes as one-line errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import Built

from mmaff.synth.pipeline import RecipeError, load_recipe, parse_generation, run
from mmaff.testing.synth_server import SynthServer

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "synth" / "smoke.yaml"
OUTPUTS = (
    "synthetic_emotions/smoke.jsonl",
    "rejections.jsonl",
    "generation_report.json",
    "generation_report.md",
    "plots/funnel.png",
    "plots/cooccurrence.png",
)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _run(out: Path, **kwargs) -> dict:
    with SynthServer(**kwargs) as server:
        return run(load_recipe(SMOKE), out, base_url=server.url, concurrency=8)


@pytest.fixture(scope="module")
def first(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "run"
    _run(out)
    return out


def test_every_planned_sample_is_kept_or_rejected_once(first):
    report = json.loads((first / "generation_report.json").read_text())
    kept = [row["id"] for row in _jsonl(first / "synthetic_emotions" / "smoke.jsonl")]
    rejected = _jsonl(first / "rejections.jsonl")
    planned = 6 * 24
    assert len(kept) + len(rejected) == planned == report["totals"]["requested"]
    assert len(set(kept) | {r["id"] for r in rejected}) == planned
    assert all(r["reason"] and r["stage"] in report["stages"] for r in rejected)
    by_stage = Counter(r["stage"] for r in rejected)
    # the loopback table's refusals, malformed, wrong-language, leaking, duplicate answers and the judge all count
    assert {"returned", "parsed", "language", "leakage", "dedup", "judge"} <= set(by_stage), by_stage
    assert report["totals"][report["stages"][-1]] == len(kept) > planned // 3
    for lang, stats in report["per_language"].items():
        funnel = [stats["funnel"][stage] for stage in report["stages"]]
        assert funnel == sorted(funnel, reverse=True) and funnel[0] == 24, lang
    dedup = [r["reason"] for r in rejected if r["stage"] == "dedup"]
    assert any(r.startswith("exact_duplicate of") for r in dedup) and any("near_duplicate" in r for r in dedup)


def test_report_has_cardinality_cooccurrence_judge_cost_and_examples(first):
    report = json.loads((first / "generation_report.json").read_text())
    assert report["cardinality"]["plan"] == {"0": 0.1667, "1": 0.4583, "2": 0.2917, "3": 0.0833}
    assert len(report["cooccurrence"]["kept"]) == len(report["labels"]) == 10
    assert report["judge"]["per_language"]["en"]["judged"] > 0
    assert report["cost"]["tokens_out_per_kept"] > 0
    assert all(report["examples"][lang] for lang in ("en", "de", "ru", "hi", "ja", "ar"))
    meta = _jsonl(first / "synthetic_emotions" / "smoke.jsonl")[0]["meta"]
    assert meta["generate_template"] == "synth/generate@1" and meta["profiles_version"] == 1


def test_kept_file_builds_into_records(first, tmp_path):
    corpus = tmp_path / "corpus"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mmaff.data.build",
            "--raw-root",
            str(first),
            "--datasets",
            "synthetic_emotions",
            "--out",
            str(corpus),
            "--no-cache",
        ],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    kept = {row["id"]: row for row in _jsonl(first / "synthetic_emotions" / "smoke.jsonl")}
    records = Built(corpus).records
    ids = {f"synthetic_emotions/{row['language']}/EC/{key}" for key, row in kept.items()}
    assert ids == {key for key in records if key.startswith("synthetic_emotions/")}


def test_two_seeded_runs_are_byte_identical(first, tmp_path):
    _run(tmp_path / "again")
    for name in OUTPUTS:
        assert (first / name).read_bytes() == (tmp_path / "again" / name).read_bytes(), name


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_without_duplicate_ids(first, tmp_path):
    out = tmp_path / "killed"
    cache = out / "cache" / "generations.jsonl"
    with SynthServer(delay=0.02) as server:
        command = [
            sys.executable,
            "-m",
            "mmaff.synth",
            "--recipe",
            str(SMOKE),
            "--out",
            str(out),
            "--base-url",
            server.url,
            "--concurrency",
            "4",
        ]
        process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while (not cache.exists() or len(cache.read_bytes().splitlines()) < 40) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        answered = len(cache.read_bytes().splitlines())
        assert 40 <= answered < 6 * 24
        before = server.requests
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        asked_again = server.requests - before
    ids = [row["id"] for row in _jsonl(cache)]
    assert len(ids) == len(set(ids)) == 6 * 24
    assert asked_again < 6 * 24 - answered + 120  # the missing generations (+ in flight) and the judge pass only
    for name in OUTPUTS:
        assert (first / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ('{"text": "Hallo', "not JSON"),
        ("I'm sorry, I can't.", "not JSON"),
        ('{"txt": "x"}', "without"),
        ('```json\n{"text": "  "}\n```', "empty"),
        ("", "empty answer"),
    ],
)
def test_unusable_answers_have_a_reason(answer, why):
    text, reason = parse_generation(answer)
    assert text is None and why in reason


def test_fenced_json_answer_is_parsed():
    assert parse_generation('```json\n{"text": "Guten  Morgen"}\n```') == ("Guten Morgen", "")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"colour": 1}, "unknown key 'colour'"),
        ({"languages": ["xx"]}, "languages: ['xx']"),
        ({"plan": {"cardinality": {"5": 1}}}, "cardinality keys"),
        ({"generation": {"structured": "grammar"}}, "structured"),
        ({"filters": {"dedup_treshold": 0.8}}, "dedup_treshold"),
        ({"judge": {"rule": "most"}}, "judge rule"),
    ],
)
def test_bad_recipe_is_one_line_error_naming_the_key(tmp_path, edit, message):
    import yaml

    recipe = {**yaml.safe_load(SMOKE.read_text()), **edit}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(recipe))
    with pytest.raises(RecipeError, match="bad.yaml") as err:
        load_recipe(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    done = subprocess.run(
        [sys.executable, "-m", "mmaff.synth", "--recipe", str(path), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2 and done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1
