"""Scoring joins on ids only: shuffled predictions score the same; duplicated, missing or foreign ids are clear
errors (or a coverage report with allow_partial); gold answers parse strictly with their own templates."""

from __future__ import annotations

import json
import random

import pytest

from mmaff.eval.predictions import PredictionFileError
from mmaff.eval.score import ScoringError, corpus_items, join, parse_all, read_replies
from mmaff.eval.tasks import load_tasks

TASKS = load_tasks()


def _write(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_gold_answers_cover_every_task_and_parse_strictly(sample_corpus, gold_answers, tmp_path):
    rows = [{"id": i, "prediction": a} for i, a in gold_answers.items()]
    random.Random(0).shuffle(rows)  # order never matters
    predictions = read_replies(_write(tmp_path / "p.jsonl", rows))
    items = corpus_items(sample_corpus, TASKS)
    assert set(items) == set(gold_answers)
    coverage = join(predictions, items)
    assert coverage.complete and sum(coverage.predicted.values()) == len(items)
    parsed, statuses = parse_all(predictions, items)
    assert all(p.status == "strict" for p in parsed.values())
    assert all(s["failure_rate"] == 0 for s in statuses.values())
    for item_id, item in items.items():
        gold = item.gold
        value = parsed[item_id].value
        if isinstance(gold, list) and item.task != "masive/ASI":
            assert sorted(value) == sorted(gold), item_id
        elif isinstance(gold, float):
            assert value == pytest.approx(gold, abs=1e-3), item_id
    assert {i.emotion for i in items.values() if i.task == "semeval2018/EI-reg"} >= {"anger"}


def test_duplicated_missing_foreign_and_malformed_ids(sample_corpus, gold_answers, tmp_path):
    items = corpus_items(sample_corpus, TASKS)
    rows = [{"id": i, "prediction": a} for i, a in gold_answers.items()]
    with pytest.raises(PredictionFileError, match=r"p\.jsonl:3: duplicate id"):
        read_replies(_write(tmp_path / "p.jsonl", rows[:2] + rows[:1]))
    with pytest.raises(PredictionFileError, match=r":2: corrupt line \(not JSON"):
        (tmp_path / "bad.jsonl").write_text(json.dumps(rows[0]) + "\n{oops\n")
        read_replies(tmp_path / "bad.jsonl")
    with pytest.raises(PredictionFileError, match=r":1: corrupt line \(expected"):
        read_replies(_write(tmp_path / "k.jsonl", [{"id": "x", "text": "y"}]))
    partial = {r["id"]: r["prediction"] for r in rows[1:]} | {"meld/en/EC/nope": "1. happiness"}
    with pytest.raises(ScoringError, match="1 missing .* 1 unknown"):
        join(partial, items)
    coverage = join(partial, items, allow_partial=True)
    report = coverage.as_dict()
    assert not report["complete"] and report["missing"] == 1 and report["unknown_examples"] == ["meld/en/EC/nope"]
    assert sum(p for p, _ in report["predicted_of_expected"].values()) == len(items) - 1


def test_unparseable_replies_are_failures_not_defaults(sample_corpus, gold_answers):
    items = corpus_items(sample_corpus, TASKS)
    closed = {i: item for i, item in items.items() if item.task != "masive/ASI"}  # open vocabulary: any text is a term
    parsed, statuses = parse_all({i: "I cannot tell." for i in closed}, closed)
    assert all(p.status == "failed" and p.value is None for p in parsed.values())
    assert all(s["failure_rate"] == 1.0 for s in statuses.values())


def test_perfect_predictions_score_perfectly_in_both_modes(sample_corpus, gold_answers, tmp_path):
    from mmaff.eval.score import main

    path = _write(tmp_path / "p.jsonl", [{"id": i, "prediction": a} for i, a in gold_answers.items()])
    main(["--predictions", str(path), "--corpus", str(sample_corpus), "--out", str(tmp_path / "out")])
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["coverage"]["complete"] and set(report["tasks"]) == set(TASKS)
    for name, entry in report["tasks"].items():
        pooled = entry["corrected"]["pooled"]
        if entry["target_type"] == "single":
            assert pooled["accuracy"] == 1.0 and pooled["invalid"] == 0, name
        if entry["target_type"] == "real" and pooled["pearson"] is not None and not pooled.get("constant_gold"):
            assert pooled["pearson"] == pytest.approx(1.0, abs=1e-3), name
        assert ("paper_compat" in entry) == TASKS[name].paper_compat, name
    masive = report["tasks"]["masive/ASI"]["corrected"]["pooled"]
    assert masive["acc@1"] == masive["acc@1_normalised"] == 1.0 and masive["languages"] == ["en", "es"]
    assert set(report["tasks"]["mms/SP"]["corrected"]["per_language"]) >= {"en", "de"}
    assert "anger" in report["tasks"]["semeval2018/EI-reg"]["corrected"]["per_emotion"]


def test_generate_then_score_every_test_item_end_to_end(sample_corpus, tiny_model_dir, tmp_path):
    """What `make eval-smoke` runs: the tiny model over the whole bundled test split, then the scorer."""
    from mmaff.eval.generate import main as generate
    from mmaff.eval.score import main as score

    predictions = tmp_path / "predictions.jsonl"
    argv = [
        "--backend",
        "hf",
        "--model",
        str(tiny_model_dir),
        "--corpus",
        str(sample_corpus),
        "--split",
        "test",
        "--out",
        str(predictions),
        "--batch-size",
        "8",
        "--decoder",
        "pyav",
    ]
    generate(argv)
    score(["--predictions", str(predictions), "--corpus", str(sample_corpus), "--out", str(tmp_path / "scores")])
    report = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert report["coverage"]["complete"] and set(report["tasks"]) == set(TASKS)  # every item accounted for
    assert generate(argv).written == 0  # a rerun resumes: nothing left to do, no duplicates
    run = report["run"]
    assert run["backend"] == "hf" and run["decoding"]["do_sample"] is False and report["run_matches_corpus"] is True
    assert run["decoding"]["tasks"]["meld/SP"] == {"max_new_tokens": 16, "num_beams": 1, "num_return_sequences": 1,
                                                   "do_sample": False}  # fmt: skip
    masive = report["tasks"]["masive/ASI"]["corrected"]["pooled"]  # the tiny model's 5 ranked beams
    assert run["decoding"]["tasks"]["masive/ASI"]["num_return_sequences"] == 5 and masive["beams"] == 5
    assert {"acc@3", "acc@5", "acc@3_normalised", "acc@5_normalised"} <= set(masive)
    assert masive["acc@1"] <= masive["acc@3"] <= masive["acc@5"]
    assert (tmp_path / "scores" / "results.md").exists() and (tmp_path / "scores" / "eval_results.yaml").exists()
    plots = [p for entry in report["tasks"].values() for p in entry["plots"]]
    assert plots and all((tmp_path / "scores" / p).stat().st_size > 0 for p in plots)
