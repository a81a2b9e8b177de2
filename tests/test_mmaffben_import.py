"""`mmaff import mmaffben`: MMAFFBen's released LLaMA-Factory files (alpaca text, sharegpt image/video) become a
corpus with their exact prompts, our parsed gold and stable ids, which the scorer scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mmaff.data.imports import main as import_main
from mmaff.encode.corpus import open_corpus, read_records
from mmaff.eval.score import main as score_main

SYSTEM = "You are a helpful assistant for affective analysis."
EI = (
    "Task: Assess the magnitude of emotion E in the text using a real number between 0 and 1, where 0 denotes the "
    "least intensity and 1 denotes the most intensity. Text: {text}. Emotion E: {emotion}. Intensity Score:"
)
VOC = (
    "Task: Classify the text into one of seven ordinal classes, corresponding to various levels of positive and "
    "negative sentiment intensity, that best represents the mental state of the publisher. 3: very positive mental "
    "state can be inferred. ... -3: very negative mental state can be inferred Text: {text}. Intensity Class:"
)
EC = (
    "Task: Determine the text's emotional tone based on 11 categories: 1. joy, 2. sadness, 3. anger, 4. fear, "
    "5. surprise, 6. disgust,\n7. anticipation, 8. love, 9. optimism, 10. pessimism, and 11. trust.\nYou have two "
    "options:\n(a) Select one or more of the 11 emotions that represent the emotional state depicted in the text.\n"
    "(b) Choose '0. neutral' if the image does not express any emotion.\nPlease provide your selection in the "
    "following format: number. emotion.\nText: {text}"
)
EMOTIC = "<image>Task: Determine the emotion(s) of the image based on a set of 26 discrete categories ..."
MELD = (
    "<video>Task: Determine the video's emotion based on its content (text transcribed from the video's audio) and "
    "video information, using Ekman's categories: 1. happiness, 2. sadness, 3. anger, 4. fear, 5. surprise, and "
    "6. disgust.\n...\nContent: {text}"
)


def _sharegpt(user: str, answer: str, kind: str, path: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], kind: [path]}


@pytest.fixture(scope="module")
def mmaffben_dir(sample_corpus, tmp_path_factory) -> Path:
    """MMAFFBen's layout: JSON files and the media paths they name, relative to the same folder."""
    root = tmp_path_factory.mktemp("mmaffben")
    image = next(r for r in read_records(sample_corpus, "test") if r["dataset"] == "emotic")["images"][0]
    video = next(r for r in read_records(sample_corpus, "test") if r["dataset"] == "meld")["videos"][0]
    (root / "images").mkdir()
    (root / "videos").mkdir()
    shutil.copy(sample_corpus / image, root / "images" / "emotic_0.jpg")
    shutil.copy(sample_corpus / video, root / "videos" / "dia0_utt0.mp4")
    text = [
        {"instruction": EI.format(text="So angry right now", emotion="anger"), "input": "", "output": "0.734"},
        {"instruction": EI.format(text="Meh", emotion="joy"), "input": "", "output": "0.1"},
        {"instruction": VOC.format(text="Best day ever"), "input": "", "output": "3"},
        {"instruction": EC.format(text="Got the job!"), "input": "", "output": "1. joy, 9. optimism"},
        {"instruction": EC.format(text="..."), "input": "", "output": "0. neutral"},
        {"instruction": EC.format(text="broken"), "input": "", "output": "lots of feelings"},  # unparsable gold
        {"instruction": "Task: Summarise the text.", "input": "", "output": "no"},  # no MMAFFBen SemEval prompt
    ]
    image_rows = [
        {**_sharegpt(EMOTIC, "1. Happiness, 8. Peace\n", "images", "images/emotic_0.jpg"), "system": SYSTEM},
        _sharegpt(EMOTIC, "7. Excitement\n", "images", "images/missing.jpg"),  # missing media
    ]
    video_rows = [
        _sharegpt(MELD.format(text="That is disgusting."), "6. disgust\n", "videos", "videos/dia0_utt0.mp4"),
        _sharegpt("Task: no placeholder " + MELD[7:], "0. neutral\n", "videos", "videos/dia0_utt0.mp4"),
    ]
    for name, rows in [
        ("semeval2018_english_test", text),
        ("EMOTIC_EC_test", image_rows),
        ("MELD_EC_test", video_rows),
    ]:
        (root / f"{name}.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def imported(mmaffben_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("imported") / "corpus"
    files = [str(mmaffben_dir / f"{n}.json") for n in ("MELD_EC_test", "semeval2018_english_test", "EMOTIC_EC_test")]
    assert import_main(["mmaffben", *files, "--out", str(out)]) == 0
    return out


def test_rows_become_records_with_their_prompts_and_our_gold(imported):
    records = {r["id"]: r for r in read_records(imported, "test")}
    assert sorted(records) == [
        "emotic/zxx/EC/EMOTIC_EC_test-0",
        "meld/en/EC/MELD_EC_test-0",
        "semeval2018/en/E-c/semeval2018_english_test-3",
        "semeval2018/en/E-c/semeval2018_english_test-4",
        "semeval2018/en/EI-reg/semeval2018_english_test-0",
        "semeval2018/en/EI-reg/semeval2018_english_test-1",
        "semeval2018/en/V-oc/semeval2018_english_test-2",
    ]
    anger = records["semeval2018/en/EI-reg/semeval2018_english_test-0"]
    assert anger["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": EI.format(text="So angry right now", emotion="anger")}]},
        {"role": "assistant", "content": [{"type": "text", "text": "0.734"}]},
    ]  # their prompt, no system turn of ours (Qwen's default system prompt applies, as in LLaMA-Factory)
    assert (anger["gold"], anger["source"]["emotion"], anger["language"]) == (0.734, "anger", "en")
    assert records["semeval2018/en/V-oc/semeval2018_english_test-2"]["gold"] == 3
    assert records["semeval2018/en/E-c/semeval2018_english_test-3"]["gold"] == ["joy", "optimism"]
    assert records["semeval2018/en/E-c/semeval2018_english_test-4"]["gold"] == []
    emotic = records["emotic/zxx/EC/EMOTIC_EC_test-0"]
    assert emotic["messages"][0] == {"role": "system", "content": [{"type": "text", "text": SYSTEM}]}
    assert emotic["messages"][1]["content"] == [{"type": "image"}, {"type": "text", "text": EMOTIC[7:]}]
    assert emotic["gold"] == ["happiness", "peace"]
    assert emotic["images"] == ["media/emotic/images/emotic_0.jpg"] and (imported / emotic["images"][0]).is_file()
    assert emotic["media"][0]["kind"] == "image" and emotic["visual_tokens"] == emotic["media"][0]["tokens"] > 0
    meld = records["meld/en/EC/MELD_EC_test-0"]
    assert meld["gold"] == "disgust" and meld["videos"] == ["media/meld/videos/dia0_utt0.mp4"]
    assert meld["media"][0]["sampled_frames"] > 0


def test_nothing_is_lost_silently(imported):
    rejects = [json.loads(line) for line in (imported / "rejects.jsonl").read_text().splitlines()]
    assert [(r["file"], r["line"], r["reason"]) for r in rejects] == [
        ("EMOTIC_EC_test.json", 1, "missing_media"),
        ("MELD_EC_test.json", 1, "media_placeholder_mismatch"),
        ("semeval2018_english_test.json", 5, "unparsable_gold"),
        ("semeval2018_english_test.json", 6, "unknown_subtask"),
    ]
    manifest = open_corpus(str(imported)).manifest
    assert manifest["inputs"]["semeval2018_english_test.json"]["rows"] == 7
    assert manifest["inputs"]["semeval2018_english_test.json"]["written"] == {"E-c": 2, "EI-reg": 2, "V-oc": 1}
    assert manifest["datasets"]["semeval2018"]["counts"]["test"]["EI-reg"] == {"en": 2}
    assert manifest["totals"] == {"records": 7, "rejects": 4}


def test_the_scorer_scores_predictions_on_the_import(imported, tmp_path):
    replies = {
        "emotic/zxx/EC/EMOTIC_EC_test-0": "1. happiness, 8. peace",
        "meld/en/EC/MELD_EC_test-0": "3. anger",
        "semeval2018/en/E-c/semeval2018_english_test-3": "1. joy",
        "semeval2018/en/E-c/semeval2018_english_test-4": "0. neutral",
        "semeval2018/en/EI-reg/semeval2018_english_test-0": "0.7",
        "semeval2018/en/EI-reg/semeval2018_english_test-1": "0.2",
        "semeval2018/en/V-oc/semeval2018_english_test-2": "2",
    }
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "prediction": p}) + "\n" for i, p in replies.items()))
    tasks = "emotic/EC,meld/EC,semeval2018/E-c,semeval2018/EI-reg,semeval2018/V-oc"
    argv = ["--predictions", str(predictions), "--corpus", str(imported), "--out", str(tmp_path / "scores")]
    score_main([*argv, "--tasks", tasks, "--no-plots"])
    metrics = json.loads((tmp_path / "scores" / "metrics.json").read_text())
    assert metrics["coverage"]["complete"] is True
    assert set(metrics["tasks"]) == set(tasks.split(","))
    ec = metrics["tasks"]["semeval2018/E-c"]["corrected"]["pooled"]
    assert (ec["n"], ec["jaccard"], ec["empty_both"]) == (2, 0.75, 1)  # {joy} vs {joy, optimism}; neutral = neutral
    assert metrics["tasks"]["meld/EC"]["corrected"]["pooled"]["accuracy"] == 0.0  # anger for disgust
    assert metrics["tasks"]["emotic/EC"]["corrected"]["pooled"]["jaccard"] == 1.0


def test_bad_inputs_are_one_line_errors(mmaffben_dir, tmp_path, capsys):
    odd = tmp_path / "MyData_test.json"
    odd.write_text("[]")
    assert import_main(["mmaffben", str(odd), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {odd}: not a MMAFFBen file name")
    broken = tmp_path / "MELD_EC_test.json"
    broken.write_text('{"not": "an array"}')
    assert import_main(["mmaffben", str(broken), "--out", str(tmp_path / "o2")]) == 2
    assert "expected a JSON array of objects" in capsys.readouterr().err
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("")
    assert import_main(["mmaffben", str(mmaffben_dir / "MELD_EC_test.json"), "--out", str(used)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_generate_runs_on_the_import(imported, tiny_model_dir, tmp_path):
    """The generator encodes their prompts and our recorded media (visual tokens checked against the processor)."""
    from mmaff.eval.generate import main as generate_main

    out = tmp_path / "predictions.jsonl"
    generate_main(
        ["--model", str(tiny_model_dir), "--corpus", str(imported), "--out", str(out), "--max-new-tokens", "4"]
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in read_records(imported, "test"))
