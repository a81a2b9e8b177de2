"""End-to-end evaluation through the API backend, and the reports: run files, MASIVE beams (Acc@k), language
macro, chance-normalised overall, the markdown table and the model card's eval results."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from helpers import LoopbackJSONServer

from mmaff.encode.corpus import open_corpus, read_records
from mmaff.eval.generate import OpenAIChatGenerator
from mmaff.eval.predictions import PredictionFileError, corpus_fingerprint, run_path, write_run
from mmaff.eval.report import add_to_model_card, eval_results, results_markdown
from mmaff.eval.score import score
from mmaff.eval.tasks import load_tasks

TASKS = load_tasks()


def _key(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()


class OracleServer(LoopbackJSONServer):
    """A loopback OpenAI-compatible server that answers each prompt with the gold answer of the record it was
    made from (looked up by the exact messages the client sends), and fails the first attempt of some prompts
    with a 429 or a 500. A wrong prompt, image or frame in the request gets no gold answer."""

    def __init__(self, answers: dict[str, str], flaky: dict[str, int]) -> None:
        self.answers, self.flaky = answers, flaky
        self.attempts: Counter = Counter()
        self.lock = threading.Lock()
        super().__init__()

    def respond(self, handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        key = _key(payload["messages"])
        with self.lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
        if attempt == 0 and key in self.flaky:
            return self.send(handler, self.flaky[key], {"error": {"message": "try again"}}, {"Retry-After": "0"})
        content = self.answers.get(key, "I do not know.")
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        return self.send(handler, 200, {"choices": [choice], "usage": {"prompt_tokens": 1}})


def _gold_answer(record: dict[str, Any]) -> str:
    return record["messages"][-1]["content"][0]["text"]


def test_api_backend_end_to_end_every_modality(sample_corpus, tmp_path, monkeypatch) -> None:
    """`mmaff.eval.generate --backend openai` over the whole bundled test split against a local server, then
    `mmaff.eval.score`: every item accounted for, the run recorded, and the oracle's answers score perfectly."""
    from mmaff.eval.generate import main as generate
    from mmaff.eval.score import main as score_main

    corpus = open_corpus(sample_corpus)
    records = read_records(corpus.root, "test")
    assert {r["modality"] for r in records} == {"text", "image", "video"}
    probe = OpenAIChatGenerator("http://127.0.0.1:9/v1", "oracle", corpus_root=corpus.root, budget=corpus.budget)
    answers: dict[str, str] = {}
    for record in records:  # identical prompts must have identical gold answers for the oracle to be exact
        key = _key(probe.messages(record))
        assert answers.setdefault(key, _gold_answer(record)) == _gold_answer(record), record["id"]
    keys = sorted(answers)
    server = OracleServer(answers, flaky={keys[0]: 429, keys[1]: 500})
    monkeypatch.setenv("MMAFF_TEST_KEY", "sk-test")
    out = tmp_path / "api" / "predictions.jsonl"
    argv = ["--backend", "openai", "--base-url", server.base_url, "--model", "oracle", "--api-key-env"]
    argv += ["MMAFF_TEST_KEY", "--corpus", str(sample_corpus), "--out", str(out), "--decoder", "pyav"]
    argv += ["--concurrency", "4", "--max-retries", "2", "--timeout", "30"]
    try:
        report = generate(argv)
        assert report.written == len(records) and generate(argv).written == 0  # the rerun resumes: nothing to do
    finally:
        server.close()
    assert server.attempts[keys[0]] >= 2 and server.attempts[keys[1]] >= 2  # retried after the 429 and the 500

    score_main(["--predictions", str(out), "--corpus", str(sample_corpus), "--out", str(tmp_path / "scores")])
    metrics = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert metrics["coverage"]["complete"] and set(metrics["tasks"]) == set(TASKS)
    assert metrics["run"]["backend"] == "openai" and metrics["run"]["decoding"]["temperature"] == 0
    assert metrics["run_matches_corpus"] is True and metrics["rows"]["models"] == {"oracle": len(records)}
    assert all(status["failure_rate"] == 0 for status in metrics["parse_status"].values())
    for name, entry in metrics["tasks"].items():
        assert entry["against_chance"]["chance_normalised"] == pytest.approx(1.0, abs=1e-4), name  # rounded answers
        for plot in entry["plots"]:
            assert (tmp_path / "scores" / plot).stat().st_size > 0, plot
    assert metrics["overall"]["all"]["mean_chance_normalised"] == pytest.approx(1.0, abs=1e-4)
    assert {"image", "video", "text"} <= set(metrics["overall"])
    table = (tmp_path / "scores" / "results.md").read_text()
    assert all(f"| {name} |" in table for name in TASKS)
    index = yaml.safe_load((tmp_path / "scores" / "eval_results.yaml").read_text())["model-index"][0]
    assert index["name"] == "oracle" and len(index["results"]) == len(metrics["tasks"])  # joint ones by their parts


def test_a_run_file_refuses_predictions_of_another_run(sample_corpus, tmp_path) -> None:
    predictions = tmp_path / "p.jsonl"
    run = {"backend": "hf", "model": "m", **corpus_fingerprint(sample_corpus), "split": "test"}
    write_run(predictions, {**run, "decoding": {"num_beams": 1}, "started": "then"})
    write_run(predictions, {**run, "decoding": {"num_beams": 1}, "started": "now"})  # a resume: same run
    assert json.loads(run_path(predictions).read_text())["started"] == "then"
    with pytest.raises(PredictionFileError, match="another run .*num_beams"):
        write_run(predictions, {**run, "decoding": {"num_beams": 5}})


def _gold_rows(sample_corpus: Path) -> dict[str, dict[str, Any]]:
    records = {}
    for path in sorted((sample_corpus / "test").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            records[record["id"]] = record
    return records


def _write(path: Path, predictions: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "prediction": p}) + "\n" for i, p in predictions.items()))
    return path


def test_masive_beams_give_acc_at_3_and_5(sample_corpus, tmp_path) -> None:
    """A gold term in the 3rd beam is a miss at 1 and a hit at 3; greedy predictions report Acc@1 only."""
    tasks = {"masive/ASI": TASKS["masive/ASI"]}
    records = {i: r for i, r in _gold_rows(sample_corpus).items() if r["dataset"] == "masive"}
    beams = {i: ["zzz", "yyy", _gold_answer(r), "xxx", "www"] for i, r in records.items()}
    report, _ = score(_write(tmp_path / "beams.jsonl", beams), sample_corpus, tasks)
    pooled = report["tasks"]["masive/ASI"]["corrected"]["pooled"]
    assert pooled["beams"] == 5
    assert (pooled["acc@1"], pooled["acc@3"], pooled["acc@5"]) == (0.0, 1.0, 1.0)
    assert pooled["acc@3_normalised"] == 1.0
    greedy = {i: _gold_answer(r) for i, r in records.items()}
    report, _ = score(_write(tmp_path / "greedy.jsonl", greedy), sample_corpus, tasks)
    greedy_pooled = report["tasks"]["masive/ASI"]["corrected"]["pooled"]
    assert greedy_pooled["acc@1"] == 1.0 and "acc@3" not in greedy_pooled
    assert report["tasks"]["masive/ASI"]["primary_value"] == 1.0


def test_chance_normalised_and_language_macro_by_hand(sample_corpus, tmp_path) -> None:
    """All-wrong binary polarity sits at (0 - 1/2) / (1 - 1/2) = -1; the language macro is the plain mean."""
    records = _gold_rows(sample_corpus)
    tasks = {name: TASKS[name] for name in ("online_shopping/SP", "mms/SP")}
    wrong = {"positive": "negative", "negative": "positive", "neutral": "positive"}
    predictions = {}
    for item_id, record in records.items():
        if f"{record['dataset']}/{record['subtask']}" not in tasks:
            continue
        space = record["label_space"]
        label = wrong[record["gold"]] if record["dataset"] == "online_shopping" else record["gold"]
        predictions[item_id] = f"{space['ids'][space['labels'].index(label)]}. {label}"
    report, scored = score(_write(tmp_path / "p.jsonl", predictions), sample_corpus, tasks)
    shopping = report["tasks"]["online_shopping/SP"]["against_chance"]
    assert (shopping["value"], shopping["chance"], shopping["chance_normalised"]) == (0.0, 0.5, -1.0)
    mms = report["tasks"]["mms/SP"]["corrected"]
    per_language = [result["macro_f1"] for result in mms["per_language"].values()]
    assert mms["language_macro"]["macro_f1"] == pytest.approx(sum(per_language) / len(per_language))
    assert report["overall"]["mmaffben"]["mean_chance_normalised"] == pytest.approx((-1.0 + 1.0) / 2)
    assert len(scored["mms/SP"][0]) == len(scored["mms/SP"][1]) == mms["n"]
    table = results_markdown(report)
    assert "| online_shopping/SP | text | 5 | 0.0% | macro_f1 0.000 | accuracy 0.000 | 0.500 | -1.000 |" in table
    assert "| mms/SP | macro over languages | | | macro_f1 |" in table


def test_eval_results_go_into_a_model_card(sample_corpus, tmp_path) -> None:
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    from mmaff.hub.model_card import model_card

    records = _gold_rows(sample_corpus)
    tasks = {"ewect/EC": TASKS["ewect/EC"], "semeval2018/V-reg": TASKS["semeval2018/V-reg"]}
    predictions = {i: _gold_answer(r) for i, r in records.items() if f"{r['dataset']}/{r['subtask']}" in tasks}
    report, _ = score(_write(tmp_path / "p.jsonl", predictions), sample_corpus, tasks)
    results = eval_results(report, dataset_id="org/mmaffin")
    assert [(r.dataset_config, r.metric_type) for r in results] == [
        ("ewect.EC", "macro_f1"),  # the dataset card's config names (mmaff.hub.push_dataset.hub_config_name)
        ("semeval2018.V-reg", "pearson"),
    ]
    card_path = tmp_path / "README.md"
    manifest = json.loads((sample_corpus / "manifest.json").read_text())
    text = model_card(
        base_model="Qwen/Qwen2.5-VL-7B-Instruct",
        corpus="org/mmaffin",
        corpus_manifest=manifest,
        recipe=None,
        method="lora",
        command=["x"],
    )
    card_path.write_text(text)
    add_to_model_card(card_path, report, dataset_id="org/mmaffin", model_name="mmaff-7b-lora")
    card = ModelCard.load(card_path)
    name, loaded = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert name == "mmaff-7b-lora" and len(loaded) == 2
    assert loaded[1].metric_value == pytest.approx(report["tasks"]["semeval2018/V-reg"]["primary_value"], abs=1e-4)
    assert loaded[0].dataset_type == "org/mmaffin" and loaded[0].dataset_split == "test"
    assert "## Reproduce" in card.text and card.data.base_model == "Qwen/Qwen2.5-VL-7B-Instruct"


def test_label_scores_give_the_ranking_metrics_of_every_multi_label_task(
    sample_corpus, varied_model_dir, tmp_path
) -> None:
    """`mmaff.eval.likelihood` over the test split, then `mmaff.eval.score --label-scores`: AP-micro / AUC-micro / LRAP for
    every multi-label task, equal to the metric on the rows; a task whose items lack scores is an error."""
    from mmaff.eval.likelihood import main as likelihood
    from mmaff.eval.likelihood import read_label_scores
    from mmaff.eval.metrics import multilabel_ranking
    from mmaff.eval.score import ScoringError

    scores_path = tmp_path / "label_scores.jsonl"
    likelihood(["--model", str(varied_model_dir), "--corpus", str(sample_corpus), "--out", str(scores_path)])
    label_scores = read_label_scores(scores_path)
    records = _gold_rows(sample_corpus)
    multi = {n: t for n, t in TASKS.items() if t.target_type == "multi"}
    predictions = _write(tmp_path / "p.jsonl", {i: _gold_answer(r) for i, r in records.items()})
    report, _ = score(predictions, sample_corpus, TASKS, label_scores=label_scores)
    for name in multi:
        ranking = report["tasks"][name]["corrected"]["ranking"]
        rows = sorted((i, r) for i, r in records.items() if f"{r['dataset']}/{r['subtask']}" == name)
        expected = multilabel_ranking(
            [r["gold"] for _, r in rows], [label_scores[i] for i, _ in rows], rows[0][1]["label_space"]["labels"]
        )
        assert ranking == {**expected, "covered": len(rows)}, name
    assert "## Multi-label ranking (label likelihoods)" in results_markdown(report)
    assert all("ranking" not in e["corrected"] for n, e in report["tasks"].items() if n not in multi)
    some = dict(list(label_scores.items())[1:])
    with pytest.raises(ScoringError, match="have no label scores"):
        score(predictions, sample_corpus, TASKS, label_scores=some)
    partial, _ = score(predictions, sample_corpus, TASKS, label_scores=some, allow_partial=True)
    scored_multi = [i for i in some if f"{records[i]['dataset']}/{records[i]['subtask']}" in multi]
    assert sum(partial["tasks"][n]["corrected"]["ranking"]["covered"] for n in multi) == len(scored_multi)
    foreign = {**label_scores, "xed/fi/EC/nope": next(iter(label_scores.values()))}
    with pytest.raises(ScoringError, match="1 label-score ids are not items"):
        score(predictions, sample_corpus, TASKS, label_scores=foreign)
    report, _ = score(predictions, sample_corpus, TASKS, label_scores=foreign, allow_partial=True)
    assert report["label_scores"] == {"rows": len(foreign), "unknown_ids": 1}
