import shutil
from pathlib import Path

import pytest
from helpers import assert_accounting, build_datasets, registry_spec
from PIL import Image

from data_builders import cfaps
from mmaff.data.build import SAMPLE_RAW
from mmaff.data.builder import BuildContext
from mmaff.data.rawio import MissingData, RawFormatError
from mmaff.data.schema import Example, Reject

FIXTURE = SAMPLE_RAW / "cfaps"
# source id -> picture path inside cfaps/, for the pictures with a kept EC record
EC_PICTURES = {
    "anger-female-AF1": "1anger/female/AF1.bmp",
    "anger-male-AM1": "1anger/male/AM1.jpg",
    "anger-male-AM2": "1anger/male/AM2.png",
    "disgust-female-DF1": "2disguse/female/DF1.png",
    "disgust-female-DF2": "2disguse/female/DF2.jpg",  # no rating: EC only
    "disgust-male-DM1": "2disguse/male/DM1.jpg",
    "fear-female-FF1": "3fear/female/FF1.jpg",
    "fear-male-FM1": "3fear/male/FM1.png",
    "sadness-female-SAF1": "4Sad/female/SAF1.bmp",
    "sadness-female-SAF2": "4Sad/female/SAF2.png",  # rating rejected (bad_score): EC only
    "sadness-male-SAM1": "4Sad/male/SAM1.jpg",
    "surprise-female-SUF19": "5surprise/female/SUF19.bmp",
    "surprise-male-SUM1": "5surprise/male/SUM1.jpg",
    "neutral-male-NM1": "6neutral/male/NM1.png",
    "neutral-male-NM2": "6neutral/male/NM2.jpg",
    "happiness-female-HF1": "7happy/female/HF1.png",  # rating rejected (bad_score): EC only
    "happiness-female-HF2": "7happy/female/HF2.bmp",
    "happiness-male-HM1": "7happy/male/HM1.jpg",
}
# source id -> (ratings.csv line, gold = (intensity - 1) / 8)
EI_GOLDS = {
    "anger-male-AM1": (2, 0.73),
    "anger-male-AM2": (3, 0.525),  # matched by stem
    "anger-female-AF1": (4, 0.7625),
    "disgust-male-DM1": (5, 0.625),
    "disgust-female-DF1": (6, 0.5625),
    "fear-male-FM1": (7, 0.8625),
    "fear-female-FF1": (8, 0.4125),
    "sadness-male-SAM1": (10, 0.6375),
    "sadness-female-SAF1": (11, 0.6),  # emotion given as 悲伤
    "surprise-male-SUM1": (13, 0.9),
    "surprise-female-SUF19": (14, 1.0),  # "suf19.BMP": case-insensitive
    "neutral-male-NM1": (16, 0.0),
    "neutral-male-NM2": (17, 0.15),
    "happiness-male-HM1": (19, 0.8375),
    "happiness-female-HF2": (21, 0.7375),  # given as a path
}
RATING_REJECTS = {
    9: "empty_media",  # FF2.jpg is zero bytes
    12: "bad_score",
    15: "undecodable_image",  # SUF2.jpg is truncated
    18: "emotion_mismatch",
    20: "bad_score",
    22: "rating_without_image",
    23: "duplicate_rating",
}


def direct(raw_root: Path, stage: Path, subtasks=("EC", "EI")) -> list[Example | Reject]:
    spec = registry_spec("cfaps")
    ctx = BuildContext(spec, raw_root, frozenset(subtasks), dict(spec.options), stage=stage)
    return list(cfaps.build(ctx))


def picture(path: Path, side: int = 24) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (side, side), 128).save(path, format="PNG")


def test_cfaps_fixture(tmp_path):
    built = build_datasets(tmp_path, {"cfaps": {}})
    assert_accounting(built, "cfaps")
    ec = {r["source"]["source_id"]: r for r in built.records.values() if r["subtask"] == "EC"}
    ei = {r["source"]["source_id"]: r for r in built.records.values() if r["subtask"] == "EI"}
    assert set(ec) == set(EC_PICTURES) and set(ei) == set(EI_GOLDS)
    for sid, path in EC_PICTURES.items():
        rec = ec[sid]
        assert rec["id"] == f"cfaps/zxx/EC/{sid}" and rec["gold"] == sid.split("-")[0]
        assert rec["images"] == [f"media/cfaps/{path}"] and rec["source"]["file"] == f"cfaps/{path}"
        assert (built.out / rec["images"][0]).read_bytes() == (FIXTURE / path).read_bytes()
        assert (rec["language"], rec["modality"], rec["text"]) == ("zxx", "image", None)
        assert rec["source"]["rated"] == (sid in EI_GOLDS) and rec["source"]["sex"] == sid.split("-")[1]
    for sid, (line, gold) in EI_GOLDS.items():
        rec, emotion = ei[sid], sid.split("-")[0]
        assert rec["id"] == f"cfaps/zxx/EI/{emotion}/{sid}" and rec["source"]["line"] == line
        assert rec["gold"] == pytest.approx(gold, abs=1e-12) and rec["label_space"] == {"min": 0, "max": 1}
        assert f"Emotion E: {emotion}" in rec["messages"][-2]["content"][-1]["text"]
        assert "Content:" not in rec["messages"][-2]["content"][-1]["text"]
        assert rec["images"] == ec[sid]["images"] and rec["split"] == ec[sid]["split"]  # one picture, one split
    assert ei["anger-male-AM1"]["messages"][-1]["content"][0]["text"] == "0.73"
    assert ei["anger-male-AM2"]["source"]["agreement"] == 85.5
    assert ec["anger-male-AM1"]["messages"][-1]["content"][0]["text"] == "3. anger"
    assert built.rejects_at("cfaps/ratings.csv") == RATING_REJECTS
    assert built.rejects_at("cfaps/3fear/female/FF2.jpg") == {1: "empty_media"}
    assert built.rejects_at("cfaps/5surprise/female/SUF2.jpg") == {1: "undecodable_image"}
    assert built.rejects_at("cfaps/6neutral/female/NF1.jpg") == {1: "emotion_mismatch"}
    assert not built.rejects_at("Thumbs.db")
    assert {r["split"] for r in built.records.values()} == {"train", "validation", "test"}
    assert set(built.manifest["datasets"]["cfaps"]["inputs"]) == {"cfaps/ratings.csv"}


def test_cfaps_ec_only_needs_no_ratings(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw / "cfaps")
    (raw / "cfaps" / "ratings.csv").unlink()
    items = direct(raw, tmp_path / "stage", subtasks=("EC",))
    examples = [i for i in items if isinstance(i, Example)]
    assert len(examples) == 21 and not [i for i in items if isinstance(i, Reject)]
    assert all(e.subtask == "EC" and e.meta["rated"] is False for e in examples)
    with pytest.raises(MissingData):
        direct(raw, tmp_path / "stage")


@pytest.mark.parametrize(
    "name, emotion",
    [
        ("1anger", "anger"),
        ("2disguse", "disgust"),
        ("2Disgust", "disgust"),
        ("3FEAR", "fear"),
        ("4Sad", "sadness"),
        ("sadness", "sadness"),
        ("5 surprise", "surprise"),
        ("6_neutral", "neutral"),
        ("7happy", "happiness"),
        ("Happiness", "happiness"),
        ("1愤怒", "anger"),
        ("8contempt", None),
        ("male", None),
        ("12", None),
    ],
)
def test_folder_emotion(name, emotion):
    assert cfaps.folder_emotion(name) == emotion


def test_cfaps_layout_quirks(tmp_path):
    root = tmp_path / "raw" / "cfaps"
    picture(root / "Anger" / "Male" / "AM1.PNG")
    picture(root / "2Disgust" / "female" / "DF1.png")
    picture(root / "2Disgust" / "female" / "DF1.bmp")  # the same stem twice
    picture(root / "2Disgust" / "DX1.png")  # outside male/ and female/
    (root / "2Disgust" / "female" / "notes.txt").write_text("not a picture")
    (root / "2Disgust" / "female" / ".DS_Store").write_bytes(b"\0")
    picture(root / "__MACOSX" / "2Disgust" / "female" / "._DF1.png")
    (root / "manual.pdf").write_bytes(b"%PDF")
    (root / "ratings.csv").write_text(
        "file,emotion,agreement,intensity\nam1.png,angry,,5\nDF1,disgust,70,4\nDF1.bmp,disgust,70,nan\n"
        "DF1.png,disgust,70,inf\nAM1.PNG,surprise,80,5\n",
        encoding="utf-8",
    )
    items = direct(tmp_path / "raw", tmp_path / "stage")
    examples = {(i.subtask, i.source_id): i for i in items if isinstance(i, Example)}
    assert set(examples) == {
        ("EC", "anger-male-AM1"),
        ("EC", "disgust-female-DF1"),  # DF1.bmp and DF1.png share the id: the pipeline rejects the second
        ("EI", "anger-male-AM1"),
    }
    assert (
        examples[("EI", "anger-male-AM1")].gold == 0.5 and examples[("EI", "anger-male-AM1")].meta["agreement"] is None
    )
    assert examples[("EC", "anger-male-AM1")].images == ["Anger/Male/AM1.PNG"]
    rejects = {(r.file, r.line): r.reason for r in items if isinstance(r, Reject)}
    assert rejects == {
        ("cfaps/2Disgust/DX1.png", 1): "unexpected_file",
        ("cfaps/2Disgust/female/notes.txt", 1): "unexpected_file",
        ("cfaps/ratings.csv", 3): "ambiguous_rating",
        ("cfaps/ratings.csv", 4): "bad_score",
        ("cfaps/ratings.csv", 5): "bad_score",
        ("cfaps/ratings.csv", 6): "duplicate_rating",
    }


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda root: picture(root / "8contempt" / "male" / "CM1.png"), "8contempt"),
        (lambda root: picture(root / "1anger" / "children" / "AC1.png"), "1anger/children"),
        (lambda root: picture(root / "7Happiness" / "male" / "HM2.png"), "a second happiness folder"),
        (lambda root: picture(root / "1anger" / "male" / "old" / "AM9.png"), "1anger/male/old"),
    ],
)
def test_cfaps_unknown_folders_are_format_errors(tmp_path, make, match):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw / "cfaps")
    make(raw / "cfaps")
    with pytest.raises(RawFormatError, match=match):
        direct(raw, tmp_path / "stage")


def test_cfaps_bad_rating_rows(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw / "cfaps")
    (raw / "cfaps" / "ratings.csv").write_text(
        "file,emotion,agreement,intensity\nAM1.jpg,rage,90,5\nAM2.png,anger,90\nAF1.bmp,anger,90,0.5\n"
        "DM1.jpg,disgust,90,9.01\n",
        encoding="utf-8",
    )
    items = direct(raw, tmp_path / "stage")
    rejects = {r.line: r.reason for r in items if isinstance(r, Reject) and r.file == "cfaps/ratings.csv"}
    assert rejects == {2: "bad_label", 3: "bad_column_count", 4: "bad_score", 5: "bad_score"}
    assert not [i for i in items if isinstance(i, Example) and i.subtask == "EI"]
