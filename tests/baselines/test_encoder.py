"""Encoder recipes (issue 15): losses and decisions against hand-computed values, label scores through the scorer
against scikit-learn, the two-head loss as the sum of its parts, and a tiny end-to-end run (train, predict, score,
predict_only on the result)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmaff.baselines.data import TaskError, encoder_task, split_examples
from mmaff.baselines.encoder import EncoderArguments, build_model, decide, head_scores, label_order, tune_thresholds
from mmaff.baselines.heads import JointEncoder
from mmaff.baselines.outputs import render_reply, write_label_scores, write_replies

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_encoder(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmaff.baselines.tiny_encoder import build_tiny_encoder

    return build_tiny_encoder(sample_corpus, tmp_path_factory.mktemp("tiny-encoder") / "model")


def _batch(tiny_encoder: Path, texts: list[str]) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_encoder)(texts, padding=True, return_tensors="pt")


def test_multi_label_loss_is_bce_over_sigmoids_as_computed_by_hand(tiny_encoder: Path) -> None:
    task = encoder_task("xed/EC")
    model = build_model(task, EncoderArguments(model_name_or_path=str(tiny_encoder))).eval()
    assert model.config.problem_type == "multi_label_classification" and model.config.num_labels == 8
    labels = torch.tensor([task.heads[0].target(["joy", "trust"]), task.heads[0].target([])])
    with torch.no_grad():
        out = model(**_batch(tiny_encoder, ["what a day", "fine"]), labels=labels)
    z, y = out.logits.tolist(), labels.tolist()
    terms = [
        -(t * math.log(1 / (1 + math.exp(-v))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-v))))
        for zr, yr in zip(z, y, strict=True)
        for v, t in zip(zr, yr, strict=True)
    ]
    assert out.loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-6)


def test_single_label_and_regression_heads() -> None:
    assert encoder_task("meld/EC").heads[0].kind == "single"
    v_oc = encoder_task("semeval2018/V-oc").heads[0]
    assert v_oc.labels == ("-3", "-2", "-1", "0", "1", "2", "3") and v_oc.target(-2) == 1
    v_reg = encoder_task("semeval2018/V-reg").heads[0]
    assert v_reg.width == 1 and decide(v_reg, np.array([1.7])) == 1.0  # clipped to the range [0, 1]
    assert decide(v_oc, head_scores(v_oc, np.array([[0, 0, 0, 0, 0, 3.0, 0]]))[0]) == 2
    with pytest.raises(TaskError, match="two-step"):
        encoder_task("semeval2018/V-reg>E-c")
    with pytest.raises(TaskError, match="seq2seq"):
        encoder_task("masive/ASI")


def test_thresholds_tuned_on_validation_and_decisions_by_hand() -> None:
    probabilities = np.array([[0.9, 0.2], [0.4, 0.6], [0.3, 0.1]])
    gold = np.array([[1, 0], [1, 1], [0, 0]])
    # label 0: t=0.4 predicts rows 1,2 -> F1 1.0 (0.5 / 0.9: 2/3; 0.3: 0.8); label 1: 0.5 and 0.6 both F1 1.0,
    # the tie goes to 0.5; a label never positive keeps 0.5
    assert tune_thresholds(probabilities, gold).tolist() == [0.4, 0.5]
    assert tune_thresholds(probabilities, np.zeros((3, 2))).tolist() == [0.5, 0.5]
    xed = encoder_task("xed/EC").heads[0]  # has a none label: nothing reached -> none
    scores = np.array([0.49, 0.7, 0.2, 0.5, 0.1, 0.1, 0.1, 0.1])
    assert decide(xed, scores) == ["sadness", "fear"]
    assert decide(xed, scores, np.array([0.4] + [0.8] * 7)) == ["joy"]
    assert decide(xed, np.full(8, 0.1)) == []
    task = encoder_task("xed/EC")
    subtasks = task.spec.subtasks
    assert render_reply("mmaffben/emotion_classification", task.subtask, subtasks, []) == "0. neutral"
    assert render_reply("mmaffben/emotion_classification", task.subtask, subtasks, ["fear", "sadness"]) == (
        "2. sadness, 4. fear"
    )
    goemotions = encoder_task("goemotions/EC").heads[0]  # no none label: the top label
    assert decide(goemotions, np.eye(28)[3] * 0.3) == ["annoyance"]


def test_label_scores_through_mmaff_score_equal_scikit_learn(sample_corpus: Path, tmp_path: Path) -> None:
    from sklearn.metrics import average_precision_score, label_ranking_average_precision_score, roc_auc_score

    from mmaff.eval.predictions import corpus_fingerprint
    from mmaff.eval.score import main as score_main

    task = encoder_task("xed/EC")
    head = task.heads[0]
    test = split_examples(sample_corpus, "test", task)
    scores = np.random.default_rng(0).random((len(test.ids), len(head.labels)))
    write_label_scores(tmp_path / "label_scores.jsonl", test.ids, head.labels, scores, model="m", backend="encoder")
    replies = [
        render_reply(t, task.subtask, task.spec.subtasks, decide(head, s)) for t, s in zip(test.templates, scores)
    ]
    run = {"backend": "encoder", "model": "m", **corpus_fingerprint(sample_corpus), "split": "test", "decoding": {}}
    write_replies(tmp_path / "p.jsonl", test.ids, replies, run, model="m", backend="encoder")
    score_main(
        ["--predictions", str(tmp_path / "p.jsonl"), "--corpus", str(sample_corpus), "--tasks", "xed/EC"]
        + ["--label-scores", str(tmp_path / "label_scores.jsonl"), "--out", str(tmp_path / "s"), "--no-plots"]
    )
    ranking = json.loads((tmp_path / "s" / "metrics.json").read_text())["tasks"]["xed/EC"]["corrected"]["ranking"]
    y = np.array(test.targets(task))
    assert ranking["ap_micro"] == pytest.approx(average_precision_score(y, scores, average="micro"))
    assert ranking["auc_micro"] == pytest.approx(roc_auc_score(y, scores, average="micro"))
    assert ranking["lrap_sklearn"] == pytest.approx(label_ranking_average_precision_score(y, scores))
    nonempty = y.sum(axis=1) > 0
    assert ranking["lrap"] == pytest.approx(label_ranking_average_precision_score(y[nonempty], scores[nonempty]))


def test_two_head_loss_is_the_sum_of_its_parts(tiny_encoder: Path) -> None:
    from transformers import AutoModel

    task = encoder_task("semeval2018/V-reg+E-c")
    assert [(h.name, h.kind) for h in task.heads] == [("SI", "real"), ("EC", "multi")]
    torch.manual_seed(0)
    model = JointEncoder(AutoModel.from_pretrained(tiny_encoder), task.heads, dropout=0.0).eval()
    golds = [{"SI": 0.8, "EC": ["joy", "love"]}, {"SI": 0.1, "EC": []}]
    flat = [[g["SI"], *task.heads[1].target(g["EC"])] for g in golds]
    with torch.no_grad():
        out = model(**_batch(tiny_encoder, ["so glad", "meh"]), labels=torch.tensor(flat))
    logits = out.logits
    assert logits.shape == (2, 1 + 11)
    mse = torch.mean((logits[:, 0] - torch.tensor([0.8, 0.1])) ** 2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 1:], torch.tensor(flat)[:, 1:])
    assert out.loss.item() == pytest.approx((mse + bce).item(), rel=1e-6)
    assert model.part_losses == pytest.approx({"SI": mse.item(), "EC": bce.item()}, rel=1e-6)


def test_tiny_run_end_to_end_then_predict_only(sample_corpus: Path, tiny_encoder: Path, tmp_path: Path) -> None:
    from mmaff.baselines.encoder import main
    from mmaff.eval.likelihood import read_label_scores
    from mmaff.eval.score import main as score_main

    out = tmp_path / "run"
    common = ["--corpus", str(sample_corpus), "--task", "xed/EC", "--use_cpu", "true", "--report_to", "none"]
    summary = main(
        [*common, "--model_name_or_path", str(tiny_encoder), "--output_dir", str(out), "--max_steps", "3"]
        + ["--per_device_train_batch_size", "8", "--train_sampling_strategy", "group_by_length"]
        + ["--threshold_strategy", "tuned", "--save_strategy", "no", "--learning_rate", "1e-3"]
    )
    written = summary["written"]
    run = json.loads((out / "predictions" / "predictions.run.json").read_text())
    assert run["backend"] == "encoder" and run["decoding"]["threshold_strategy"] == "tuned"
    assert set(run["decoding"]["thresholds"]["EC"]) == set(encoder_task("xed/EC").heads[0].labels)
    score_main(
        ["--predictions", written["predictions"], "--corpus", str(sample_corpus), "--tasks", "xed/EC"]
        + ["--label-scores", written["label_scores"], "--out", str(tmp_path / "scores"), "--no-plots"]
    )
    metrics = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert metrics["coverage"]["complete"] and metrics["tasks"]["xed/EC"]["corrected"]["ranking"]["ap_micro"] > 0
    # the trained checkpoint evaluated as a released one gives the same scores
    again = main(
        [*common, "--model_name_or_path", str(out), "--output_dir", str(tmp_path / "po"), "--predict_only", "true"]
    )
    released, trained = read_label_scores(again["written"]["label_scores"]), read_label_scores(written["label_scores"])
    assert released.keys() == trained.keys()
    for item_id, scores in trained.items():
        assert released[item_id] == pytest.approx(scores, rel=1e-9)


def test_released_label_sets_are_mapped_by_name_or_refused() -> None:
    head = encoder_task("xed/EC").heads[0]
    theirs = dict(enumerate(["Trust", "joy", "sadness", "anger", "fear", "surprise", "disgust", "anticipation"]))
    assert label_order(head, theirs, "m") == [1, 2, 3, 4, 5, 6, 7, 0]
    with pytest.raises(TaskError, match=r"only in the model \['neutral'\], only in the task \['trust'\]"):
        label_order(head, {**theirs, 0: "neutral"}, "m")


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mmaff.baselines.encoder", "--task", "nope/EC", "--output_dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: task 'nope/EC': not a registry subtask")


@pytest.mark.slow
def test_make_encoder_smoke(sample_corpus: Path, tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    done = subprocess.run(
        ["make", "--no-print-directory", f"VENV={venv}", "-o", f"{venv}/bin/.installed", "encoder-smoke"]
        + [f"OUT={sample_corpus}", f"TINY_ENCODER={tmp_path / 'enc'}", f"ENCODER_SMOKE_OUT={tmp_path / 'smoke'}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    multi = json.loads((tmp_path / "smoke" / "multilabel" / "scores" / "metrics.json").read_text())
    assert multi["tasks"]["xed/EC"]["corrected"]["ranking"]["covered"] > 0
    joint = json.loads((tmp_path / "smoke" / "joint" / "scores" / "metrics.json").read_text())
    assert joint["coverage"]["complete"] and "meld/EC+SP" in joint["tasks"]


def test_zero_shot_predictions_in_the_trained_label_space(
    sample_corpus: Path, tiny_encoder: Path, tmp_path: Path
) -> None:
    """Trained on synthetic_emotions/EC, predicting goemotions/EC's records: replies in the synthetic template and
    labels, which `mmaff.baselines.zero_shot` parses and scores through the 28 -> 11 map."""
    from mmaff.baselines.encoder import main
    from mmaff.baselines.zero_shot import main as zero_shot_main

    summary = main(
        ["--corpus", str(sample_corpus), "--task", "synthetic_emotions/EC", "--predict_task", "goemotions/EC"]
        + ["--model_name_or_path", str(tiny_encoder), "--output_dir", str(tmp_path / "run"), "--max_steps", "2"]
        + ["--use_cpu", "true", "--report_to", "none", "--save_strategy", "no"]
    )
    written = summary["written"]
    synthetic = encoder_task("synthetic_emotions/EC").heads[0].labels
    rows = [json.loads(line) for line in Path(written["label_scores"]).read_text().splitlines()]
    assert rows and all(tuple(row["prediction"]) == synthetic for row in rows)
    assert all(row["id"].startswith("goemotions/") for row in rows)
    zero_shot_main(
        ["--corpus", str(sample_corpus), "--predictions", written["predictions"], "--tasks", "goemotions/EC"]
        + ["--label-scores", written["label_scores"], "--out", str(tmp_path / "zs")]
    )
    report = json.loads((tmp_path / "zs" / "metrics.json").read_text())
    assert all(set(cell) == {"strict"} for cell in report["parse_status"].values())
    assert report["tasks"]["goemotions/EC"]["n"] == len(rows)
    # the trained folder as a released model, on the other zero-shot task
    again = main(
        ["--corpus", str(sample_corpus), "--task", "synthetic_emotions/EC", "--predict_task", "semeval2018/E-c"]
        + ["--model_name_or_path", str(tmp_path / "run"), "--predict_only", "true", "--use_cpu", "true"]
        + ["--output_dir", str(tmp_path / "ec"), "--report_to", "none"]
    )
    zero_shot_main(
        [
            "--corpus",
            str(sample_corpus),
            "--predictions",
            again["written"]["predictions"],
            "--tasks",
            "semeval2018/E-c",
        ]
        + ["--label-scores", again["written"]["label_scores"], "--out", str(tmp_path / "zs-ec")]
    )
    assert json.loads((tmp_path / "zs-ec" / "metrics.json").read_text())["coverage"]["complete"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--predict_only", "true", "--model_name_or_path", "/nope"], "--model_name_or_path /nope: no such folder"),
        (["--model_name_or_path", "outputs/not-there"], "make tiny-encoder writes"),
        (["--task", "meld/EC+SP", "--predict_only", "true", "--model_name_or_path", "TINY"], "is joint"),
        (["--predict_only", "true", "--model_name_or_path", "TINY"], r"only in the model \['label_0', 'label_1'\]"),
    ],
)
def test_bad_models_are_named_before_loading(
    sample_corpus: Path, tiny_encoder: Path, tmp_path: Path, flags: list[str], message: str
) -> None:
    from mmaff.baselines.encoder import main

    flags = [str(tiny_encoder) if flag == "TINY" else flag for flag in flags]
    with pytest.raises(TaskError, match=message):
        main(["--corpus", str(sample_corpus), "--task", "xed/EC", "--output_dir", str(tmp_path), *flags])
