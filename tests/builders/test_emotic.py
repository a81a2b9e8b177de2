import csv
import io
import shutil

import numpy as np
import pytest
from helpers import assert_accounting, build_datasets, registry_spec
from PIL import Image

from data_builders import emotic
from mmaff.data.build import SAMPLE_RAW
from mmaff.data.builder import BuildContext
from mmaff.data.rawio import MissingData, RawFormatError

SAMPLE = SAMPLE_RAW / "emotic"
MAT = "emotic/Annotations/Annotations.mat"


@pytest.fixture(scope="module")
def fixture_build(tmp_path_factory):
    return build_datasets(tmp_path_factory.mktemp("emotic"), {"emotic": {}})


def _rejects(built, suffix):
    return sorted((r["line"], r["reason"], r["excerpt"]) for r in built.rejects if r["file"].endswith(suffix))


def _red(pixel):
    r, g, b = (int(v) for v in pixel)
    return r > 190 and g < 70 and b < 70


def test_emotic_mat_golds_ids_splits(fixture_build):
    built = fixture_build
    assert_accounting(built, "emotic")
    ec = {rid: (r["split"], r["gold"]) for rid, r in built.records.items() if r["subtask"] == "EC"}
    assert ec == {
        "emotic/zxx/EC/mscoco-COCO_fx_0001-p1": ("train", ["happiness", "peace", "affection"]),
        "emotic/zxx/EC/mscoco-COCO_fx_0001-p2": ("train", ["engagement"]),  # a bare string, not a cell
        "emotic/zxx/EC/emodb_small-fx_0003-p1": ("train", ["disquietment", "doubt/confusion"]),  # "Disquitement"
        "emotic/zxx/EC/mscoco-COCO_fx_0002-p3": ("train", ["sadness", "fatigue"]),  # label-set order
        "emotic/zxx/EC/emodb_small-fx_0004-p1": ("validation", ["sadness", "suffering"]),  # combined, not union
        "emotic/zxx/EC/mscoco-COCO_fx_0005-p1": ("test", ["happiness", "excitement"]),
        "emotic/zxx/EC/mscoco-COCO_fx_0005-p2": ("test", ["anticipation"]),
        "emotic/zxx/EC/emodb_small-fx_0006-p1": ("test", ["fear", "surprise"]),  # no combined: union
    }
    vad = {rid.split("/")[-1]: r["gold"] for rid, r in built.records.items() if r["subtask"] == "VAD"}
    assert vad == {
        "mscoco-COCO_fx_0001-p1": {"valence": 0.5556, "arousal": -0.3333, "dominance": 0.1111},  # 8, 4, 6
        "mscoco-COCO_fx_0001-p2": {"valence": -0.1111, "arousal": -0.1111, "dominance": -0.1111},  # 5, 5, 5
        "mscoco-COCO_fx_0002-p3": {"valence": -0.5556, "arousal": -0.7778, "dominance": -0.3333},  # 3, 2, 4
        "emodb_small-fx_0004-p1": {"valence": -0.7778, "arousal": 0.3333, "dominance": -0.5556},  # combined 2, 7, 3
        "mscoco-COCO_fx_0005-p1": {"valence": 0.7778, "arousal": 0.5556, "dominance": 0.3333},  # 9, 8, 7
        "mscoco-COCO_fx_0005-p2": {"valence": 0.1111, "arousal": -0.1111, "dominance": 1.0},  # 6, 5, 10
        "emodb_small-fx_0006-p1": {"valence": -0.2222, "arousal": 0.6667, "dominance": -0.5556},  # mean 4.5, 8.5, 3
    }
    nan_person = built.records["emotic/zxx/EC/emodb_small-fx_0003-p1"]
    assert nan_person["source"]["vad"] == "missing" and "emotic/zxx/VAD/emodb_small-fx_0003-p1" not in built.records
    first = built.records["emotic/zxx/EC/mscoco-COCO_fx_0001-p1"]
    assert first["source"] == {
        "file": f"{MAT}:train",
        "line": 1,
        "source_id": "mscoco-COCO_fx_0001-p1",
        "image": "mscoco/images/COCO_fx_0001.jpg",
        "person": 1,
        "box": [10, 8, 50, 60],
        "labels_from": "annotator",
        "gender": "Female",
        "age": "Adult",
    }
    assert first["images"] == ["media/emotic/generated/train/mscoco-COCO_fx_0001-p1.jpg"]
    assert first["language"] == "zxx" and first["text"] is None
    assert first["messages"][-1]["content"][0]["text"] == "1. happiness, 8. peace, 9. affection"
    labels_from = {r["source"]["source_id"]: r["source"]["labels_from"] for r in built.records.values()}
    assert (
        labels_from["emodb_small-fx_0004-p1"] == "combined" and labels_from["emodb_small-fx_0006-p1"] == "annotators"
    )
    derived = built.records["emotic/zxx/VAD/mscoco-COCO_fx_0001-p1"]
    assert derived["source"]["derived"] is True and derived["images"] == first["images"]
    assert derived["messages"][-2]["content"][0] == {"type": "image"}
    assert (
        "emotional state of the target person (in the red box, or the person the image is cropped to)"
        in derived["messages"][-2]["content"][1]["text"]
    )
    assert derived["messages"][-1]["content"][0]["text"] == "valence: 0.56, arousal: -0.33, dominance: 0.11"
    assert derived["media"] == [{"kind": "image", "width": 96, "height": 72, "tokens": derived["visual_tokens"]}]


def test_emotic_mat_rejects_and_accounting(fixture_build):
    built = fixture_build
    # .mat rejects: line = 1-based image entry within its split; persons of one entry share it
    assert [(line, reason) for line, reason, _ in _rejects(built, "Annotations.mat:train")] == [
        (3, "bbox_outside_image"),  # person 1: box right of the 120x90 image
        (3, "label_not_in_label_set"),  # person 2: "Boredom"
        (4, "missing_media"),  # image not on disk
    ]
    assert built.rejects_at("Annotations.mat:test") == {2: "no_label"}  # annotators chose no category
    assert built.rejects_at("Annotations.mat:val") == {}
    files = built.files("emotic")
    assert files[f"{MAT}:train"] == {
        "rows": 7, "written": 4, "capped": 0, "held_out": 0, "excluded_subtask": 0, "derived_written": 3, "derived_rejected": 0,
        "rejected": {"bbox_outside_image": 1, "label_not_in_label_set": 1, "missing_media": 1},
    }  # fmt: skip
    assert files[f"{MAT}:test"]["rows"] == 4 and files[f"{MAT}:val"]["rows"] == 1
    assert set(built.manifest["datasets"]["emotic"]["inputs"]) == {MAT}


def test_emotic_red_box_pixels(fixture_build):
    built = fixture_build
    record = built.records["emotic/zxx/EC/mscoco-COCO_fx_0001-p1"]
    image = np.asarray(Image.open(built.out / record["images"][0]).convert("RGB"))
    assert image.shape == (72, 96, 3)  # the full picture; box [10, 8, 50, 60], line width max(2, 72 // 100) = 2
    for x, y in [(10, 30), (11, 30), (49, 30), (48, 30), (30, 8), (30, 9), (30, 59), (30, 58)]:
        assert _red(image[y, x]), (x, y, image[y, x])
    for x, y in [(30, 30), (13, 30), (46, 30), (5, 30), (55, 30), (30, 4), (30, 64)]:
        assert not _red(image[y, x]), (x, y, image[y, x])
    # away from the box the picture is the source (up to JPEG re-encoding)
    source = np.asarray(Image.open(SAMPLE / "emotic/mscoco/images/COCO_fx_0001.jpg").convert("RGB"))
    assert np.abs(image[:, 60:].astype(int) - source[:, 60:]).mean() < 4
    # person 2's box [70, 30, 110, 80] is clipped to the 96x72 image: right and bottom edges on the border
    clipped = np.asarray(Image.open(built.out / "media/emotic/generated/train/mscoco-COCO_fx_0001-p2.jpg"))
    for x, y in [(70, 50), (95, 50), (94, 50), (80, 30), (80, 71), (80, 70)]:
        assert _red(clipped[y, x]), (x, y, clipped[y, x])
    assert not _red(clipped[50, 80])


def test_emotic_generated_images_are_deterministic(fixture_build, tmp_path):
    again = build_datasets(tmp_path, {"emotic": {}})
    generated = sorted((fixture_build.out / "media/emotic/generated").rglob("*.jpg"))
    assert len(generated) == 8  # one per written person; rejected persons leave no file
    for path in generated:
        assert (again.out / path.relative_to(fixture_build.out)).read_bytes() == path.read_bytes(), path.name
    # the bytes are exactly the box drawn on the decoded source, saved with the fixed JPEG options
    with Image.open(SAMPLE / "emotic/mscoco/images/COCO_fx_0001.jpg") as source:
        expected = io.BytesIO()
        emotic.target_image(source.convert("RGB"), (10, 8, 50, 60), "box").save(expected, **emotic.JPEG_OPTIONS)
    assert (fixture_build.out / "media/emotic/generated/train/mscoco-COCO_fx_0001-p1.jpg").read_bytes() == (
        expected.getvalue()
    )


def test_emotic_crop_option(tmp_path):
    built = build_datasets(tmp_path, {"emotic": {"options": {"person": "crop"}}})
    assert_accounting(built, "emotic")
    record = built.records["emotic/zxx/EC/mscoco-COCO_fx_0001-p1"]
    crop = np.asarray(Image.open(built.out / record["images"][0]).convert("RGB"))
    # box [10, 8, 50, 60] (40x52) with a 10% margin: x 6..54, y 3..65
    assert crop.shape == (62, 48, 3)
    assert not any(_red(p) for p in crop.reshape(-1, 3))
    source = np.asarray(Image.open(SAMPLE / "emotic/mscoco/images/COCO_fx_0001.jpg").convert("RGB"))
    assert np.abs(crop.astype(int) - source[3:65, 6:54]).mean() < 4
    clipped = Image.open(built.out / "media/emotic/generated/train/mscoco-COCO_fx_0001-p2.jpg")
    assert clipped.size == (29, 46)  # box clipped to [70, 30, 96, 72], margin 3 / 4, clipped again: x 67..96, y 26..72
    assert {r["subtask"] for r in built.records.values()} == {"EC", "VAD"}


def test_emotic_vad_only(tmp_path):
    built = build_datasets(tmp_path, {"emotic": {"subtasks": ["VAD"]}})
    assert_accounting(built, "emotic")
    assert {r["subtask"] for r in built.records.values()} == {"VAD"} and len(built.records) == 7
    assert built.files("emotic")[f"{MAT}:train"]["excluded_subtask"] == 4


CSV_HEADER = [
    "Index",
    "Folder",
    "Filename",
    "Image Size",
    "BBox",
    "Categorical_Labels",
    "Continuous_Labels",
    "Gender",
    "Age",
]


def _csv(path, rows, header=CSV_HEADER):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, dialect="excel")
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def csv_raw(tmp_path):
    """The mat2py CSV conversion, with images directly under <db>/images (no emotic/ level)."""
    raw = tmp_path / "raw" / "emotic"
    shutil.copytree(SAMPLE / "emotic", raw)
    train = [
        [0, "mscoco/images", "COCO_fx_0001.jpg", "[96, 72]", "[10, 8, 50, 60]", "['Happiness', 'Peace']", "[8, 4, 6]", "Female", "Adult"],
        [1, "mscoco/images", "COCO_fx_0001.jpg", "[96, 72]", "[70, 30, 110, 80]", "['Engagement']", "[nan, 5, 5]", "Male", "Adult"],
        [2, "mscoco/images", "COCO_fx_0002.jpg", "[120, 90]", "[20, 10, 100, 85]", "['Boredom']", "[3, 2, 4]", "Male", "Adult"],
        [3, "mscoco/images", "COCO_fx_0002.jpg", "[120, 90]", "[5, 5, 2, 2]", "['Fatigue']", "[3, 2, 4]", "Male", "Adult"],
        [4, "emodb_small/images", "fx_0003.jpg", "[64, 48]", "[4, 4, 40, 44]", "__import__('os')", "[5, 5, 5]", "Male", "Adult"],
        [5, "emodb_small/images", "fx_0003.jpg", "[64, 48]"],
        [6, "emodb_small/images", "fx_0003.jpg", "[64, 48]", "[4, 4, 40, 44]", "['Disquitement']", "[5, 5, 11]", "Male", "Adult"],
    ]  # fmt: skip
    _csv(raw / "train.csv", train)
    val = [["0", 0, "emodb_small/images", "fx_0004.jpg", "[80, 60]", "[8, 6, 60, 56]", "['Sadness', 'Suffering']", "[2.0, 7.0, 3.0]", "Male", "Kid"]]  # fmt: skip
    _csv(raw / "val.csv", val, header=["", *CSV_HEADER])  # pandas to_csv adds an unnamed index column
    test = [[0, "mscoco/images", "COCO_fx_0005.jpg", "[100, 75]", "[5, 5, 45, 70]", "['Excitement', 'Happiness']", "[9, 8, 7]", "Male", "Kid"]]  # fmt: skip
    _csv(raw / "test.csv", test)
    return tmp_path / "raw"


def test_emotic_csv_conversion(tmp_path, csv_raw):
    built = build_datasets(tmp_path, {"emotic": {}}, raw_root=csv_raw)
    assert_accounting(built, "emotic")
    golds = {rid: (r["split"], r["gold"]) for rid, r in built.records.items()}
    assert golds == {
        "emotic/zxx/EC/mscoco-COCO_fx_0001-p1": ("train", ["happiness", "peace"]),
        "emotic/zxx/VAD/mscoco-COCO_fx_0001-p1": ("train", {"valence": 0.5556, "arousal": -0.3333, "dominance": 0.1111}),
        "emotic/zxx/EC/mscoco-COCO_fx_0001-p2": ("train", ["engagement"]),  # nan valence: no VAD record
        "emotic/zxx/EC/emodb_small-fx_0003-p2": ("train", ["disquietment"]),  # p2: the image's 2nd readable row
        "emotic/zxx/EC/emodb_small-fx_0004-p1": ("validation", ["sadness", "suffering"]),
        "emotic/zxx/VAD/emodb_small-fx_0004-p1": ("validation", {"valence": -0.7778, "arousal": 0.3333, "dominance": -0.5556}),
        "emotic/zxx/EC/mscoco-COCO_fx_0005-p1": ("test", ["happiness", "excitement"]),
        "emotic/zxx/VAD/mscoco-COCO_fx_0005-p1": ("test", {"valence": 0.7778, "arousal": 0.5556, "dominance": 0.3333}),
    }  # fmt: skip
    assert built.records["emotic/zxx/EC/mscoco-COCO_fx_0001-p2"]["source"]["vad"] == "missing"
    assert built.records["emotic/zxx/EC/emodb_small-fx_0003-p2"]["source"]["vad"] == "out_of_range"
    assert built.records["emotic/zxx/EC/mscoco-COCO_fx_0001-p1"]["source"]["labels_from"] == "csv"
    assert built.rejects_at("emotic/train.csv") == {
        4: "label_not_in_label_set",
        5: "bad_bbox",
        6: "bad_label",  # never evaluated: ast.literal_eval only
        7: "bad_column_count",
    }
    assert set(built.manifest["datasets"]["emotic"]["inputs"]) == {
        "emotic/train.csv",
        "emotic/val.csv",
        "emotic/test.csv",
    }


def test_emotic_mat_preferred_over_csv(tmp_path, csv_raw):
    (csv_raw / "emotic" / "Annotations").mkdir()
    shutil.copyfile(SAMPLE / "Annotations" / "Annotations.mat", csv_raw / "emotic" / "Annotations" / "Annotations.mat")
    built = build_datasets(tmp_path, {"emotic": {}}, raw_root=csv_raw)
    assert set(built.manifest["datasets"]["emotic"]["inputs"]) == {MAT}
    assert len([r for r in built.records.values() if r["subtask"] == "EC"]) == 8


def _context(raw_root, tmp_path, **options):
    return BuildContext(registry_spec("emotic"), raw_root, frozenset({"EC", "VAD"}), options, stage=tmp_path / "stage")


def test_emotic_missing_and_bad_option(tmp_path):
    (tmp_path / "raw" / "emotic").mkdir(parents=True)
    with pytest.raises(MissingData, match="Annotations.mat"):
        list(emotic.build(_context(tmp_path / "raw", tmp_path)))
    with pytest.raises(ValueError, match="box' or 'crop"):
        list(emotic.build(_context(SAMPLE_RAW, tmp_path, person="outline")))


def test_emotic_helpers():
    labels = registry_spec("emotic").subtasks["EC"].label_set.labels
    assert emotic.map_categories(["Yearning", "Doubt/Confusion", "Happiness", "happiness"], labels) == (
        ["happiness", "doubt/confusion", "yearning"],
        [],
    )
    assert emotic.map_categories(["Boredom"], labels) == ([], ["Boredom"])
    assert emotic.rescale_vad((1, 10, 5.5)) == ({"valence": -1.0, "arousal": 1.0, "dominance": 0.0}, None)
    assert emotic.rescale_vad((float("nan"), 5, 5)) == (None, "missing")
    assert emotic.rescale_vad(None) == (None, "missing")
    assert emotic.rescale_vad((0, 5, 5)) == (None, "out_of_range")
    assert emotic.clip_box([-5, -5, 20, 30], 64, 48) == (0, 0, 20, 30)
    assert emotic.clip_box([10.4, 10.6, 20, 30], 64, 48) == (10, 11, 20, 30)
    assert emotic.clip_box([70, 0, 90, 10], 64, 48) == "bbox_outside_image"
    assert emotic.clip_box([10, 10, 10, 30], 64, 48) == "bad_bbox"
    assert emotic.clip_box([1, 2, 3], 64, 48) == "bad_bbox"
    assert emotic.clip_box("[1, 2, 3, x]", 64, 48) == "bad_bbox"
    assert emotic.box_width(64, 48) == 2 and emotic.box_width(1200, 800) == 8
    assert emotic.source_id("ade20k/images/train", "a b.jpg", 2) == "ade20k-a_b-p2"


def _struct_array(records):
    array = np.zeros((1, len(records)), dtype=[(name, object) for name in records[0]])
    for i, record in enumerate(records):
        for name, value in record.items():
            array[0, i][name] = value
    return array


def test_emotic_malformed_mat(tmp_path):
    from scipy.io import savemat

    raw = tmp_path / "raw" / "emotic"
    shutil.copytree(SAMPLE / "emotic", raw / "emotic")
    (raw / "Annotations").mkdir()
    good = {"body_bbox": np.array([1.0, 1, 30, 30]), "annotations_categories": {"categories": "Peace"}}
    good["annotations_continuous"] = {"valence": np.zeros((0, 0)), "arousal": 5, "dominance": 5}  # [] valence
    no_field = {"body_bbox": np.array([1.0, 1, 30, 30]), "annotations_categories": {"labels": "Peace"}}
    no_field["annotations_continuous"] = {"valence": 5, "arousal": 5, "dominance": 5}
    entries = [
        {"filename": "fx_0003.jpg", "folder": "emodb_small/images", "person": _struct_array([good])},
        {"filename": "fx_0003.jpg", "folder": 7.0, "person": _struct_array([good])},  # folder not a string
        {"filename": "fx_0004.jpg", "folder": "emodb_small/images", "person": np.zeros((0, 0))},  # no person
        {"filename": "fx_0006.jpg", "folder": "emodb_small/images", "person": _struct_array([no_field])},
    ]
    savemat(raw / "Annotations" / "Annotations.mat", {"train": _struct_array(entries)})
    built = build_datasets(tmp_path, {"emotic": {}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "emotic")
    assert built.rejects_at("Annotations.mat:train") == {2: "bad_annotation", 3: "no_person", 4: "bad_annotation"}
    record = built.records["emotic/zxx/EC/emodb_small-fx_0003-p1"]
    assert record["gold"] == ["peace"] and record["source"]["vad"] == "missing"
    (raw / "Annotations" / "Annotations.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(RawFormatError, match="Annotations.mat"):
        list(emotic.build(_context(tmp_path / "raw", tmp_path)))
