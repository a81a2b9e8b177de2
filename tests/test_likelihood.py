"""Label-likelihood scoring: candidates, prefix sharing vs full sequences, positions, rows, resume, the reader."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest

from mmaff.encode.corpus import read_records
from mmaff.encode.samples import RopeIndex
from mmaff.eval.generate import prompt_messages
from mmaff.eval.likelihood import (
    SCORING,
    LabelScorer,
    candidate_texts,
    continuation_positions,
    main,
    read_label_scores,
    select_records,
)
from mmaff.eval.metrics import multilabel_ranking
from mmaff.eval.predictions import PredictionFileError, read_run


@pytest.fixture(scope="module")
def scorer(varied_model_dir, corpus) -> LabelScorer:
    # max_rows 7: the candidate forwards cut across records (11-28 labels each)
    return LabelScorer(
        varied_model_dir,
        corpus.root,
        corpus.budget,
        batch_size=4,
        dtype="float32",
        device="cpu",
        decoder="pyav",
        max_rows=7,
    )


def _scores(scorer: LabelScorer, records: list[dict[str, Any]], method: str) -> dict[str, Any]:
    scorer.method = method
    try:
        return {p.id: p for batch in scorer.predict(records) for p in batch}
    finally:
        scorer.method = "prefix"


def _answer(record: dict[str, Any]) -> str:
    return record["messages"][-1]["content"][0]["text"]


# ------------------------------------------------------------------------------------------------ candidates


def test_candidates_are_the_templates_one_label_answers(scorer, test_records) -> None:
    labelled = select_records(test_records, ["multi", "single"])
    assert {r["target_type"] for r in labelled} == {"multi", "single"}
    assert {r["template"]["name"] for r in labelled} >= {"mmaffben/emotion_classification", "mmaffben/two_step"}
    one_label = 0
    for record in labelled:
        texts = candidate_texts(record)
        assert list(texts) == record["label_space"]["labels"]
        gold = record["gold"] if record["target_type"] == "multi" else [record["gold"]]
        if not gold:  # "0. neutral": no label's answer
            continue
        first = gold[0]  # gold lists are in label-space order, as answers are
        if len(gold) == 1:
            one_label += 1
            assert texts[first] == _answer(record), record["id"]
        else:
            assert _answer(record).startswith(texts[first] + ", "), record["id"]
        # the candidate's tokens are the first trained tokens of the record's training sample
        trained = scorer.hf.encoder.encode(record).labels
        trained = trained[trained != -100].tolist()
        ids = scorer.candidates(record).token_ids[list(texts).index(first)]
        assert trained[: len(ids)] == list(ids), record["id"]
    assert one_label >= 10
    with pytest.raises(ValueError, match="no labels to score"):
        candidate_texts(next(r for r in test_records if r["target_type"] == "real"))


def test_select_records_filters_target_types_before_the_limit(test_records) -> None:
    chosen = select_records(test_records, ["multi"], limit=1)
    assert all(r["target_type"] == "multi" for r in chosen)
    multi_datasets = {r["dataset"] for r in test_records if r["target_type"] == "multi"}
    assert sorted(r["dataset"] for r in chosen) == sorted(multi_datasets)  # semeval2018's first record is multi too


# ---------------------------------------------------------------------------------------------------- scores


def _mixed(test_records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Multi-label records of every modality plus single-label image records."""
    multi = select_records(test_records, ["multi"], limit=2)
    single = [r for r in test_records if r["target_type"] == "single" and r["modality"] == "image"][:2]
    return multi + single


def test_prefix_sharing_gives_the_full_sequence_scores(scorer, test_records) -> None:
    records = _mixed(test_records)
    assert {r["modality"] for r in records} == {"text", "image", "video"}
    batches = scorer.hf.batches(records)
    assert any(len({r["modality"] for r in batch}) > 1 for batch in batches)  # left-padded mixed batches
    prefix, full = _scores(scorer, records, "prefix"), _scores(scorer, records, "full")
    assert set(prefix) == set(full) == {r["id"] for r in records}
    for record in records:
        a, b = prefix[record["id"]], full[record["id"]]
        labels = record["label_space"]["labels"]
        assert list(a.text) == list(b.text) == labels
        assert all(math.isfinite(s) for s in a.text.values())
        assert a.text == pytest.approx(b.text, abs=1e-4), record["id"]
        assert max(a.text.values()) - min(a.text.values()) > 1.0, "scores barely depend on the label"
        texts = candidate_texts(record)
        assert a.extra["label_tokens"] == {
            label: len(scorer.hf.tokenizer(texts[label])["input_ids"]) for label in labels
        }
        assert a.extra["scoring"] == SCORING and a.extra["prompt_tokens"] == len(scorer.hf.encode(record))


def test_continuation_positions_are_get_rope_index_on_the_full_sequence(scorer, test_records) -> None:
    import torch

    rope = RopeIndex(scorer.hf.model.config)
    for modality in ("text", "image", "video"):
        record = next(r for r in test_records if r["modality"] == modality and r["target_type"] == "multi")
        prompt = scorer.hf.encode(record)
        tokens = torch.tensor(scorer.candidates(record).token_ids[-1])
        full = dataclasses.replace(
            prompt,
            input_ids=torch.cat([prompt.input_ids, tokens]),
            mm_token_type_ids=torch.cat([prompt.mm_token_type_ids, torch.zeros_like(tokens)]),
        )
        expected = rope.positions(full)[:, len(prompt) :]
        got = continuation_positions(rope.positions(prompt), len(tokens))
        assert torch.equal(got, expected), modality
        assert int(got[0, 0]) == int(rope.positions(prompt).max()) + 1  # = max + 1 on these prompts


def test_a_score_is_the_sum_of_its_tokens_log_probs(scorer, test_records) -> None:
    """By hand: the chat template's prompt and the candidate tokenized with the tokenizer, one plain forward."""
    import torch

    record = next(r for r in test_records if r["modality"] == "text" and r["target_type"] == "multi")
    label = record["label_space"]["labels"][3]
    processor, tokenizer, model = scorer.hf.encoder.processor, scorer.hf.tokenizer, scorer.hf.model
    prompt = processor.apply_chat_template(prompt_messages(record), tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt)["input_ids"]
    answer_ids = tokenizer(candidate_texts(record)[label])["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt_ids + answer_ids])).logits[0, len(prompt_ids) - 1 : -1]
    log_probs = logits.double().log_softmax(-1)
    by_hand = sum(float(log_probs[t, i]) for t, i in enumerate(answer_ids))
    assert _scores(scorer, [record], "prefix")[record["id"]].text[label] == pytest.approx(by_hand, abs=1e-4)


def test_the_label_the_model_is_pushed_to_scores_highest(scorer, test_records) -> None:
    """A bias on the output token "5" makes "5. surprise" the likeliest answer start of a SemEval E-c record."""
    import torch

    record = next(r for r in test_records if r["subtask"] == "E-c")
    five = scorer.hf.tokenizer.convert_tokens_to_ids("5")
    assert [ids[0] for ids in scorer.candidates(record).token_ids].count(five) == 1
    before = _scores(scorer, [record], "prefix")[record["id"]].text
    bias = torch.zeros(scorer.hf.model.config.text_config.vocab_size)
    bias[five] = 30.0
    hook = scorer.hf.model.lm_head.register_forward_hook(lambda module, inputs, output: output + bias)
    try:
        after = _scores(scorer, [record], "prefix")[record["id"]].text
    finally:
        hook.remove()
    assert max(before, key=before.get) != "surprise"
    assert max(after, key=after.get) == "surprise"


# ---------------------------------------------------------------------------------------- files, CLI, resume


def test_cli_rows_feed_the_ranking_metrics_and_a_rerun_resumes(varied_model_dir, sample_corpus, tmp_path) -> None:
    out = tmp_path / "label_scores.jsonl"
    args = ["--model", str(varied_model_dir), "--corpus", str(sample_corpus), "--out", str(out), "--decoder", "pyav"]
    first = main([*args, "--limit", "1", "--batch-size", "3"])
    assert first.written == first.total > 0 and first.skipped == 0
    second = main([*args, "--limit", "2", "--batch-size", "3"])
    assert second.skipped == first.total and second.written == second.total - first.total > 0
    assert read_run(out)["command"][:3] == ["python", "-m", "mmaff.likelihood"]

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({r["id"] for r in rows}) == len(rows) == second.total
    assert set(rows[0]) >= {"id", "prediction", "label_tokens", "scoring", "model", "backend", "seconds"}
    assert rows[0]["backend"] == "hf" and rows[0]["scoring"] == SCORING

    scores = read_label_scores(out)
    records = {r["id"]: r for r in select_records(read_records(sample_corpus, "test"), ["multi", "open"], 2)}
    assert set(scores) == set(records)  # multi and open by default: MASIVE's gold answers get NLLs
    open_ids = [i for i, r in records.items() if r["target_type"] == "open"]
    assert open_ids and all(set(scores[i]) == {"nll", "log_perplexity"} for i in open_ids)
    records = {i: r for i, r in records.items() if r["target_type"] == "multi"}
    for dataset in {r["dataset"] for r in records.values()}:
        items = [r for r in records.values() if r["dataset"] == dataset]
        labels = items[0]["label_space"]["labels"]
        result = multilabel_ranking([r["gold"] for r in items], [scores[r["id"]] for r in items], labels)
        assert result["n"] == len(items) and result["ap_micro"] is not None, dataset


GOOD = {"id": "a", "prediction": {"joy": -1.5, "anger": -3.0}, "scoring": SCORING}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"id": "b", "prediction": "1. joy"}, "not a label_likelihood or gold_likelihood row"),
        ({**GOOD, "id": "b", "prediction": "1. joy"}, "not a {label: score} object"),
        ({**GOOD, "id": "b", "prediction": {"joy": "high", "anger": -1.0}}, r"scores for \['joy'\]"),
        ({**GOOD, "id": "b", "prediction": {"joy": float("-inf"), "anger": -1.0}}, r"scores for \['joy'\]"),
    ],
)
def test_read_label_scores_names_the_line_of_a_malformed_row(tmp_path, bad, message) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(PredictionFileError, match=rf"scores.jsonl:3: .*{message}"):
        read_label_scores(path)
    path.write_text(json.dumps(GOOD) + '\n{"id": "b", "predic')  # a crash mid-write: the tail is not scored
    assert read_label_scores(path) == {"a": {"joy": -1.5, "anger": -3.0}}
