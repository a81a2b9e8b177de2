"""The zero-shot protocol of arXiv 2604.12633: registry label maps applied to gold and predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sklearn.metrics import average_precision_score

from mmaff.baselines import zero_shot
from mmaff.data.mixture import load
from mmaff.data.registry import load_registry

ROOT = Path(__file__).resolve().parents[1]


def test_maps_cover_their_source_sets_and_match_the_tasks_label_sets():
    maps = zero_shot.load_label_maps()
    zero_shot.check_registry_tasks()
    assert maps["goemotions28_to_synthetic11"].scored_labels == (
        "joy", "sadness", "anger", "fear", "surprise", "disgust", "love", "gratitude", "frustration",
    )  # fmt: skip
    assert "contempt" not in maps["semeval_ec11_to_synthetic11"].scored_labels


def test_goemotions_gold_and_predictions_map_to_the_expected_sets():
    gold = [["admiration", "annoyance"], ["neutral"], ["grief", "remorse"], ["caring", "gratitude"]]
    specialist = [["approval"], ["curiosity"], ["sadness"], None]  # a 28-label model's parsed replies
    synthetic = [["joy", "contempt"], [], ["sadness"], ["love"]]  # an 11-label model's: contempt is not scored
    mapped_gold, mapped_specialist, labels = zero_shot.map_task_rows("goemotions/EC", gold, specialist)
    assert mapped_gold == [["joy", "frustration"], [], ["sadness"], ["love", "gratitude"]]
    assert mapped_specialist == [["joy"], ["surprise"], ["sadness"], None]
    assert zero_shot.map_task_rows("goemotions/EC", gold, synthetic)[1] == [["joy"], [], ["sadness"], ["love"]]
    assert "frustration" in labels and "contempt" not in labels


def test_semeval_ec_drops_labels_without_a_counterpart():
    mapped_gold, _, labels = zero_shot.map_task_rows("semeval2018/E-c", [["optimism", "joy"], ["trust"]], [[], []])
    assert mapped_gold == [["joy"], []] and len(labels) == 7


def test_mapped_scores_take_the_best_source_label_and_rank_like_sklearn():
    label_map = zero_shot.load_label_maps()["goemotions28_to_synthetic11"]
    labels = label_map.scored_labels
    rows = [{name: 0.1 for name in load_registry()["goemotions"].subtasks["EC"].label_set.labels} for _ in range(2)]
    rows[0] |= {"admiration": 0.9, "joy": 0.3}
    rows[1] |= {"annoyance": 0.8}
    gold = [["joy"], ["frustration"]]
    assert label_map.scores(rows[0])["joy"] == 0.9
    result = zero_shot.score_mapped("goemotions/EC", [["admiration"], ["annoyance"]], [["joy"], ["joy"]], rows)
    y = [[label in g for label in labels] for g in gold]
    s = [[label_map.scores(r)[label] for label in labels] for r in rows]
    assert result["ranking"]["ap_micro"] == pytest.approx(average_precision_score(y, s, average="micro"))
    assert result["jaccard"] == pytest.approx(0.5)


def test_synthetic_only_mixture_trains_on_the_synthetic_corpus_alone():
    mixture = load(ROOT / "data_builders/mixtures/synthetic_only.yaml", load_registry())
    assert [(e.dataset, e.subtasks) for e in mixture.entries] == [("synthetic_emotions", ("EC",))]


# ------------------------------------------------------------------ the command line on the sample corpus's test records

SYNTHETIC_REPLIES = (["joy"], ["gratitude", "love"], [], ["sadness", "fear"], ["frustration"], ["anger", "contempt"])


def _zero_shot_records(corpus: Path) -> list[dict]:
    from mmaff.encode.corpus import read_records

    records = read_records(corpus, "test", datasets=["goemotions", "semeval2018"])
    return [r for r in records if f"{r['dataset']}/{r['subtask']}" in zero_shot.ZERO_SHOT_TASKS]


def _write_synthetic_outputs(records: list[dict], tmp_path: Path) -> tuple[Path, Path, dict, dict]:
    """Hand-made replies of a synthetic11 model (rendered by the synthetic_emotions template) and label scores over
    synthetic11 (distinct values, no ties), for every record."""
    import numpy as np

    from mmaff.baselines.outputs import render_reply, write_label_scores

    spec = load_registry()["synthetic_emotions"]
    labels = list(spec.subtasks["EC"].label_set.labels)
    replies = {r["id"]: SYNTHETIC_REPLIES[i % len(SYNTHETIC_REPLIES)] for i, r in enumerate(records)}
    rng = np.random.default_rng(7)
    scores = {r["id"]: dict(zip(labels, rng.permutation(len(labels)) / 10, strict=True)) for r in records}
    predictions = tmp_path / "preds.jsonl"
    with open(predictions, "w", encoding="utf-8") as f:
        for item_id, value in replies.items():
            reply = render_reply("mmaffben/emotion_classification", spec.subtasks["EC"], spec.subtasks, value)
            f.write(json.dumps({"id": item_id, "prediction": reply}) + "\n")
    score_file = tmp_path / "scores.jsonl"
    write_label_scores(score_file, list(scores), labels, [list(s.values()) for s in scores.values()], model="m",
                       backend="hand")  # fmt: skip
    return predictions, score_file, replies, scores


def _sklearn_figures(records: list[dict], replies: dict, scores: dict, map_name: str) -> dict[str, float]:
    """The mapped figures computed here from the registry's raw map and scikit-learn, not by mmaff."""
    import numpy as np
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        jaccard_score,
        label_ranking_average_precision_score,
        roc_auc_score,
    )

    raw = yaml.safe_load((ROOT / "data_builders/registry.yaml").read_text(encoding="utf-8"))
    mapping = raw["label_maps"][map_name]["map"]
    labels = [x for x in raw["label_sets"]["synthetic11"]["labels"].values() if x in mapping.values()]
    y = np.array([[label in {mapping[g] for g in r["gold"]} for label in labels] for r in records], dtype=int)
    p = np.array([[label in replies[r["id"]] for label in labels] for r in records], dtype=int)
    s = np.array([[scores[r["id"]][label] for label in labels] for r in records])
    with_gold = y.any(axis=1)
    return {
        "micro_f1": f1_score(y, p, average="micro", zero_division=0),
        "macro_f1": f1_score(y, p, average="macro", zero_division=0),
        "jaccard": jaccard_score(y, p, average="samples", zero_division=1.0),
        "ranking.ap_micro": average_precision_score(y, s, average="micro"),
        "ranking.auc_micro": roc_auc_score(y, s, average="micro"),
        "ranking.lrap": label_ranking_average_precision_score(y[with_gold], s[with_gold]),
    }


def test_cli_scores_synthetic11_predictions_in_the_mapped_space_like_sklearn(sample_corpus, tmp_path):
    from mmaff.eval.metrics import metric_value

    records = _zero_shot_records(sample_corpus)
    predictions, score_file, replies, scores = _write_synthetic_outputs(records, tmp_path)
    out = tmp_path / "out"
    args = ["--corpus", str(sample_corpus), "--predictions", str(predictions), "--label-scores", str(score_file)]
    zero_shot.main([*args, "--out", str(out)])
    report = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert sorted(report["tasks"]) == sorted(zero_shot.ZERO_SHOT_TASKS)
    for task, map_name in zero_shot.ZERO_SHOT_TASKS.items():
        rows = [r for r in records if f"{r['dataset']}/{r['subtask']}" == task]
        expected = _sklearn_figures(rows, replies, scores, map_name)
        result = report["tasks"][task]
        for block in (result["pooled"], *result["per_language"].values()):  # the sample has English rows only
            assert {k: metric_value(block, k) for k in expected} == pytest.approx(expected)
    results = (out / "results.md").read_text(encoding="utf-8")
    assert "| semeval2018/E-c | en |" in results and "anticipation -> (dropped)" in results
    assert "Neutral is the empty set" in results


def test_cli_missing_id_and_unscored_label_are_one_line_errors(sample_corpus, tmp_path):
    records = _zero_shot_records(sample_corpus)
    predictions, score_file, _, _ = _write_synthetic_outputs(records, tmp_path)
    lines = predictions.read_text(encoding="utf-8").splitlines()
    short = tmp_path / "short.jsonl"
    short.write_text("\n".join(lines[1:]) + "\n", encoding="utf-8")
    partial_scores = tmp_path / "partial_scores.jsonl"
    partial_scores.write_text(score_file.read_text(encoding="utf-8").replace('"joy"', '"j0y"'), encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "mmaff.baselines.zero_shot", "--corpus", str(sample_corpus), *args]
        return subprocess.run([*command, "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=ROOT)

    missing = run("--predictions", str(short))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert (
        missing.stderr.startswith(f"error: --predictions {short}: 1 test items") and records[0]["id"] in missing.stderr
    )
    unscored = run("--predictions", str(predictions), "--label-scores", str(partial_scores))
    assert unscored.returncode == 2 and unscored.stderr.count("\n") == 1
    assert f"--label-scores {partial_scores}: id" in unscored.stderr and "['joy']" in unscored.stderr
