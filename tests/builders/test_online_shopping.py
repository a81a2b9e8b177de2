import hashlib
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from helpers import REALDATA, assert_accounting, build_datasets, csv_rows
from split_bands import assert_seeded_splits

from mmaff.data.build import SAMPLE_RAW, BuildError
from mmaff.data.records import normalise_for_dedup

CSV = "online_shopping_10_cats/online_shopping_10_cats.csv"
ZIP = "online_shopping_10_cats/online_shopping_10_cats.zip"
ZIP_MEMBER = "online_shopping_10_cats/online_shopping_10_cats.zip:online_shopping_10_cats.csv"
FIXTURE_REJECTS = {
    9: "empty_text",
    12: "duplicate_id",
    13: "conflicting_labels",  # same review, labels 1 and 0: both dropped
    14: "conflicting_labels",
    15: "bad_label",
    28: "bad_column_count",
}

# records per split: the test band is ~4.1% of the hash space (registry expected_rows), so few rows here
SIZES_FIXTURE = {"train": 16, "validation": 1, "test": 5}
SIZES_REALDATA = {
    "head300": {"train": 278, "validation": 9, "test": 13},
    "per_cat_label_15rows": {"train": 274, "validation": 13, "test": 13},
}


def _id(cat: str, label: str, review: str) -> str:
    return "online_shopping/zh/SP/" + hashlib.sha1(f"{cat}\x1f{label}\x1f{review}".encode()).hexdigest()[:16]


def _zip_raw(tmp_path: Path, csv_bytes: bytes) -> Path:
    raw = tmp_path / "raw"
    (raw / "online_shopping_10_cats").mkdir(parents=True)
    with zipfile.ZipFile(raw / ZIP, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("online_shopping_10_cats.csv", csv_bytes)
    return raw


def test_online_shopping_fixture(tmp_path):
    built = build_datasets(tmp_path, {"online_shopping": {}})
    assert_accounting(built, "online_shopping")
    first = built.records[_id("书籍", "1", "这本书的插图很精美，孩子每天睡前都要翻一翻")]
    assert first["id"] == "online_shopping/zh/SP/153a524bd106f42e"
    assert first["text"] == "这本书的插图很精美，孩子每天睡前都要翻一翻"  # U+FEFF inside the field removed
    assert first["gold"] == "positive" and first["messages"][-1]["content"][0]["text"] == "1. positive"
    assert first["source"] == {"file": CSV, "line": 2, "source_id": "153a524bd106f42e", "category": "书籍"}
    assert built.records[_id("书籍", "0", "快递很快,但是书角被压坏了")]["gold"] == "negative"
    assert built.records[_id("洗发水", "1", "味道很清香，洗完头发很顺")]["source"]["line"] == 22
    assert built.records[_id("热水器", "0", '用了三个月就漏水了，客服说"人为损坏"，不给保修')]["source"]["line"] == 25
    assert _id("手机", "1", "还行吧") not in built.records  # the conflicting pair is dropped whole
    assert built.rejects_at(CSV) == FIXTURE_REJECTS
    assert len({r["source"]["category"] for r in built.records.values()}) == 10
    n = len(built.records)
    assert n == 22 and built.files("online_shopping")[CSV]["rows"] == 28
    assert assert_seeded_splits(built, "online_shopping") == SIZES_FIXTURE
    (tmp_path / "again").mkdir()
    again = build_datasets(tmp_path / "again", {"online_shopping": {}})
    assert {i: r["split"] for i, r in again.records.items()} == {i: r["split"] for i, r in built.records.items()}


def test_online_shopping_zip(tmp_path):
    csv_bytes = (SAMPLE_RAW / CSV).read_bytes()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_csv = build_datasets(tmp_path / "a", {"online_shopping": {}})
    built = build_datasets(tmp_path / "b", {"online_shopping": {}}, raw_root=_zip_raw(tmp_path, csv_bytes))
    assert_accounting(built, "online_shopping")
    assert list(built.manifest["datasets"]["online_shopping"]["inputs"]) == [ZIP]
    assert list(built.files("online_shopping")) == [ZIP_MEMBER]
    assert built.rejects_at(ZIP_MEMBER) == FIXTURE_REJECTS
    assert {i: (r["split"], r["gold"], r["text"]) for i, r in built.records.items()} == {
        i: (r["split"], r["gold"], r["text"]) for i, r in from_csv.records.items()
    }
    assert all(r["source"]["file"] == ZIP_MEMBER for r in built.records.values())


def test_online_shopping_bad_zip(tmp_path):
    raw = tmp_path / "raw" / "online_shopping_10_cats"
    raw.mkdir(parents=True)
    (raw / "online_shopping_10_cats.zip").write_bytes(b"<html>not found</html>")
    with pytest.raises(BuildError, match="not a readable zip"):
        build_datasets(tmp_path, {"online_shopping": {}}, raw_root=tmp_path / "raw")


@pytest.mark.realdata
@pytest.mark.parametrize("excerpt, as_zip", [("head300", False), ("per_cat_label_15rows", True)])
def test_online_shopping_realdata(tmp_path, excerpt, as_zip):
    src = REALDATA / "online_shopping_10_cats" / f"online_shopping_10_cats.{excerpt}.csv"
    if not src.exists():
        pytest.skip("../shared/realdata not present")
    if as_zip:
        raw_root, rel = _zip_raw(tmp_path, src.read_bytes()), ZIP_MEMBER
    else:
        (tmp_path / "raw" / "online_shopping_10_cats").mkdir(parents=True)
        (tmp_path / "raw" / CSV).write_bytes(src.read_bytes())
        raw_root, rel = tmp_path / "raw", CSV
    built = build_datasets(tmp_path, {"online_shopping": {}}, raw_root=raw_root)
    assert_accounting(built, "online_shopping")
    rows = csv_rows(src, ["cat", "label", "review"])
    assert len(rows) == 300 and built.files("online_shopping")[rel]["rows"] == 300
    assert built.rejects_at(rel) == {}  # no empty review, bad label or repeated text in these excerpts
    assert len({normalise_for_dedup(r[2]) for _, r in rows}) == 300
    assert Counter(r["gold"] for r in built.records.values()) == Counter(
        {"0": "negative", "1": "positive"}[r[1]] for _, r in rows
    )
    assert Counter(r["source"]["category"] for r in built.records.values()) == Counter(r[0] for _, r in rows)
    first = next(r for r in built.records.values() if r["source"]["line"] == 2)
    assert rows[0][1][2].startswith("\ufeff") and first["text"] == rows[0][1][2][1:]
    assert sum("\ufeff" in r for _, (_, _, r) in rows) == (1 if excerpt == "head300" else 20)
    assert all("\ufeff" not in r["text"] for r in built.records.values())
    assert assert_seeded_splits(built, "online_shopping") == SIZES_REALDATA[excerpt]
