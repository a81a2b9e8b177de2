import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import REALDATA, assert_accounting, build_datasets, registry_spec
from PIL import Image

from data_builders import fer2013
from mmaff.data.build import SAMPLE_RAW
from mmaff.data.builder import BuildContext
from mmaff.data.rawio import RawFormatError
from mmaff.data.schema import Example, Reject

FIXTURE = SAMPLE_RAW / "fer2013"
KAGGLE = ["anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral"]
ROW_REJECTS = {9: "bad_pixels", 10: "bad_label", 11: "bad_pixels", 12: "bad_usage"}
# source id -> (fer2013.csv line, gold) for the fixture's valid rows
EXPECTED = {
    "Training-00000": (2, "anger"),
    "Training-00001": (3, "disgust"),
    "Training-00002": (4, "fear"),
    "Training-00003": (5, "happiness"),  # the CRLF row
    "Training-00004": (6, "sadness"),
    "Training-00005": (7, "surprise"),
    "Training-00006": (8, "neutral"),
    "Training-00010": (13, "happiness"),  # 00007-00009: rejected Training rows keep their index
    "Training-00011": (14, "sadness"),
    "PublicTest-00000": (15, "neutral"),
    "PublicTest-00001": (16, "surprise"),
    "PublicTest-00002": (17, "anger"),
    "PublicTest-00003": (18, "disgust"),
    "PublicTest-00004": (19, "fear"),
    "PrivateTest-00000": (20, "happiness"),
    "PrivateTest-00001": (21, "sadness"),
    "PrivateTest-00002": (22, "surprise"),
    "PrivateTest-00003": (23, "neutral"),
    "PrivateTest-00004": (24, "disgust"),
    "PrivateTest-00005": (25, "anger"),  # last line, no trailing newline
}


def csv_pixels(path: Path) -> dict[int, np.ndarray]:
    """line number -> 48x48 pixels, parsed independently of the builder (valid rows only)."""
    rows = {}
    for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
        fields = raw.rstrip(b"\r").decode().split(",")
        values = fields[1].split() if len(fields) == 3 else []
        if number > 1 and len(values) == 48 * 48 and all(0 <= int(v) <= 255 for v in values):
            rows[number] = np.array([int(v) for v in values], dtype=np.uint8).reshape(48, 48)
    return rows


def png_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "L" and image.size == (48, 48)
        return np.asarray(image)


def direct(raw_root: Path, stage: Path, **options) -> list[Example | Reject]:
    spec = registry_spec("fer2013")
    ctx = BuildContext(spec, raw_root, frozenset(spec.subtasks), {**spec.options, **options}, stage=stage)
    return list(fer2013.build(ctx))


def copy_fixture(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    shutil.copytree(FIXTURE, raw / "fer2013")
    return raw


def test_fer2013_fixture(tmp_path):
    built = build_datasets(tmp_path, {"fer2013": {}})
    assert_accounting(built, "fer2013")
    assert built.rejects_at("fer2013/fer2013.csv") == ROW_REJECTS
    assert set(built.records) == {f"fer2013/zxx/EC/{sid}" for sid in EXPECTED}
    for sid, (line, gold) in EXPECTED.items():
        rec = built.records[f"fer2013/zxx/EC/{sid}"]
        assert (rec["source"]["line"], rec["gold"]) == (line, gold), sid
        assert rec["split"] == ("train" if sid.startswith("Training") else "test"), sid
        usage = sid.split("-")[0]
        assert rec["images"] == [f"media/fer2013/generated/{usage}/{sid}.png"]
        assert (rec["language"], rec["modality"], rec["text"]) == ("zxx", "image", None)
    rec = built.records["fer2013/zxx/EC/Training-00000"]
    assert rec["messages"][-2]["content"][0] == {"type": "image"}
    assert "Content:" not in rec["messages"][-2]["content"][-1]["text"]  # no text line without text
    assert rec["messages"][-1]["content"][0]["text"] == "3. anger"
    assert rec["source"]["usage"] == "Training"
    files = built.files("fer2013")
    assert files["fer2013/fer2013.csv"]["rows"] == 24 and files["fer2013/fer2013.csv"]["written"] == 20
    assert set(built.manifest["datasets"]["fer2013"]["inputs"]) == {"fer2013/fer2013.csv"}


def test_fer2013_pngs_are_the_csv_pixels(tmp_path):
    built = build_datasets(tmp_path, {"fer2013": {}})
    pixels = csv_pixels(FIXTURE / "fer2013.csv")
    for rec in built.records.values():
        assert np.array_equal(png_pixels(built.out / rec["images"][0]), pixels[rec["source"]["line"]]), rec["id"]


def test_fer2013_pngs_are_byte_deterministic(tmp_path):
    first, second = direct(SAMPLE_RAW, tmp_path / "a"), direct(SAMPLE_RAW, tmp_path / "b")
    refs = [item.images[0] for item in first if isinstance(item, Example)]
    assert refs == [item.images[0] for item in second if isinstance(item, Example)] and len(refs) == 20
    for ref in refs:
        assert (tmp_path / "a" / "media" / ref).read_bytes() == (tmp_path / "b" / "media" / ref).read_bytes()


def test_ferplus_relabels(tmp_path):
    built = build_datasets(tmp_path, {"fer2013": {"options": {"ferplus": True}}})
    assert_accounting(built, "fer2013")
    assert built.rejects_at("fer2013/fer2013.csv") == {
        **ROW_REJECTS,
        13: "ferplus_not_a_face",
        14: "ferplus_contempt",
        15: "ferplus_unknown",
        16: "ferplus_tie",
        22: "ferplus_unknown",  # NF majority
    }
    golds = {rec["source"]["source_id"]: rec["gold"] for rec in built.records.values()}
    assert len(golds) == 15 and all(sid.startswith("fer00000") for sid in golds)
    assert golds["fer0000004"] == "neutral"  # FER2013 says sadness; FER+ votes 6 neutral, 3 sadness
    assert golds["fer0000017"] == "surprise"  # FER2013 says fear
    assert golds["fer0000000"] == "anger" and golds["fer0000023"] == "anger"
    rec = built.records["fer2013/zxx/EC/fer0000004"]
    assert rec["source"]["fer2013_label"] == "sadness" and rec["source"]["ferplus_votes"]["neutral"] == 6
    assert rec["images"] == ["media/fer2013/generated/Training/fer0000004.png"]
    assert built.records["fer2013/zxx/EC/fer0000017"]["split"] == "test"
    pixels = csv_pixels(FIXTURE / "fer2013.csv")
    assert np.array_equal(png_pixels(built.out / rec["images"][0]), pixels[6])
    assert set(built.manifest["datasets"]["fer2013"]["inputs"]) == {"fer2013/fer2013.csv", "fer2013/fer2013new.csv"}


@pytest.mark.parametrize(
    "votes, expected",
    [
        ((1, 0, 0, 0, 8, 1, 0, 0, 0, 0), ("anger", None)),
        ((4, 0, 0, 4, 1, 0, 0, 0, 1, 0), (None, "ferplus_tie")),
        ((4, 0, 0, 0, 0, 0, 0, 4, 0, 0), (None, "ferplus_tie")),
        ((1, 0, 0, 0, 0, 0, 0, 6, 3, 0), (None, "ferplus_contempt")),
        ((2, 0, 0, 0, 0, 0, 0, 0, 8, 0), (None, "ferplus_unknown")),
        ((0, 0, 0, 0, 0, 0, 0, 0, 0, 10), (None, "ferplus_unknown")),
        ((0, 0, 0, 0, 0, 0, 0, 0, 0, 0), (None, "ferplus_unknown")),
        ((3, 2, 2, 2, 1, 0, 0, 0, 0, 0), ("neutral", None)),  # plurality, not more than half
    ],
)
def test_ferplus_label(votes, expected):
    assert fer2013.ferplus_label(list(votes)) == expected


@pytest.mark.parametrize("drop", ["first", "last"])
def test_ferplus_row_count_mismatch_is_a_format_error(tmp_path, drop):
    raw = copy_fixture(tmp_path)
    path = raw / "fer2013" / "fer2013new.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) if drop == "last" else "".join(lines + [lines[-1]]))
    with pytest.raises(RawFormatError, match="fer2013new.csv"):
        direct(raw, tmp_path / "stage", ferplus=True)


def test_ferplus_usage_mismatch_is_a_format_error(tmp_path):
    raw = copy_fixture(tmp_path)
    path = raw / "fer2013" / "fer2013new.csv"
    path.write_text(path.read_text().replace("PublicTest,fer0000015.png", "Training,fer0000015.png"))
    with pytest.raises(RawFormatError, match="not aligned"):
        direct(raw, tmp_path / "stage", ferplus=True)


def test_ferplus_bad_rows_are_rejected(tmp_path):
    raw = copy_fixture(tmp_path)
    path = raw / "fer2013" / "fer2013new.csv"
    text = path.read_text()
    text = text.replace("fer0000001.png,0,0,0,1,2,7", "fer0000001.png,0,0,0,x,2,7")
    text = text.replace("fer0000002.png", "../../../etc/passwd.png")
    text = text.replace("Training,fer0000005.png,0,1,9,0,0,0,0,0,0,0", "Training,fer0000005.png,0,1,9")
    path.write_text(text)
    reasons = {i.line: i.reason for i in direct(raw, tmp_path / "stage", ferplus=True) if isinstance(i, Reject)}
    assert (reasons[3], reasons[4], reasons[7]) == ("ferplus_bad_votes", "ferplus_bad_image_name", "ferplus_bad_row")
    assert not list((tmp_path / "stage").rglob("passwd*"))


def test_header_order_and_wrong_files(tmp_path):
    raw = copy_fixture(tmp_path)
    path = raw / "fer2013" / "fer2013.csv"
    rows = [line.split(",") for line in path.read_bytes().decode().split("\n")]
    icml = [",".join((r[0], r[2].rstrip("\r"), r[1])) for r in rows]  # Kaggle's icml_face_data.csv order
    path.write_text("\n".join(icml))
    items = direct(raw, tmp_path / "stage")
    assert {i.source_id: i.gold for i in items if isinstance(i, Example)} == {s: g for s, (_, g) in EXPECTED.items()}
    for text in (
        "version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 301072766\n",  # an LFS pointer
        (FIXTURE / "fer2013new.csv").read_text(),  # FER+'s file under the wrong name
        "<!DOCTYPE html>\n<html><body>Sign in</body></html>\n",
    ):
        path.write_text(text)
        with pytest.raises(RawFormatError, match="fer2013.csv"):
            direct(raw, tmp_path / "stage")


@pytest.mark.parametrize(
    "raw",
    [
        " ".join(["7"] * 2303),
        " ".join(["7"] * 2305),
        " ".join(["7"] * 2303 + ["256"]),
        " ".join(["7"] * 2303 + ["-1"]),
        " ".join(["7"] * 2303 + ["+1"]),
        " ".join(["7"] * 2303 + ["1_0"]),
        " ".join(["7"] * 2303 + ["1.0"]),
        " ".join(["7"] * 2303 + ["\u0663"]),  # ARABIC-INDIC DIGIT THREE: int() takes it, we do not
        "",
    ],
)
def test_bad_pixel_strings(raw):
    assert fer2013.parse_pixels(raw) is None


def test_good_pixel_string():
    image = fer2013.parse_pixels(" ".join(str(i % 256) for i in range(2304)) + "\r")
    assert image.shape == (48, 48) and image.dtype == np.uint8 and image[1, 0] == 48 and image[47, 47] == 2303 % 256


@pytest.mark.realdata
def test_fer2013_realdata(tmp_path):
    src = REALDATA / "fer2013" / "fer2013.first4rows.csv"
    if not src.exists():
        pytest.skip("../shared/realdata not present")
    raw = tmp_path / "raw" / "fer2013"
    raw.mkdir(parents=True)
    shutil.copyfile(src, raw / "fer2013.csv")
    built = build_datasets(tmp_path, {"fer2013": {}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "fer2013")
    assert not built.rejects
    pixels = csv_pixels(src)
    golds = {}
    for rec in built.records.values():
        assert np.array_equal(png_pixels(built.out / rec["images"][0]), pixels[rec["source"]["line"]])
        golds[rec["source"]["source_id"]] = (rec["gold"], rec["split"])
    # the genuine first rows: emotions 0, 0, 2, 4 (Angry, Angry, Fear, Sad), all Training
    assert golds == {
        "Training-00000": ("anger", "train"),
        "Training-00001": ("anger", "train"),
        "Training-00002": ("fear", "train"),
        "Training-00003": ("sadness", "train"),
    }


def expected_ferplus(row: list[str]) -> tuple[str, str]:
    """(kind, value) for one FER+ row, computed independently: ("label", name) or ("reject", reason)."""
    if not row[1]:
        return "reject", "ferplus_not_a_face"
    names = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF"]
    votes = dict(zip(names, map(int, row[2:])))
    top = max(votes.values())
    winners = [n for n, v in votes.items() if v == top]
    if len(winners) > 1:
        return "reject", "ferplus_tie"
    reasons = {"contempt": "ferplus_contempt", "unknown": "ferplus_unknown", "NF": "ferplus_unknown"}
    return ("reject", reasons[winners[0]]) if winners[0] in reasons else ("label", winners[0])


@pytest.mark.realdata
def test_ferplus_realdata_relabelling(tmp_path):
    src = REALDATA / "fer2013" / "ferplus_fer2013new.head200.csv"
    if not src.exists():
        pytest.skip("../shared/realdata not present")
    plus = [line.split(",") for line in src.read_text().splitlines()[1:]]
    assert len(plus) == 200
    raw = tmp_path / "raw" / "fer2013"
    raw.mkdir(parents=True)
    shutil.copyfile(src, raw / "fer2013new.csv")
    rows = [f"6,{' '.join(str((i + k) % 256) for k in range(2304))},{row[0]}" for i, row in enumerate(plus)]
    (raw / "fer2013.csv").write_text("emotion,pixels,Usage\n" + "\n".join(rows) + "\n")
    built = build_datasets(tmp_path, {"fer2013": {"options": {"ferplus": True}}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "fer2013")
    expected_rejects, expected_golds = {}, {}
    for line, row in enumerate(plus, start=2):
        kind, value = expected_ferplus(row)
        if kind == "reject":
            expected_rejects[line] = value
        else:
            expected_golds[row[1].removesuffix(".png")] = value
    assert built.rejects_at("fer2013/fer2013.csv") == expected_rejects
    not_a_face = [line for line, row in enumerate(plus, start=2) if not row[1]]
    assert not_a_face == [19, 25, 61, 172] and all(expected_rejects[n] == "ferplus_not_a_face" for n in not_a_face)
    assert {r["source"]["source_id"]: r["gold"] for r in built.records.values()} == expected_golds
    assert expected_golds["fer0000007"] == "happiness" and expected_rejects[5] == "ferplus_tie"  # fer0000003: 4/4
