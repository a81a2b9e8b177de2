"""`make train-smoke` then `make eval-smoke`, as a user runs them: eval-smoke evaluates the model train-smoke merged,
compares it with the untrained tiny model, runs the chained two-step evaluation and MASIVE's beams.

Everything goes under tmp_path through the Makefile's variables (OUT, TINY_MODEL, SMOKE_OUT, EVAL_SMOKE_OUT). `-o
<venv>/bin/.installed`: the tests already run inside the installed environment, so `make setup` is not redone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)


def _make(*args: str, dry_run: bool = False) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    command = ["make", "--no-print-directory", f"VENV={VENV}", "-o", f"{VENV}/bin/.installed", *args]
    done = subprocess.run(
        [*command, *(["-n"] if dry_run else [])], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-6000:]
    return log


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _label_scores(folder: Path) -> dict[str, dict]:
    rows = (json.loads(line) for line in (folder / "label_scores.jsonl").read_text().splitlines())
    return {row["id"]: row["prediction"] for row in rows}


@pytest.mark.slow
def test_eval_smoke_evaluates_and_compares_the_model_train_smoke_trained(tiny_model_dir, sample_corpus, tmp_path):
    smoke, evaluated = tmp_path / "smoke", tmp_path / "eval-smoke"
    paths = [f"OUT={sample_corpus}", f"TINY_MODEL={tiny_model_dir}", f"SMOKE_OUT={smoke}"]
    trained = smoke / "merged"
    assert f"model: {trained}" in _make("train-smoke", *paths, "SMOKE_ARGS=--max_steps 2 --save_strategy no")

    log = _make("eval-smoke", *paths, f"EVAL_SMOKE_OUT={evaluated}")
    assert f"eval-smoke: evaluating {trained} (smoke-trained; baseline: the untrained {tiny_model_dir})" in log
    metrics, baseline = _metrics(evaluated), _metrics(evaluated / "tiny-untrained")
    assert metrics["run"]["model"] == str(trained) and set(metrics["rows"]["models"]) == {str(trained)}
    assert baseline["run"]["model"] == str(tiny_model_dir)
    assert metrics["coverage"]["complete"] and baseline["coverage"]["complete"]
    trained_scores, tiny_scores = _label_scores(evaluated), _label_scores(evaluated / "tiny-untrained")
    assert trained_scores.keys() == tiny_scores.keys() and trained_scores != tiny_scores  # two different models

    comparison = (evaluated / "compare" / "comparison.md").read_text()
    assert "| task (primary) | tiny-untrained | smoke-trained |" in comparison
    assert (evaluated / "compare" / "comparison.png").stat().st_size > 0
    masive = metrics["tasks"]["masive/ASI"]["corrected"]["pooled"]
    assert masive["beams"] == 5 and {"acc@3", "acc@5", "acc@3_normalised", "acc@5_normalised"} <= set(masive)

    chained = (evaluated / "chained" / "comparison.md").read_text()
    assert chained.startswith("| task | oracle (gold given) | chained | single |")
    assert "| semeval2018/V-reg>E-c |" in chained and "| semeval2018/E-c>V-reg |" in chained
    assert _metrics(evaluated / "chained")["run"]["model"] == str(trained)


def test_eval_smoke_without_a_trained_model_evaluates_the_tiny_model_and_says_why_no_comparison(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "manifest.json").write_text("{}")
    missing = tmp_path / "smoke" / "merged"
    out = tmp_path / "eval-smoke"
    args = [f"OUT={corpus}", "TINY_MODEL=tiny", f"SMOKE_MODEL={missing}", f"EVAL_SMOKE_OUT={out}"]
    plan = _make("eval-smoke", *args, dry_run=True)
    assert f"eval-smoke: evaluating tiny (untrained: no smoke-trained model at {missing}" in plan
    assert f"--model tiny --corpus {corpus} --split test" in plan and "--model " + str(missing) not in plan
    assert f"comparison with the untrained tiny model skipped: no smoke-trained model at {missing}" in plan
    assert "mmaff.report --compare" not in plan and f"--report-out {out}/chained/comparison.md" in plan

    (missing).mkdir(parents=True)
    (missing / "config.json").write_text("{}")
    plan = _make("eval-smoke", *args, dry_run=True)
    assert f"--model {missing} --corpus {corpus}" in plan and f"--out {out}/tiny-untrained/predictions.jsonl" in plan
    assert "--names tiny-untrained,smoke-trained" in plan
