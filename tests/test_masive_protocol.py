"""MASIVE evaluated as its authors do (arXiv 2407.12196, code/masive_eval.py, code/metrics.py): the clipped context
as the default input, the gold answer's NLL and log-perplexity through the label-likelihood path, and Sim@k with an
embedding model given by path."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import build_datasets, write_mixture

from mmaff.data.build import SAMPLE_RAW
from mmaff.eval import metrics
from mmaff.eval.likelihood import GOLD_SCORING, LabelScorer, gold_answer, main, read_label_scores
from mmaff.eval.predictions import PredictionFileError
from mmaff.eval.score import NLL_NOTE, SIM_NOTE, score
from mmaff.eval.similarity import ContextualSimilarity, fill_slots, find_terms
from mmaff.eval.tasks import declarable_metrics, load_tasks

ROOT = Path(__file__).resolve().parents[1]
MASIVE = {"masive/ASI": load_tasks()["masive/ASI"]}


def _masive_records(corpus: Path) -> dict[str, dict[str, Any]]:
    lines = (corpus / "test" / "masive.jsonl").read_bytes().splitlines()
    return {r["id"]: r for r in map(orjson.loads, lines)}


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ 1. the authors' input


def test_clip_input_is_the_default_and_the_mixture_option_takes_the_full_post(tmp_path) -> None:
    (tmp_path / "default").mkdir()
    (tmp_path / "full").mkdir()
    default = build_datasets(tmp_path / "default", {"masive": {}})
    full = build_datasets(tmp_path / "full", {"masive": {"options": {"text_field": "input"}}})
    rid = "masive/en/ASI/en-t002"
    assert default.records[rid]["text"] == "I feel [MASK1] and a bit [MASK2] about the vet bills."
    assert full.records[rid]["text"].startswith("My dog has been sick all week. I feel [MASK1]")
    assert full.manifest["mixture"]["masive"]["options"] == {"text_field": "input"}
    assert set(default.records) == set(full.records)  # the sample's clips are distinct: no text is deduplicated


def test_a_csv_without_clip_input_is_one_error_line_naming_the_file_and_the_option(tmp_path) -> None:
    raw = tmp_path / "raw" / "masive" / "en"
    raw.mkdir(parents=True)
    (raw / "test.csv").write_text("id,input,t5_trg\na1,I feel <extra_id_0>.,<extra_id_0> ok\n", encoding="utf-8")
    argv = ["--raw-root", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--datasets", "masive", "--strict"]
    done = subprocess.run([sys.executable, "-m", "mmaff.build", *argv], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert "masive/en/test.csv:1" in line and "['clip_input']" in line and "options: {text_field: input}" in line
    mixture = write_mixture(tmp_path / "bad.yaml", {"masive": {"options": {"text_field": "post"}}})
    argv = ["--raw-root", str(SAMPLE_RAW), "--out", str(tmp_path / "out2"), "--mixture", str(mixture)]
    done = subprocess.run([sys.executable, "-m", "mmaff.build", *argv], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "text_field" in done.stderr and "clip_input" in done.stderr


# ------------------------------------------------------------------------------- 2. NLL and log-perplexity


@pytest.fixture(scope="module")
def scorer(varied_model_dir, corpus) -> LabelScorer:
    return LabelScorer(
        varied_model_dir, corpus.root, corpus.budget, batch_size=3, dtype="float32", device="cpu", decoder="pyav"
    )


@pytest.fixture(scope="module")
def open_records(test_records) -> list[dict[str, Any]]:
    records = [r for r in test_records if r["target_type"] == "open"]
    assert {r["language"] for r in records} == {"en", "es"} and any(len(r["gold"]) > 1 for r in records)
    return records


def _predict(scorer: LabelScorer, records: list[dict[str, Any]], method: str) -> dict[str, Any]:
    scorer.method = method
    try:
        return {p.id: p for batch in scorer.predict(records) for p in batch}
    finally:
        scorer.method = "prefix"


def test_the_gold_continuation_is_the_trained_answer_up_to_the_end_of_turn(scorer, open_records) -> None:
    end = scorer.hf.tokenizer.convert_tokens_to_ids("<|im_end|>")
    newline = scorer.hf.tokenizer("\n", add_special_tokens=False)["input_ids"]
    for record in open_records:
        (ids,) = scorer.candidates(record).token_ids
        trained = scorer.hf.encoder.encode(record).labels
        trained = trained[trained != -100].tolist()
        assert trained == [*ids, *newline] and ids[-1] == end, record["id"]  # the "\n" after <|im_end|> is left out
        assert scorer.hf.tokenizer.decode(ids[:-1]) == gold_answer(record)


def test_nll_and_log_perplexity_by_hand_and_by_both_methods(scorer, open_records) -> None:
    """By hand: one plain forward over the chat-templated prompt + answer + <|im_end|>; nll sums every continuation
    token's -log p, log_perplexity leaves out the end of turn (the authors weight </s> 0)."""
    import torch

    from mmaff.eval.generate import prompt_messages

    prefix, full = _predict(scorer, open_records, "prefix"), _predict(scorer, open_records, "full")
    processor, tokenizer, model = scorer.hf.encoder.processor, scorer.hf.tokenizer, scorer.hf.model
    for record in open_records:
        row = prefix[record["id"]]
        assert row.extra["scoring"] == GOLD_SCORING and set(row.text) == {"nll", "log_perplexity"}
        assert row.text == pytest.approx(full[record["id"]].text, abs=1e-4)
        prompt = processor.apply_chat_template(prompt_messages(record), tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt)["input_ids"]
        answer_ids = tokenizer(gold_answer(record))["input_ids"]
        continuation = [*answer_ids, tokenizer.convert_tokens_to_ids("<|im_end|>")]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt_ids + continuation])).logits[0, len(prompt_ids) - 1 : -1]
        token_nll = [-float(logits.double().log_softmax(-1)[t, i]) for t, i in enumerate(continuation)]
        assert row.text["nll"] == pytest.approx(sum(token_nll), abs=1e-3)
        assert row.text["log_perplexity"] == pytest.approx(sum(token_nll[:-1]), abs=1e-3)
        assert row.text["nll"] > row.text["log_perplexity"] > 0
        assert row.extra["answer_tokens"] == len(answer_ids) and row.extra["end_tokens"] == 1


def test_the_cli_scores_gold_answers_by_default_and_the_scorer_reports_them(
    varied_model_dir, sample_corpus, tmp_path
) -> None:
    out = tmp_path / "label_scores.jsonl"
    argv = ["--model", str(varied_model_dir), "--corpus", str(sample_corpus), "--out", str(out), "--decoder", "pyav"]
    main([*argv, "--datasets", "masive"])
    scores = read_label_scores(out)
    records = _masive_records(sample_corpus)
    assert set(scores) == set(records) and all(set(v) == {"nll", "log_perplexity"} for v in scores.values())
    predictions = _write_jsonl(
        tmp_path / "p.jsonl", [{"id": i, "prediction": [gold_answer(r)] * 5} for i, r in records.items()]
    )
    report, _ = score(predictions, sample_corpus, MASIVE, label_scores=scores)
    corrected = report["tasks"]["masive/ASI"]["corrected"]
    for block, ids in [
        ("pooled", records),
        *((lang, [i for i in records if f"/{lang}/" in i]) for lang in ("en", "es")),
    ]:
        result = corrected["pooled"] if block == "pooled" else corrected["per_language"][block]
        assert result["nll"] == pytest.approx(sum(scores[i]["nll"] for i in ids) / len(ids)), block
        assert result["log_perplexity"] == pytest.approx(sum(scores[i]["log_perplexity"] for i in ids) / len(ids))
        assert result["nll_nonfinite"] == 0 and result["likelihood_n"] == len(ids)
    assert corrected["language_macro"]["nll"] == pytest.approx(
        (corrected["per_language"]["en"]["nll"] + corrected["per_language"]["es"]["nll"]) / 2
    )
    assert corrected["not_computed"] == {"sim@k": SIM_NOTE}


def _gold_row(item_id: str, nll: float, log_perplexity: float, tokens: int = 2) -> dict[str, Any]:
    prediction = {"nll": nll, "log_perplexity": log_perplexity}
    return {"id": item_id, "prediction": prediction, "answer_tokens": tokens, "end_tokens": 1, "scoring": GOLD_SCORING}


def test_means_skip_non_finite_values_and_count_them_nll_is_never_the_headline(sample_corpus, tmp_path) -> None:
    records = _masive_records(sample_corpus)
    ids = sorted(records)
    values = [(4.0, 3.0), (math.inf, math.inf), (8.0, 6.0), (2.0, 1.5), (6.0, 5.0), (math.inf, 2.5)]
    path = _write_jsonl(tmp_path / "ls.jsonl", [_gold_row(i, *v) for i, v in zip(ids, values)])
    assert "Infinity" in path.read_text()  # json writes inf so, and the reader takes it back
    scores = read_label_scores(path)
    predictions = _write_jsonl(tmp_path / "p.jsonl", [{"id": i, "prediction": "zzz"} for i in ids])
    report, _ = score(predictions, sample_corpus, MASIVE, label_scores=scores)
    entry = report["tasks"]["masive/ASI"]
    pooled = entry["corrected"]["pooled"]
    # the authors' average would be (4 + 8 + 2 + 6) / 6; ours is over the finite values, with the count beside it
    assert pooled["nll"] == pytest.approx(20 / 4) and pooled["nll_nonfinite"] == 2
    assert pooled["log_perplexity"] == pytest.approx(18 / 5) and pooled["log_perplexity_nonfinite"] == 1
    assert entry["primary"] == "acc@1_normalised" and entry["primary_value"] == 0.0
    assert entry["against_chance"]["metric"] == "acc@1_normalised"
    assert "nll" not in declarable_metrics()["open"]  # no task file can make it primary
    assert metrics.lower_is_better("open", "nll") and metrics.lower_is_better("open", "log_perplexity")
    assert not metrics.lower_is_better("open", "acc@1") and not metrics.lower_is_better("open", "sim@1")
    assert metrics.gold_likelihood([math.inf], [math.inf]) == {
        "likelihood_n": 1,
        "nll": None,
        "nll_nonfinite": 1,
        "log_perplexity": None,
        "log_perplexity_nonfinite": 1,
    }
    from mmaff.eval.report import results_markdown

    markdown = results_markdown(report)
    assert "nll (lower is better)" in markdown and "| masive/ASI | pooled | 6 | 0.000 |" in markdown
    assert "| 5.000 | 3.600 | – | – | – | 2 |" in markdown and SIM_NOTE in markdown


def test_without_label_scores_the_reports_say_nll_was_not_computed(sample_corpus, tmp_path) -> None:
    records = _masive_records(sample_corpus)
    predictions = _write_jsonl(tmp_path / "p.jsonl", [{"id": i, "prediction": "zzz"} for i in records])
    report, _ = score(predictions, sample_corpus, MASIVE)
    corrected = report["tasks"]["masive/ASI"]["corrected"]
    assert corrected["not_computed"] == {"nll": NLL_NOTE, "sim@k": SIM_NOTE}
    assert not {"nll", "log_perplexity", "sim@1"} & set(corrected["pooled"])


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_gold_row("b", -1.0, -2.0), r"\['nll', 'log_perplexity'\] must be numbers >= 0"),
        (_gold_row("b", math.nan, 1.0), r"\['nll'\] must be numbers >= 0"),
        (_gold_row("b", 1.0, 2.0), "log_perplexity is above nll"),
        ({**_gold_row("b", 2.0, 1.0), "prediction": {"nll": 2.0}}, r"not a \{nll, log_perplexity\} object"),
        ({**_gold_row("b", 2.0, 1.0), "answer_tokens": 0}, "answer_tokens must be a whole number >= 1"),
        ({**_gold_row("b", 2.0, 1.0), "scoring": "nll"}, "not a label_likelihood or gold_likelihood row"),
    ],
)
def test_gold_rows_are_read_strictly(tmp_path, bad, message) -> None:
    path = _write_jsonl(tmp_path / "scores.jsonl", [_gold_row("a", 3.0, 2.0), bad])
    with pytest.raises(PredictionFileError, match=rf"scores.jsonl:2: .*{message}"):
        read_label_scores(path)


# -------------------------------------------------------------------------------------------------- 3. Sim@k

WORDS = "i feel and a bit about the vet bills happy sad worried overwhelmed calm angry lonely me siento triste"


@pytest.fixture(scope="module")
def sim_model_dir(tmp_path_factory) -> Path:
    """A tiny sentence-transformers model built offline: a 2-layer BertModel and a WordPiece tokenizer over a few
    words, wrapped as Transformer + Pooling and saved."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordPiece
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", *WORDS.split(), "##s", "##ed"]
    tokenizer = Tokenizer(WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = {"unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]"}
    root = tmp_path_factory.mktemp("sim-model")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(root / "hf")
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special).save_pretrained(root / "hf")
    transformer = Transformer(str(root / "hf"))
    SentenceTransformer(modules=[transformer, Pooling(transformer.get_embedding_dimension())]).save(str(root / "st"))
    return root


def _by_hand(hf_dir: Path, text: str, gold: list[str], beam: list[str] | None) -> float:
    """The authors' per-beam similarity, term by term with one forward each (transformers only)."""
    import torch
    from transformers import AutoTokenizer, BertModel

    tokenizer, model = AutoTokenizer.from_pretrained(hf_dir), BertModel.from_pretrained(hf_dir).eval()

    def embeddings(terms: list[str]) -> list[Any]:
        ids = tokenizer(fill_slots(text, terms), add_special_tokens=False)["input_ids"]
        out, start = [], 0
        for term in terms:
            term_ids = tokenizer(term, add_special_tokens=False)["input_ids"]
            hits = [i for i in range(start, len(ids)) if ids[i : i + len(term_ids)] == term_ids]
            if not hits:
                out.append(None)
                continue
            low = max(hits[0] - 100, 0)
            with torch.no_grad():
                hidden = model(input_ids=torch.tensor([ids[low : hits[0] + 100]])).last_hidden_state[0]
            out.append(hidden[hits[0] - low])
            start = hits[0] + len(term_ids)
        return out

    gold_vectors = embeddings(gold)
    beam_vectors = embeddings((beam or [])[: len(gold)]) if beam else []
    total = 0.0
    for j, a in enumerate(gold_vectors):
        b = beam_vectors[j] if j < len(beam_vectors) else None
        if a is not None and b is not None:
            total += float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    return total / len(gold)


def test_fill_slots_and_find_terms_follow_the_authors() -> None:
    assert fill_slots("I feel [MASK1] and a bit [MASK2].", ["sad", "calm"]) == "I feel sad and a bit calm."
    assert fill_slots("I feel[MASK1].", ["sad"]) == "I feel sad."  # a space before a term after a non-space
    assert fill_slots("I feel [MASK1] and [MASK2].", ["sad"]) == "I feel sad and ."  # slots beyond the terms emptied
    assert find_terms([7, 8, 3, 9, 3], [[3], [3], [5]]) == [2, 4, None]  # each search starts after the last hit


def test_sim_at_k_against_an_independent_computation(sim_model_dir) -> None:
    model = ContextualSimilarity(sim_model_dir / "st", device="cpu", batch_size=2)
    text = "I feel [MASK1] and a bit [MASK2] about the vet bills."
    gold = ["worried", "overwhelmed"]
    beams = [["happy", "calm"], ["worried", "angry"], None, ["worried", "overwhelmed"], ["sad"]]
    (sims,) = model.beam_similarities([(text, gold, beams)])
    expected = [_by_hand(sim_model_dir / "hf", text, gold, beam) for beam in beams]
    assert sims == pytest.approx(expected, abs=1e-5)
    assert sims[3] == pytest.approx(1.0, abs=1e-6)  # the gold itself
    assert sims[0] < 1.0 and sims[1] < 1.0 and sims[2] == 0.0  # other terms; a failed beam
    assert sims[4] == pytest.approx(expected[4]) and sims[4] < 0.5 + 1e-9  # one slot of two left empty scores 0
    result = metrics.similarity_at_k([sims, [0.2, 0.9, 0.1, 0.3, 0.4]])
    assert result["sim@1"] == pytest.approx((sims[0] + 0.2) / 2)
    assert result["sim@3"] == pytest.approx((max(sims[:3]) + 0.9) / 2)
    assert result["sim@1"] <= result["sim@3"] <= result["sim@5"] and result["sim@5"] == pytest.approx((1 + 0.9) / 2)
    assert set(metrics.similarity_at_k([[0.5]])) == {"sim@1", "sim_n"}  # greedy: Sim@1 only


def test_score_cli_with_and_without_sim_model(sim_model_dir, sample_corpus, tmp_path) -> None:
    from mmaff.eval.score import main as score_main

    records = _masive_records(sample_corpus)
    rows = [{"id": i, "prediction": ["zzz", gold_answer(r), "yyy"]} for i, r in records.items()]
    predictions = _write_jsonl(tmp_path / "p.jsonl", rows)
    base = ["--predictions", str(predictions), "--corpus", str(sample_corpus), "--datasets", "masive", "--no-plots"]
    score_main([*base, "--out", str(tmp_path / "with"), "--sim-model", str(sim_model_dir / "st")])
    report = json.loads((tmp_path / "with" / "metrics.json").read_text())
    pooled = report["tasks"]["masive/ASI"]["corrected"]["pooled"]
    assert report["sim_model"] == str(sim_model_dir / "st")
    assert pooled["sim@3"] == pytest.approx(1.0, abs=1e-6) and pooled["sim@1"] < 1.0 and "sim@5" not in pooled
    assert set(report["tasks"]["masive/ASI"]["corrected"]["per_language"]["es"]) >= {"sim@1", "sim@3"}
    score_main([*base, "--out", str(tmp_path / "without")])
    without = json.loads((tmp_path / "without" / "metrics.json").read_text())
    assert "sim@1" not in without["tasks"]["masive/ASI"]["corrected"]["pooled"]
    assert SIM_NOTE in (tmp_path / "without" / "results.md").read_text()
    (tmp_path / "empty").mkdir()
    for bad in (tmp_path / "missing", tmp_path / "empty"):  # no folder; a folder holding no model
        argv = [*base, "--out", str(tmp_path / "bad"), "--sim-model", str(bad)]
        done = subprocess.run([sys.executable, "-m", "mmaff.score", *argv], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(f"error: --sim-model {bad}")
