import hashlib
from collections import Counter

import pytest
from helpers import REALDATA, assert_accounting, build_datasets, csv_rows
from split_bands import assert_seeded_splits

from mmaff.data.records import normalise_for_dedup

CSV = "weibo_senti_100k/weibo_senti_100k.csv"
POLARITY = {"0": "negative", "1": "positive"}

# records per split: the test band is ~2.2% of the hash space (registry expected_rows), so few rows here
SIZES_FIXTURE = {"train": 21, "test": 1}
SIZES_REALDATA = {"train": 374, "validation": 5, "test": 9}


def _id(label: str, review: str) -> str:
    return "weibo_senti/zh/SP/" + hashlib.sha1(f"{label}\x1f{review}".encode()).hexdigest()[:16]


def test_weibo_senti_fixture(tmp_path):
    built = build_datasets(tmp_path, {"weibo_senti": {}})
    assert_accounting(built, "weibo_senti")
    first = built.records[_id("1", "今天阳光正好，和朋友去公园野餐[太开心]")]
    assert first["text"] == "今天阳光正好，和朋友去公园野餐[太开心]"  # leading U+FEFF removed
    assert first["gold"] == "positive" and first["messages"][-1]["content"][0]["text"] == "1. positive"
    assert first["source"] == {"file": CSV, "line": 2, "source_id": first["id"].rsplit("/", 1)[1]}
    card = built.records[_id("1", '收到了远方寄来的明信片，上面写着：\n"愿你被这个世界温柔以待"\n好感动[爱你]')]
    assert card["source"]["line"] == 6  # a quoted review over lines 6-8
    assert built.records[_id("1", "早安,新的一周也要加油哦[给力]")]["source"]["line"] == 4
    assert built.records[_id("1", "周末做了一桌子菜，家人都说好吃??")]["source"]["line"] == 11
    negative = built.records[_id("0", "航班延误了五个小时,机场连个说法都没有[怒]")]
    assert negative["gold"] == "negative" and negative["messages"][-1]["content"][0]["text"] == "-1. negative"
    assert built.rejects_at(CSV) == {13: "duplicate_id", 18: "empty_text", 24: "bad_label"}
    n = len(built.records)
    assert n == 22 and built.files("weibo_senti")[CSV]["rows"] == 25
    assert assert_seeded_splits(built, "weibo_senti") == SIZES_FIXTURE
    (tmp_path / "again").mkdir()
    again = build_datasets(tmp_path / "again", {"weibo_senti": {}})
    assert {i: r["split"] for i, r in again.records.items()} == {i: r["split"] for i, r in built.records.items()}


@pytest.mark.realdata
def test_weibo_senti_realdata(tmp_path):
    src = REALDATA / "weibo_senti_100k" / "weibo_senti_100k.subset_200pos_200neg.csv"
    if not src.exists():
        pytest.skip("../shared/realdata not present")
    (tmp_path / "raw" / "weibo_senti_100k").mkdir(parents=True)
    (tmp_path / "raw" / CSV).write_bytes(src.read_bytes())
    built = build_datasets(tmp_path, {"weibo_senti": {}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "weibo_senti")
    rows = csv_rows(src, ["label", "review"])
    assert len(rows) == 400 and built.files("weibo_senti")[CSV]["rows"] == 400
    by_text: dict[str, list[tuple[int, str]]] = {}
    for line, (label, review) in rows:
        by_text.setdefault(normalise_for_dedup(review.replace("\ufeff", "").strip()), []).append((line, label))
    expected = {}
    for group in by_text.values():  # repeated text: all dropped if labels disagree, else the later ones
        conflicting = len({label for _, label in group}) > 1
        for index, (line, _) in enumerate(group):
            if conflicting or index:
                expected[line] = "conflicting_labels" if conflicting else "duplicate_text"
    assert len(expected) == 12  # six negative rows repeat a positive row's text
    assert built.rejects_at(CSV) == expected
    kept = Counter(POLARITY[label] for line, (label, _) in rows if line not in expected)
    assert Counter(r["gold"] for r in built.records.values()) == kept == {"positive": 194, "negative": 194}
    first = next(r for r in built.records.values() if r["source"]["line"] == 2)
    assert rows[0][1][1].startswith("\ufeff") and first["text"] == rows[0][1][1][1:]
    assert all("\ufeff" not in r["text"] for r in built.records.values())
    assert assert_seeded_splits(built, "weibo_senti") == SIZES_REALDATA
    # the file is sorted by label; the seeded split is not
    assert {r["gold"] for r in built.by_split("test") + built.by_split("validation")} == {"positive", "negative"}
