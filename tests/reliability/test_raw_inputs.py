"""Raw input robustness: no damaged input crashes the build, and nothing is lost silently.

Each test runs a real builder over a small fixture in its source's official layout (copied from the bundled
sample, then damaged) and checks the exact reject, or the one-line `error: <dataset>: <file>[:<line>]: ...`
the command line prints.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from helpers import build_datasets, write_mixture

from mmaff.data.build import SAMPLE_RAW, main

# ---------------------------------------------------------------- helpers


def _raw(tmp_path: Path, *folders: str) -> Path:
    """A raw root holding copies of the bundled sample's dataset folders."""
    raw = tmp_path / "raw"
    for folder in folders:
        shutil.copytree(SAMPLE_RAW / folder, raw / folder)
    return raw


def _cli(tmp_path: Path, raw: Path, dataset: str, options: dict | None = None) -> int:
    """Run `mmaff.data.build.main` on one dataset; its exit status."""
    mixture = write_mixture(tmp_path / "cli-mixture.yaml", {dataset: options or {}})
    args = ["--raw-root", str(raw), "--out", str(tmp_path / "cli-out"), "--mixture", str(mixture)]
    return main([*args, "--workers", "1", "--no-cache"])


def _one_line_error(capsys: pytest.CaptureFixture, rc: int, dataset: str, file: str) -> str:
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {dataset}: {file}"), lines[0]
    return lines[0]


# ---------------------------------------------------------------- 1. JSON arrays: recover at item boundaries


def _ewect_items(n: int) -> list[dict]:
    labels = ["happy", "angry", "sad", "fear", "surprise", "neutral"]
    return [{"id": i, "content": f"第{i}条微博的内容", "label": labels[i % len(labels)]} for i in range(1, n + 1)]


@pytest.mark.parametrize("indent", [None, 2], ids=["one-line", "pretty-printed"])
def test_corrupt_json_item_costs_only_that_item(tmp_path, indent):
    text = json.dumps(_ewect_items(7), ensure_ascii=False, indent=indent)
    text = text.replace('"第3条微博的内容"', '"第3条微博的内容', 1)  # item 3 loses a closing quote
    text = text[: text.rindex('"label"')]  # and the file is cut short inside item 7
    raw = tmp_path / "raw" / "ewect"
    raw.mkdir(parents=True)
    (raw / "usual_train.txt").write_text(text, encoding="utf-8")
    built = build_datasets(tmp_path, {"ewect": {}}, raw_root=tmp_path / "raw")
    assert sorted(built.records) == [f"ewect/usual/EC/train-{i}" for i in (1, 2, 4, 5, 6)]
    for i in (1, 2, 4, 5, 6):
        record = built.records[f"ewect/usual/EC/train-{i}"]
        assert (record["text"], record["source"]["line"]) == (f"第{i}条微博的内容", i)
    assert built.rejects_at("usual_train.txt") == {3: "bad_json", 7: "truncated_json"}
    reject = built.rejects[0]
    start = text.rindex("{", 0, text.index('"id": 3,'))  # where item 3 begins
    line, column = text.count("\n", 0, start) + 1, start - text.rfind("\n", 0, start)
    assert reject["detail"].startswith(f"item 3 at line {line}, column {column} (char {start})"), reject["detail"]


def test_json_values_that_crash_the_decoder(tmp_path):
    """A number past int's digit limit and absurd nesting raise ValueError / RecursionError, not JSONDecodeError."""
    items = [json.dumps(item, ensure_ascii=False) for item in _ewect_items(4)]
    items[1] = '{"id": 2, "content": "长数字", "label": "sad", "n": ' + "9" * 5000 + "}"
    items[2] = '{"id": 3, "content": "深嵌套", "label": "sad", "n": ' + "[" * 100_000 + "]" * 100_000 + "}"
    raw = tmp_path / "raw"
    (raw / "ewect").mkdir(parents=True)
    (raw / "ewect" / "usual_train.txt").write_text("[" + ", ".join(items) + "]", encoding="utf-8")
    (raw / "synthetic_emotions").mkdir()
    lines = [
        '{"id": "a", "text": "fine", "language": "en", "labels": ["joy"]}',
        '{"id": "b", "text": "big", "language": "en", "labels": [], "n": ' + "9" * 5000 + "}",
        '{"id": "c", "text": "deep", "language": "en", "labels": [], "n": ' + "[" * 100_000 + "}",
        '{"id": "d", "text": "also fine", "language": "en", "labels": ["anger"]}',
    ]
    (raw / "synthetic_emotions" / "part.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    built = build_datasets(tmp_path, {"ewect": {}, "synthetic_emotions": {}}, raw_root=raw)
    assert built.rejects_at("usual_train.txt") == {2: "bad_json", 3: "bad_json"}
    assert built.rejects_at("part.jsonl") == {2: "bad_json", 3: "bad_json"}
    assert {r["source"]["source_id"] for r in built.records.values()} == {"train-1", "train-4", "a", "d"}


# ---------------------------------------------------------------- 2. CSV: a stray quote must not merge rows

ONLINE_SHOPPING_ROWS = [
    ("书籍", "1", "第一本书写得很好"),
    ("书籍", "0", "第二本书印刷很差"),
    ("书籍", "1", '"第三本书引号没有闭合'),  # the stray quote
    ("平板", "0", "第四条评论：屏幕有坏点"),
    ("平板", "1", "第五条评论，速度很快"),
    ("水果", "0", "第六条评论，坏了好几个"),
]


def _online_shopping_csv(rows: list[tuple[str, str, str]]) -> str:
    return "cat,label,review\n" + "".join(f"{c},{label},{review}\n" for c, label, review in rows)


def _assert_rows_kept_apart(built, file: str, rows: list[tuple[str, str]], bad_line: int, polarity: dict) -> None:
    """Every good row is its own record with its own text and label; the bad one is one reject at its line."""
    texts = {r["text"]: r for r in built.records.values()}
    good = [(label, text) for line, (label, text) in enumerate(rows, start=2) if line != bad_line]
    assert len(built.records) == len(good)
    for label, text in good:
        assert texts[text]["gold"] == polarity[label], text
    assert built.rejects_at(file) == {bad_line: "unbalanced_quote"}


def test_stray_csv_quote_is_rejected_at_its_line(tmp_path):
    raw = tmp_path / "raw" / "online_shopping_10_cats"
    raw.mkdir(parents=True)
    (raw / "online_shopping_10_cats.csv").write_text(_online_shopping_csv(ONLINE_SHOPPING_ROWS), encoding="utf-8")
    built = build_datasets(tmp_path, {"online_shopping": {}}, raw_root=tmp_path / "raw")
    rows = [(label, review) for _, label, review in ONLINE_SHOPPING_ROWS]
    _assert_rows_kept_apart(built, "online_shopping_10_cats.csv", rows, 4, {"0": "negative", "1": "positive"})
    for record in built.records.values():  # nobody else's text, label or line
        line = record["source"]["line"]
        assert record["text"] == ONLINE_SHOPPING_ROWS[line - 2][2]


def test_stray_quote_in_a_zip_member(tmp_path):
    raw = tmp_path / "raw" / "online_shopping_10_cats"
    raw.mkdir(parents=True)
    with zipfile.ZipFile(raw / "online_shopping_10_cats.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("online_shopping_10_cats.csv", _online_shopping_csv(ONLINE_SHOPPING_ROWS))
    built = build_datasets(tmp_path, {"online_shopping": {}}, raw_root=tmp_path / "raw")
    assert len(built.records) == 5
    assert built.rejects_at("online_shopping_10_cats.zip:online_shopping_10_cats.csv") == {4: "unbalanced_quote"}


def test_stray_quote_where_reviews_may_span_lines(tmp_path):
    """weibo_senti reviews may hold newlines: a real multi-line review stays one record, but a stray quote whose
    field would swallow whole rows (`0,...` lines) is rejected, and the rows after it are read."""
    rows = [
        ("1", "第一条，很开心"),
        ("1", '"第二条\n有两行"'),  # a genuine multi-line review (lines 3-4)
        ("0", '"第三条引号没有闭合'),  # line 5: stray quote
        ("0", "第四条，很难过"),
        ("1", '第五条结尾有引号"'),  # would close the stray quote without any CSV error
        ("0", "第六条"),
    ]
    raw = tmp_path / "raw" / "weibo_senti_100k"
    raw.mkdir(parents=True)
    body = "label,review\n" + "".join(f"{label},{review}\n" for label, review in rows)
    (raw / "weibo_senti_100k.csv").write_text(body, encoding="utf-8")
    built = build_datasets(tmp_path, {"weibo_senti": {}}, raw_root=tmp_path / "raw")
    texts = {r["text"]: (r["gold"], r["source"]["line"]) for r in built.records.values()}
    assert texts == {
        "第一条，很开心": ("positive", 2),
        "第二条\n有两行": ("positive", 3),
        "第四条，很难过": ("negative", 6),
        '第五条结尾有引号"': ("positive", 7),
        "第六条": ("negative", 8),
    }
    assert built.rejects_at("weibo_senti_100k.csv") == {5: "unbalanced_quote"}


def test_stray_quote_in_a_tsv(tmp_path):
    raw = _raw(tmp_path, "goemotions")
    rows = ["first comment\t27\tc1", '"second comment opens a quote\t15\tc2', "third comment\t2\tc3", 'fourth"\t6\tc4']
    (raw / "goemotions" / "train.tsv").write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    built = build_datasets(tmp_path, {"goemotions": {}}, raw_root=raw)
    train = {
        r["source"]["source_id"]: r["text"] for r in built.records.values() if r["source"]["file"].endswith("n.tsv")
    }
    assert train == {"c1": "first comment", "c3": "third comment", "c4": 'fourth"'}
    assert built.rejects_at("goemotions/train.tsv") == {2: "unbalanced_quote"}


# ---------------------------------------------------------------- 3. empty files and empty ids

EMPTY_HEADER_FILES = [
    ("weibo_senti", "weibo_senti_100k", "weibo_senti_100k.csv", "expected header ['label', 'review']"),
    ("online_shopping", "online_shopping_10_cats", "online_shopping_10_cats.csv", "expected header ['cat'"),
    ("chsims", "chsims", "label.csv", "expected header ['video_id'"),
    ("goemotions", "goemotions", "train.tsv", "empty file"),
    ("samsemo", "samsemo", "samsemo.tsv", "empty file"),
]


@pytest.mark.parametrize(
    ("dataset", "folder", "name", "says"), EMPTY_HEADER_FILES, ids=[d[0] for d in EMPTY_HEADER_FILES]
)
def test_zero_byte_file_is_a_clear_error(tmp_path, capsys, dataset, folder, name, says):
    raw = _raw(tmp_path, folder)
    (raw / folder / name).write_bytes(b"")
    rc = _cli(tmp_path, raw, dataset)
    line = _one_line_error(capsys, rc, dataset, f"{folder}/{name}: empty file")
    assert says in line


def test_empty_source_id_is_rejected_per_record(tmp_path):
    raw = _raw(tmp_path, "goemotions")
    path = raw / "goemotions" / "train.tsv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\t"  # line 3 loses its comment id
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    built = build_datasets(tmp_path, {"goemotions": {}}, raw_root=raw)
    assert built.rejects_at("goemotions/train.tsv")[3] == "empty_source_id"
    assert not [i for i in built.records if i.endswith("/")]


# ---------------------------------------------------------------- 4. decompression bombs


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png(width: int, height: int) -> bytes:
    """A tiny file claiming a huge 1-bit greyscale PNG: PIL reads the size from IHDR before any pixel data."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", zlib.compress(bytes(16))) + _png_chunk(b"IEND", b"")


def test_huge_images_are_rejected_not_fatal(tmp_path):
    raw = _raw(tmp_path, "cfaps")
    (raw / "cfaps" / "1anger" / "male" / "AM2.png").write_bytes(_huge_png(20_000, 20_000))  # PIL: error
    (raw / "cfaps" / "3fear" / "male" / "FM1.png").write_bytes(_huge_png(10_000, 10_000))  # PIL: warning
    built = build_datasets(tmp_path, {"cfaps": {}}, raw_root=raw)
    for name, pixels in (("1anger/male/AM2.png", 400_000_000), ("3fear/male/FM1.png", 100_000_000)):
        rejects = [r for r in built.rejects if r["file"] == f"cfaps/{name}"]
        assert [(r["line"], r["reason"]) for r in rejects] == [(1, "too_large_image")], rejects
        assert str(pixels) in rejects[0]["detail"] and "limit" in rejects[0]["detail"]
    assert len(built.records) > 10  # the rest of the dataset is built


def test_huge_image_read_by_a_builder(tmp_path):
    """EMOTIC decodes its images itself (to draw the person's box): same reject there."""
    raw = _raw(tmp_path, "emotic")
    (raw / "emotic" / "emotic" / "mscoco" / "images" / "COCO_fx_0001.jpg").write_bytes(_huge_png(20_000, 20_000))
    built = build_datasets(tmp_path, {"emotic": {}}, raw_root=raw)
    reasons = {r["reason"] for r in built.rejects if "COCO_fx_0001" in r["excerpt"]}
    assert reasons == {"too_large_image"}
    assert built.records


# ---------------------------------------------------------------- 5. damaged containers: one-line errors


def _random_bytes(n: int) -> bytes:
    return random.Random(7).randbytes(n)


def _damage(mode: str, data: bytes) -> bytes:
    return {"zero-byte": b"", "truncated": data[: len(data) // 2], "random": _random_bytes(4096)}[mode]


def test_zero_byte_mat_file(tmp_path, capsys):
    raw = _raw(tmp_path, "emotic")
    (raw / "emotic" / "Annotations" / "Annotations.mat").write_bytes(b"")
    rc = _cli(tmp_path, raw, "emotic")
    _one_line_error(capsys, rc, "emotic", "emotic/Annotations/Annotations.mat: not a readable .mat file")


@pytest.mark.parametrize("mode", ["zero-byte", "truncated", "random", "corrupt-page"])
def test_damaged_parquet_file(tmp_path, capsys, mode):
    raw = _raw(tmp_path, "mms")
    path = raw / "mms" / "data" / "train-00000-of-00001.parquet"
    data = path.read_bytes()
    damaged = data[:2000] + bytes(500) + data[2500:] if mode == "corrupt-page" else _damage(mode, data)
    path.write_bytes(damaged)
    rc = _cli(tmp_path, raw, "mms")
    line = _one_line_error(capsys, rc, "mms", "mms/data/train-00000-of-00001.parquet")
    assert "not a readable parquet file" in line


def test_corrupt_zip_member(tmp_path, capsys):
    raw = tmp_path / "raw" / "online_shopping_10_cats"
    raw.mkdir(parents=True)
    csv_text = (SAMPLE_RAW / "online_shopping_10_cats" / "online_shopping_10_cats.csv").read_bytes() * 20
    path = raw / "online_shopping_10_cats.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("online_shopping_10_cats.csv", csv_text)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)  # inside the compressed member
    path.write_bytes(bytes(data))
    rc = _cli(tmp_path, tmp_path / "raw", "online_shopping")
    line = _one_line_error(
        capsys,
        rc,
        "online_shopping",
        "online_shopping_10_cats/online_shopping_10_cats.zip:online_shopping_10_cats.csv",
    )
    assert "damaged zip member" in line


def test_undecodable_label_names_file(tmp_path, capsys):
    raw = _raw(tmp_path, "goemotions")
    (raw / "goemotions" / "emotions.txt").write_bytes(b"admiration\n\xff\xfeamusement\n")
    rc = _cli(tmp_path, raw, "goemotions")
    _one_line_error(capsys, rc, "goemotions", "goemotions/emotions.txt: not UTF-8")
