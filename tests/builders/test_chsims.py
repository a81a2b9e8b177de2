import shutil

import pytest
from helpers import assert_accounting, build_datasets

from data_builders import chsims
from mmaff.data.build import SAMPLE_RAW, BuildError
from mmaff.data.schema import RowError

GOLDS = {  # source id: (split, SI gold, SP gold, transcript)
    "video_0001_0001": ("train", -0.8, "negative", "我真的受不了了。"),
    "video_0001_0002": ("train", 0.0, "neutral", "今天天气还行吧"),
    "video_0001_0003": ("train", 0.6, "positive", "太好了，我们赢了, 真的！"),
    "video_0002_0001": ("train", 1.0, "positive", "这是我见过最美的风景。"),  # clip id written as 0001
    "video_0002_0002": ("train", -0.2, "negative", "嗯，好像也没什么。"),  # annotation says Neutral
    "video_0003_0001": ("validation", 0.4, "positive", "还不错。"),
    "video_0003_0002": ("validation", -0.4, "negative", "我不太喜欢这样。"),
    "video_0004_0001": ("test", -1.0, "negative", "简直糟透了！"),
    "video_0004_0002": ("test", 0.8, "positive", "我很开心见到你。"),
    "video_0005_0002": ("test", -0.6, "negative", "唉，算了吧。"),  # -0.6000000001 in the file
}
SPLIT_MAP = {"train": "train", "valid": "validation", "test": "test"}


def test_chsims_fixture(tmp_path):
    built = build_datasets(tmp_path, {"chsims": {}})
    assert_accounting(built, "chsims")
    assert sorted(built.records) == sorted(f"chsims/zh/{s}/{i}" for s in ("SP", "SI", "SP+SI") for i in GOLDS)
    for source_id, (split, score, polarity, text) in GOLDS.items():
        sp, si = built.records[f"chsims/zh/SP/{source_id}"], built.records[f"chsims/zh/SI/{source_id}"]
        joint = built.records[f"chsims/zh/SP+SI/{source_id}"]
        assert (sp["gold"], si["gold"], joint["gold"]) == (polarity, score, {"SP": polarity, "SI": score})
        assert {sp["split"], si["split"], joint["split"]} == {split}
        assert sp["text"] == text and sp["language"] == "zh"
        video_id, clip = source_id.rsplit("_", 1)
        assert sp["videos"] == si["videos"] == [f"media/chsims/Raw/{video_id}/{clip}.mp4"]
        assert (built.out / sp["videos"][0]).is_file() and sp["visual_tokens"] > 0
        assert "derived" not in sp["source"] and si["source"]["derived"] is joint["source"]["derived"] is True

    si = built.records["chsims/zh/SI/video_0001_0001"]
    assert si["messages"][-1]["content"][0]["text"] == "-0.8"
    assert "Content: 我真的受不了了。" in si["messages"][-2]["content"][-1]["text"]
    assert si["source"] == {"file": "chsims/label.csv", "line": 2, "source_id": "video_0001_0001",
                            "video_id": "video_0001", "clip_id": 1, "annotation": "Negative", "label_T": -1.0,
                            "label_A": -0.6, "label_V": -0.8, "derived": True}  # fmt: skip
    disagreeing = built.records["chsims/zh/SP/video_0002_0002"]["source"]
    assert disagreeing["annotation"] == "Neutral" and disagreeing["annotation_disagrees"] is True
    assert "annotation_disagrees" not in built.records["chsims/zh/SP/video_0001_0002"]["source"]
    joint = built.records["chsims/zh/SP+SI/video_0004_0002"]
    assert joint["messages"][-1]["content"][0]["text"] == "Sentiment polarity: 1. positive\nSentiment intensity: 0.8"

    assert built.rejects_at("chsims/label.csv") == {
        7: "bad_score",  # 0.3 is not a multiple of 0.2
        10: "bad_split",  # mode "dev"
        13: "missing_media",
        14: "empty_text",
        16: "bad_column_count",
        17: "bad_id",  # video_id "../../../etc": a path-traversal row never reaches the file system
    }
    stats = built.files("chsims")["chsims/label.csv"]
    assert stats["rows"] == 16 and stats["written"] == 10 and stats["derived_written"] == 20
    assert stats["derived_rejected"] == 2  # the missing clip's SI and SP+SI


def test_chsims_sims_folder_and_one_subtask(tmp_path):
    shutil.copytree(SAMPLE_RAW / "chsims", tmp_path / "raw" / "chsims" / "SIMS")
    built = build_datasets(tmp_path, {"chsims": {"subtasks": ["SI"]}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "chsims")
    assert sorted(built.records) == sorted(f"chsims/zh/SI/{i}" for i in GOLDS)
    rec = built.records["chsims/zh/SI/video_0002_0001"]
    assert rec["gold"] == 1.0 and "derived" not in rec["source"]  # SI is the primary when alone
    assert rec["videos"] == ["media/chsims/SIMS/Raw/video_0002/0001.mp4"]
    assert rec["source"]["file"] == "chsims/SIMS/label.csv"
    assert built.rejects_at("chsims/SIMS/label.csv")[13] == "missing_media"


def test_chsims_two_label_files_are_refused(tmp_path):
    shutil.copytree(SAMPLE_RAW / "chsims", tmp_path / "raw" / "chsims")
    shutil.copytree(SAMPLE_RAW / "chsims", tmp_path / "raw" / "chsims" / "SIMS")
    with pytest.raises(BuildError, match="two copies"):
        build_datasets(tmp_path, {"chsims": {}}, raw_root=tmp_path / "raw")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("-1", -1.0), ("1.0", 1.0), ("0", 0.0), ("-0.0", 0.0), ("0.2", 0.2), ("-0.6000000001", -0.6),
     ("0.8000004", 0.8), ("+0.4", 0.4)],
)  # fmt: skip
def test_parse_score(value, expected):
    score = chsims.parse_score(value)
    assert score == expected and str(score) == str(expected)


@pytest.mark.parametrize("value", ["0.3", "1.2", "-1.2", "", "abc", "nan", "inf", "0.1", "0.21"])
def test_parse_score_rejects(value):
    with pytest.raises(RowError) as err:
        chsims.parse_score(value)
    assert err.value.reason == "bad_score"


def test_parse_row():
    fields = ["video_0007", "12", " 你好\r\n", "-0.4", "-0.2", "x", "-0.6", "Negative", "valid"]
    clip = chsims.parse_row(fields, SPLIT_MAP)
    assert (clip.source_id, clip.media_path, clip.text, clip.split) == (
        "video_0007_0012",
        "Raw/video_0007/0012.mp4",
        "你好",
        "validation",
    )
    assert (clip.score, clip.polarity) == (-0.4, "negative")
    assert clip.meta() == {"video_id": "video_0007", "clip_id": 12, "annotation": "Negative",
                           "label_T": -0.2, "label_A": "x", "label_V": -0.6}  # fmt: skip
    for index, value, reason in ((0, "../etc", "bad_id"), (0, "..", "bad_id"), (1, "1a", "bad_id"),
                                 (8, "dev", "bad_split"), (2, " ", "empty_text"), (3, "0.5", "bad_score")):  # fmt: skip
        broken = list(fields)
        broken[index] = value
        with pytest.raises(RowError) as err:
            chsims.parse_row(broken, SPLIT_MAP)
        assert err.value.reason == reason
