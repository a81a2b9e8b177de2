import csv
import shutil

import pytest
from helpers import REALDATA, assert_accounting, build_datasets

from data_builders import meld
from mmaff.data.build import SAMPLE_RAW, BuildError
from mmaff.data.rawio import read_csv
from mmaff.data.schema import Reject, RowError

KEPT = ["train-dia0_utt0", "train-dia0_utt1", "train-dia0_utt2", "train-dia1_utt1", "train-dia2_utt0",
        "dev-dia0_utt0", "dev-dia0_utt1", "test-dia0_utt0", "test-dia0_utt1"]  # fmt: skip
GOLDS = {  # source id: (EC, SP)
    "train-dia0_utt0": ("happiness", "positive"),
    "train-dia0_utt1": ("surprise", "positive"),
    "train-dia0_utt2": ("sadness", "negative"),
    "train-dia1_utt1": ("fear", "negative"),
    "train-dia2_utt0": ("neutral", "neutral"),
    "dev-dia0_utt0": ("anger", "negative"),
    "dev-dia0_utt1": ("neutral", "neutral"),
    "test-dia0_utt0": ("disgust", "negative"),
    "test-dia0_utt1": ("fear", "negative"),
}


def test_meld_fixture(tmp_path):
    built = build_datasets(tmp_path, {"meld": {}})
    assert_accounting(built, "meld")
    assert sorted(built.records) == sorted(f"meld/en/{s}/{i}" for s in ("EC", "SP", "EC+SP") for i in KEPT)
    for source_id, (ec, sp) in GOLDS.items():
        assert built.records[f"meld/en/EC/{source_id}"]["gold"] == ec
        assert built.records[f"meld/en/SP/{source_id}"]["gold"] == sp
        assert built.records[f"meld/en/EC+SP/{source_id}"]["gold"] == {"EC": ec, "SP": sp}
    splits = {r["source"]["source_id"].split("-")[0]: r["split"] for r in built.records.values()}
    assert splits == {"train": "train", "dev": "validation", "test": "test"}

    rec = built.records["meld/en/EC/train-dia0_utt0"]
    assert rec["text"] == "Oh my God, you’re here!" and rec["language"] == "en" and rec["modality"] == "video"
    assert "Content: Oh my God, you’re here!" in rec["messages"][-2]["content"][-1]["text"]
    assert rec["messages"][-2]["content"][0] == {"type": "video"}
    assert rec["messages"][-1]["content"][0]["text"] == "1. happiness"
    assert rec["videos"] == ["media/meld/train_splits/dia0_utt0.mp4"]
    assert rec["visual_tokens"] > 0 and rec["media"][0]["kind"] == "video" and rec["media"][0]["width"] == 64
    assert rec["source"] == {"file": "meld/train_sent_emo.csv", "line": 2, "source_id": "train-dia0_utt0",
                             "speaker": "Rachel", "season": 3, "episode": 5, "start_time": "00:12:01,100",
                             "end_time": "00:12:03,250", "dialogue_id": 0, "utterance_id": 0}  # fmt: skip
    one_digit_hour = built.records["meld/en/SP/train-dia0_utt1"]
    assert one_digit_hour["text"] == "You’re kidding… right?"
    assert (one_digit_hour["source"]["start_time"], one_digit_hour["source"]["end_time"]) == (
        "00:12:03,300",
        "00:12:05,010",
    )
    assert one_digit_hour["source"]["derived"] is True
    joint = built.records["meld/en/EC+SP/dev-dia0_utt0"]
    assert joint["messages"][-1]["content"][0]["text"] == "Emotions: 3. anger\nSentiment polarity: -1. negative"
    assert joint["videos"] == ["media/meld/dev_splits_complete/dia0_utt0.mp4"]
    # "Okay." is in train and dev: different clips, so no duplicate-text or train-in-eval reject
    assert built.records["meld/en/EC/train-dia2_utt0"]["text"] == built.records["meld/en/EC/dev-dia0_utt1"]["text"]

    assert built.rejects_at("meld/train_sent_emo.csv") == {
        5: "undecodable_video",  # truncated clip, like the real train dia125_utt3
        7: "empty_media",
        9: "label_not_in_label_set",  # emotion "contempt"
    }
    assert built.rejects_at("meld/dev_sent_emo.csv") == {4: "missing_media", 5: "empty_text"}
    assert built.rejects_at("meld/test_sent_emo.csv") == {
        4: "bad_id",
        5: "bad_column_count",  # unquoted times
        6: "label_not_in_label_set",  # sentiment "mixed"
    }
    files = built.files("meld")
    assert {rel: s["rows"] for rel, s in files.items()} == {
        "meld/train_sent_emo.csv": 8,
        "meld/dev_sent_emo.csv": 4,
        "meld/test_sent_emo.csv": 5,
    }
    # a media reject takes the row's derived records with it
    assert files["meld/train_sent_emo.csv"]["derived_rejected"] == 4
    assert files["meld/train_sent_emo.csv"]["derived_written"] == 10
    media = sorted(
        p.relative_to(built.out / "media/meld").as_posix() for p in (built.out / "media/meld").rglob("*.mp4")
    )
    assert media == sorted(r["videos"][0].removeprefix("media/meld/") for r in built.records.values()
                           if r["subtask"] == "EC")  # fmt: skip
    assert "output_repeated_splits_test/final_videos_testdia101_utt0.mp4" not in media  # no annotation row


def test_meld_one_subtask_is_primary(tmp_path):
    built = build_datasets(tmp_path, {"meld": {"subtasks": ["SP"]}})
    assert_accounting(built, "meld")
    assert sorted(built.records) == sorted(f"meld/en/SP/{i}" for i in KEPT)
    assert not any(r["source"].get("derived") for r in built.records.values())
    assert built.files("meld")["meld/train_sent_emo.csv"]["written"] == 5


def test_meld_nested_meld_raw_folder(tmp_path):
    shutil.copytree(SAMPLE_RAW / "meld", tmp_path / "raw" / "meld" / "MELD.Raw")
    built = build_datasets(tmp_path, {"meld": {"subtasks": ["EC"]}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "meld")
    assert sorted(built.records) == sorted(f"meld/en/EC/{i}" for i in KEPT)
    rec = built.records["meld/en/EC/test-dia0_utt1"]
    assert rec["videos"] == ["media/meld/MELD.Raw/output_repeated_splits_test/dia0_utt1.mp4"]
    assert rec["source"]["file"] == "meld/MELD.Raw/test_sent_emo.csv"


def test_meld_dyadic_variant_is_refused(tmp_path):
    raw = tmp_path / "raw" / "meld"
    raw.mkdir(parents=True)
    header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Old_Dialogue_ID,Old_Utterance_ID"
    (raw / "train_sent_emo.csv").write_bytes((header + ",Season,Episode,StartTime,EndTime\r\n").encode())
    with pytest.raises(BuildError, match="MELD_Dyadic variant"):
        build_datasets(tmp_path, {"meld": {}}, raw_root=tmp_path / "raw")


def test_parse_row_and_times():
    fields = ["23", " Yeah, sure!\r", "Rachel", "Joy", "positive", "1", "8", "9", "23", "0:36:59,425", "0:37:01,439"]
    row = meld.parse_row(fields)
    assert (row.text, row.speaker, row.emotion, row.sentiment) == ("Yeah, sure!", "Rachel", "happiness", "positive")
    assert (row.dialogue_id, row.utterance_id, row.season, row.episode) == (1, 8, 9, 23)
    assert (row.start_time, row.end_time, row.clip_name) == ("00:36:59,425", "00:37:01,439", "dia1_utt8.mp4")
    assert meld.normalise_time("12:00:01,5") == "12:00:01,500"
    assert meld.normalise_time(" garbled ") == "garbled"
    for bad, reason in (({5: "x"}, "bad_id"), ({6: "-1"}, "bad_id"), ({1: "  "}, "empty_text"),
                        ({3: "contempt"}, "label_not_in_label_set"), ({4: "mixed"}, "label_not_in_label_set")):  # fmt: skip
        broken = [bad.get(i, v) for i, v in enumerate(fields)]
        with pytest.raises(RowError) as err:
            meld.parse_row(broken)
        assert err.value.reason == reason


@pytest.mark.realdata
def test_meld_realdata(tmp_path):
    src = REALDATA / "meld"
    if not src.exists():
        pytest.skip("../shared/realdata not present")
    raw = tmp_path / "raw" / "meld"
    raw.mkdir(parents=True)
    counted = {}
    for name in ("train_sent_emo.csv", "dev_sent_emo.csv"):
        (raw / name).write_bytes((src / name).read_bytes())
        with open(src / name, encoding="utf-8", newline="") as f:
            counted[f"meld/{name}"] = sum(1 for _ in csv.reader(f)) - 1  # minus the header
    built = build_datasets(tmp_path, {"meld": {}}, raw_root=tmp_path / "raw")  # no clips at all
    assert_accounting(built, "meld")
    files = built.files("meld")
    assert {rel: s["rows"] for rel, s in files.items()} == counted
    assert not built.records
    for rel, rows in counted.items():
        rejects = built.rejects_at(rel)
        assert len(rejects) == rows, rel  # one located reject per row: nothing disappears
        assert set(rejects.values()) <= {"missing_media", "label_not_in_label_set"}, rel
        assert sum(files[rel]["rejected"].values()) == rows
        assert files[rel]["derived_rejected"] == 2 * files[rel]["rejected"].get("missing_media", 0)

    # the parsing itself, on the first rows of the real train file
    path = raw / "train_sent_emo.csv"
    rows = [item for item in read_csv(path, "train", meld.HEADER) if not isinstance(item, Reject)]
    assert len(rows) == counted["meld/train_sent_emo.csv"]
    (line, first), second = rows[0], rows[1][1]
    parsed = meld.parse_row(first)
    assert line == 2 and parsed.speaker == "Chandler" and parsed.emotion == "neutral" and parsed.sentiment == "neutral"
    assert parsed.text.startswith("also I was the point person on my company’s transition")  # curly quote kept
    assert (parsed.start_time, parsed.end_time, parsed.clip_name) == ("00:16:16,059", "00:16:21,731", "dia0_utt0.mp4")
    assert (parsed.season, parsed.episode) == (8, 21)
    assert meld.parse_row(second).speaker == "The Interviewer"
    fifth = meld.parse_row(rows[4][1])
    assert (fifth.text, fifth.emotion, fifth.sentiment) == ("My duties?  All right.", "surprise", "positive")
    one_digit = [meld.parse_row(f) for _, f in rows if f[9].startswith("0:")]
    assert one_digit, "the excerpt has one-digit hours"
    assert one_digit[0].text == "Yeah, sure!" and one_digit[0].speaker == "Rachel"
    assert (one_digit[0].start_time, one_digit[0].end_time) == ("00:36:59,425", "00:37:01,439")
    assert all(u.start_time[2] == ":" and len(u.start_time) == 12 for u in one_digit)
