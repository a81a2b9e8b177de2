import shutil
from collections import Counter

import pytest
from helpers import assert_accounting, build_datasets, registry_spec
from split_bands import assert_seeded_splits

from data_builders import mms
from mmaff.data.build import SAMPLE_RAW, BuildError
from mmaff.data.builder import BuildContext

PARQUET = "train-00000-of-00001.parquet"
FEATURES = {"negative": 0, "neutral": 1, "positive": 2}


def test_mms_fixture(tmp_path):
    built = build_datasets(tmp_path, {"mms": {}})
    assert_accounting(built, "mms")
    first = built.records["mms/en/SP/7000"]
    assert first["gold"] == "positive" and first["language"] == "en" and first["subset"] == "en"
    assert first["text"] == "The battery lasts all week, very happy with it"
    assert first["messages"][-1]["content"][0]["text"] == "1. positive"
    assert first["source"] == {
        "file": f"mms/data/{PARQUET}",
        "line": 1,
        "source_id": "7000",
        "original_dataset": "fixture_reviews",
        "domain": "products",
        "cleanlab_self_confidence": 0.5,
    }
    assert built.records["mms/en/SP/7003"]["messages"][-1]["content"][0]["text"] == "-1. negative"
    assert built.records["mms/en/SP/7006"]["gold"] == "neutral"
    assert built.records["mms/pl/SP/7090"]["text"] == "Bardzo dobra obsługa i szybka dostawa"
    zh = built.records["mms/zh/SP/7171"]  # row 58 has language "ZH"
    assert zh["language"] == "zh" and zh["source"]["line"] == 58
    assert built.rejects_at(PARQUET) == {
        11: "empty_text",
        12: "label_not_in_label_set",  # label 3
        16: "duplicate_text",  # row 1 again with "!"
        59: "unknown_language",  # ko
    }
    files = built.files("mms")
    assert list(files) == [f"mms/data/{PARQUET}"] and files[f"mms/data/{PARQUET}"]["rows"] == 59
    assert Counter(r["language"] for r in built.records.values()) == {"en": 27, "pl": 10, "de": 8, "ar": 6, "zh": 4}
    # the bands are sized for the release (2.3M en rows); the sample's eval rows have ids chosen to fall in them
    # (make_binary_samples.MMS_EVAL_ROWS)
    assert assert_seeded_splits(built, "mms") == {"train": 43, "validation": 5, "test": 7}
    assert Counter(r["split"] for r in built.records.values() if r["language"] == "en") == {
        "train": 23,
        "validation": 2,
        "test": 2,
    }


def test_mms_rebuild_is_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_datasets(tmp_path / "a", {"mms": {}})
    second = build_datasets(tmp_path / "b", {"mms": {}})
    assert first.manifest["outputs"] == second.manifest["outputs"]
    assert first.records == second.records


def _save_to_disk(path, labels, names=("negative", "neutral", "positive"), num_shards=2):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {
            "_id": datasets.Value("int32"),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=list(names)),
            "original_dataset": datasets.Value("string"),
            "domain": datasets.Value("string"),
            "language": datasets.Value("string"),
        }
    )
    n = len(labels)
    rows = {
        "_id": list(range(1, n + 1)),
        "text": [f"arrow sample sentence number {i}" for i in range(1, n + 1)],
        "label": labels,
        "original_dataset": ["fixture_arrow"] * n,
        "domain": ["tests"] * n,
        "language": ["de" if i % 2 else "en" for i in range(n)],
    }
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(path), num_shards=num_shards)


def test_mms_save_to_disk_layout(tmp_path):
    _save_to_disk(tmp_path / "raw" / "mms", [2, 0, 1, None, 1, 2])
    built = build_datasets(tmp_path, {"mms": {}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "mms")
    files = built.files("mms")
    assert list(files) == ["mms/data-00000-of-00002.arrow", "mms/data-00001-of-00002.arrow"]
    assert [f["rows"] for f in files.values()] == [3, 3]
    assert built.records["mms/en/SP/1"]["gold"] == "positive"
    assert built.records["mms/de/SP/2"]["gold"] == "negative"
    fifth = built.records["mms/en/SP/5"]
    assert fifth["gold"] == "neutral" and fifth["source"]["line"] == 2  # row 2 of the second shard
    assert fifth["source"]["file"] == "mms/data-00001-of-00002.arrow"
    assert built.rejects_at("data-00001-of-00002.arrow") == {1: "label_not_in_label_set"}  # null label
    assert built.manifest["datasets"]["mms"]["inputs"].keys() == files.keys()


def test_mms_refuses_other_label_names(tmp_path):
    _save_to_disk(tmp_path / "raw" / "mms", [0, 1], names=("positive", "neutral", "negative"), num_shards=1)
    with pytest.raises(BuildError, match="label names"):
        build_datasets(tmp_path, {"mms": {}}, raw_root=tmp_path / "raw")


def test_mms_missing_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    raw = tmp_path / "raw"
    (raw / "mms").mkdir(parents=True)
    shutil.copytree(SAMPLE_RAW / "goemotions", raw / "goemotions")
    built = build_datasets(tmp_path, {"mms": {}, "goemotions": {}}, raw_root=raw)
    report = built.manifest["datasets"]["mms"]
    assert report["status"] == "missing"
    assert "no *.parquet or *.arrow" in report["message"] and "Brand24/mms" in report["message"]
    assert built.manifest["datasets"]["goemotions"]["status"] == "built"
    assert not any(r["dataset"] == "mms" for r in built.records.values())


def _context(raw_root, **options):
    spec = registry_spec("mms")
    return BuildContext(spec, raw_root, frozenset({"SP"}), {**spec.options, **options})


def test_mms_hub_stream_fallback(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    (tmp_path / "mms").mkdir()
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def fake_load_dataset(hub_id, split, streaming):
        calls.append((hub_id, split, streaming))
        return iter([{"_id": 5, "text": "streamed row", "label": 0, "language": "fr", "domain": "x"}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    (item,) = list(mms.build(_context(tmp_path)))
    assert calls == [("Brand24/mms", "train", True)]
    assert (item.file, item.line, item.source_id, item.gold, item.language) == (
        "hf://datasets/Brand24/mms",
        1,
        "5",
        "negative",
        "fr",
    )
    assert item.meta == {"domain": "x"}


def test_mms_min_cleanlab_confidence():
    items = list(mms.build(_context(SAMPLE_RAW, min_cleanlab_confidence=0.9)))
    low = [i for i in items if getattr(i, "reason", None) == "low_label_confidence"]
    kept = [i for i in items if hasattr(i, "gold")]
    assert len(items) == 59 and len(low) == 46  # confidences cycle 0.5 .. 0.95; 10 valid rows have >= 0.9
    assert all(i.meta["cleanlab_self_confidence"] >= 0.9 for i in kept)
