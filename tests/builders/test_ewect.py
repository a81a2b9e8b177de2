import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from helpers import REALDATA, assert_accounting, build_datasets

from mmaff.data.build import SAMPLE_RAW
from mmaff.data.records import normalise_for_dedup

LABELS = {"happy": "happiness", "angry": "anger", "sad": "sadness", "fear": "fear", "surprise": "surprise",
          "neutral": "neutral"}  # fmt: skip
SPLITS = {"train": "train", "eval_labeled": "validation", "test_labeled": "test"}


def test_ewect_fixture(tmp_path):
    built = build_datasets(tmp_path, {"ewect": {}})
    assert_accounting(built, "ewect")
    rec = built.records["ewect/usual/EC/train-1"]
    assert rec["gold"] == "happiness" and rec["split"] == "train" and rec["subset"] == "usual"
    assert rec["text"] == "今天终于把论文交上去了，开心到飞起[哈哈][哈哈]"  # emoji codes kept
    assert rec["messages"][-1]["content"][0]["text"] == "1. happiness"
    assert rec["source"] == {"file": "ewect/usual_train.txt", "line": 1, "source_id": "train-1"}
    assert built.records["ewect/usual/EC/eval-2"]["split"] == "validation"
    assert built.records["ewect/usual/EC/eval-2"]["gold"] == "sadness"
    # leading spaces and the trailing CRLF are stripped
    assert built.records["ewect/usual/EC/test-6"]["text"] == "下午三点开会，地点改到三楼会议室"
    assert built.records["ewect/virus/EC/train-2"]["text"].startswith("希望疫情早点结束//@小明同学:一起祈祷[祈祷]//@")
    assert built.records["ewect/virus/EC/train-6"]["gold"] == "sadness"
    # the first of two items with id 3 is kept (the second is a duplicate_id reject)
    assert built.records["ewect/virus/EC/test-3"]["text"] == "楼下超市的菜价一夜之间涨了一倍"
    assert built.records["ewect/virus/EC/eval-4"]["gold"] == "anger"  # last item before the truncation
    assert built.rejects_at("ewect/usual_train.txt") == {
        3: "train_text_in_eval_split",  # usual_eval item 2 is the same text (plus "！")
        5: "label_not_in_label_set",  # "disgust"
        7: "empty_text",
    }
    assert built.rejects_at("ewect/usual_eval_labeled.txt") == {}
    assert built.rejects_at("ewect/usual_test_labeled.txt") == {2: "bad_json_item", 3: "bad_json_item"}
    assert built.rejects_at("ewect/virus_train.txt") == {}
    assert built.rejects_at("ewect/virus_eval_labeled.txt") == {5: "truncated_json"}
    assert built.rejects_at("ewect/virus_test_labeled.txt") == {4: "duplicate_id"}
    assert Counter(r["split"] for r in built.records.values()) == {"train": 13, "validation": 10, "test": 10}
    assert Counter(r["subset"] for r in built.records.values()) == {"usual": 15, "virus": 18}
    assert len(built.manifest["datasets"]["ewect"]["inputs"]) == 6


def test_ewect_partial_and_missing(tmp_path):
    raw = tmp_path / "raw" / "ewect"
    raw.mkdir(parents=True)
    (tmp_path / "one").mkdir()
    shutil.copyfile(SAMPLE_RAW / "ewect" / "virus_train.txt", raw / "virus_train.txt")
    built = build_datasets(tmp_path / "one", {"ewect": {}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "ewect")
    assert list(built.files("ewect")) == ["ewect/virus_train.txt"]
    assert len(built.records) == 8 and {r["subset"] for r in built.records.values()} == {"virus"}
    (raw / "virus_train.txt").unlink()
    (tmp_path / "none").mkdir()
    built = build_datasets(tmp_path / "none", {"ewect": {}}, raw_root=tmp_path / "raw")
    assert built.manifest["datasets"]["ewect"]["status"] == "missing"


def _expected_rejects(paths: dict[str, Path]) -> dict[str, dict[int, str]]:
    """Same normalised text again in a train file of one subset -> duplicate_text (official eval/test sets stay whole)."""
    seen: dict[str, set[str]] = {"train": set(), "validation": set(), "test": set()}
    expected = {}
    for name, path in paths.items():
        split = SPLITS[name.split("_", 1)[1].removesuffix(".txt")]
        expected[name] = {}
        for number, item in enumerate(json.loads(path.read_text(encoding="utf-8")), start=1):
            norm = normalise_for_dedup(item["content"].strip())
            if split == "train" and norm in seen[split]:
                expected[name][number] = "duplicate_text"
            seen[split].add(norm)
    return expected


@pytest.mark.realdata
def test_ewect_realdata(tmp_path):
    src = REALDATA / "ewect"
    if not src.exists():
        pytest.skip("../shared/realdata not present")
    raw = tmp_path / "raw" / "ewect"
    raw.mkdir(parents=True)
    names = ["usual_eval_labeled.txt", "usual_test_labeled.txt", "virus_eval_labeled.txt", "virus_test_labeled.txt"]
    for name in names:
        (raw / name).write_bytes((src / name).read_bytes())
    built = build_datasets(tmp_path, {"ewect": {}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "ewect")
    files = built.files("ewect")
    expected = _expected_rejects({name: raw / name for name in names})
    assert sum(len(v) for v in expected.values()) == 0  # 15 repeated texts in virus eval/test (武汉加油 ...) are kept
    for name in names:
        items = json.loads((raw / name).read_text(encoding="utf-8"))
        assert files[f"ewect/{name}"]["rows"] == len(items) == 300
        assert built.rejects_at(f"ewect/{name}") == expected[name]
        kept = Counter(LABELS[it["label"]] for n, it in enumerate(items, 1) if n not in expected[name])
        golds = Counter(r["gold"] for r in built.records.values() if r["source"]["file"] == f"ewect/{name}")
        assert golds == kept
    assert Counter(r["split"] for r in built.records.values()) == {"validation": 600, "test": 600}
    assert all("\ufeff" not in r["text"] for r in built.records.values())
