"""MASIVE's T5 recipe: the authors' sentinel framing, beams as ranked answers the one scorer turns into Acc@1/3/5."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmaff.baselines import seq2seq
from mmaff.eval.predictions import PredictionWriter, write_run
from mmaff.eval.score import score
from mmaff.eval.tasks import load_tasks

ROOT = Path(__file__).resolve().parents[2]


def test_masks_map_back_to_t5_sentinels_and_terms_follow_them():
    assert seq2seq.t5_input("I feel [MASK1] and [MASK2].") == "I feel <extra_id_0> and <extra_id_1>."
    assert seq2seq.t5_target(["hurt", "so tired"]) == "<extra_id_0> hurt <extra_id_1> so tired"


def test_beams_split_at_sentinels_as_the_authors_do():
    assert seq2seq.beam_terms("<pad> <extra_id_0> hurt <extra_id_1> so tired</s><pad>") == ["hurt", "so tired"]
    assert seq2seq.beam_terms("<pad><extra_id_0><extra_id_1></s>") == []


def _masive_records(corpus: Path) -> list[dict]:
    records = seq2seq.open_records(corpus, "test")
    assert records and {r["dataset"] for r in records} == {"masive"}
    return records


def test_ranked_beams_are_scored_as_acc_at_k(sample_corpus, tmp_path):
    """Gold at rank 1 for the first item, rank 3 for the second, rank 5 for the third, nowhere for the rest:
    Acc@1 = 1/n, Acc@3 = 2/n, Acc@5 = 3/n (items with several masks: every slot right in that beam)."""
    records = _masive_records(sample_corpus)
    n = len(records)
    assert n >= 4
    out = tmp_path / "preds.jsonl"
    write_run(out, seq2seq.run_description("hand", sample_corpus, "test", ["masive/ASI"], seq2seq.BeamSettings()))
    rows = []
    for i, record in enumerate(records):
        wrong = seq2seq.t5_target([f"nope{j}" for j in range(len(record["gold"]))])
        beams = [wrong] * 5
        if i < 3:
            beams[[0, 2, 4][i]] = "<pad> " + seq2seq.t5_target(record["gold"]) + "</s>"
        rows.append({"id": record["id"], "prediction": seq2seq.ranked_answers(record, beams)})
    with PredictionWriter(out) as writer:
        writer.write(rows)
    report, _ = score(out, sample_corpus, {"masive/ASI": load_tasks()["masive/ASI"]}, modes=("corrected",))
    pooled = report["tasks"]["masive/ASI"]["corrected"]["pooled"]
    assert (pooled["acc@1"], pooled["acc@3"], pooled["acc@5"]) == pytest.approx((1 / n, 2 / n, 3 / n))
    assert pooled["beams"] == 5 and report["run_matches_corpus"] is True


def test_tiny_t5_tokenizer_keeps_t5_ids_and_sentinels(sample_corpus):
    tokenizer = seq2seq.train_tokenizer(seq2seq.corpus_texts(sample_corpus))
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    ids = tokenizer("<extra_id_0> hurt <extra_id_1> tired")["input_ids"]
    assert ids[0] == tokenizer.convert_tokens_to_ids("<extra_id_0>") == 3 and ids[-1] == 1
    assert "<extra_id_1>" in tokenizer.convert_ids_to_tokens(ids)


def test_tiny_command_refuses_a_folder_without_a_corpus(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mmaff.baselines.seq2seq", "tiny", "--corpus", str(tmp_path), "--out", "x"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--corpus" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_recipe_trains_tiny_t5_and_its_beams_are_scored(sample_corpus, tmp_path):
    """`make seq2seq-smoke` in small: tiny T5, a few Seq2SeqTrainer steps, 5-beam predictions, the one scorer."""
    model = seq2seq.build_tiny_t5(sample_corpus, tmp_path / "tiny")
    out = tmp_path / "run"
    train = [
        sys.executable,
        str(ROOT / "recipes/seq2seq/train.py"),
        "--config",
        str(ROOT / "recipes/seq2seq/smoke.yaml"),
    ]
    args = ["--model_name_or_path", str(model), "--corpus", str(sample_corpus), "--output_dir", str(out)]
    subprocess.run([*train, *args, "--max_steps", "2"], check=True, capture_output=True, cwd=tmp_path)
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {r["id"] for r in rows} == {r["id"] for r in _masive_records(sample_corpus)}
    assert all(len(r["prediction"]) == 5 for r in rows)
    report, _ = score(out / "predictions.jsonl", sample_corpus, {"masive/ASI": load_tasks()["masive/ASI"]})
    pooled = report["tasks"]["masive/ASI"]["corrected"]["pooled"]
    assert pooled["beams"] == 5 and {"acc@1", "acc@3", "acc@5"} <= set(pooled)
    assert report["run"]["decoding"]["num_beams"] == 5 and report["coverage"]["complete"]
