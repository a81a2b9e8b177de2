import hashlib
from collections import Counter

import pytest
from helpers import REALDATA, assert_accounting, build_datasets
from split_bands import assert_seeded_splits

BUILDER_REASONS = {
    "blank_line",
    "opus_alignment_line",
    "bad_column_count",
    "bad_label",
    "empty_text",
    "missing_text",
    "unknown_language",
    "undecodable_bytes",
}


def xid(subset, language, text):
    return f"xed/{subset}/EC/{language}-{hashlib.sha1(text.encode()).hexdigest()[:16]}"


def answer(record):
    return record["messages"][-1]["content"][0]["text"]


def test_xed_fixture(tmp_path):
    built = build_datasets(tmp_path, {"xed": {}})
    assert_accounting(built, "xed")
    rec = built.records[xid("annotated", "en", "Get out of my house right now!")]
    assert rec["gold"] == ["anger"] and answer(rec) == "3. anger" and rec["subset"] == "annotated"
    assert rec["source"] == {
        "file": "xed/AnnotatedData/en-annotated.tsv",
        "line": 1,
        "source_id": rec["id"].rsplit("/", 1)[1],
    }
    won = built.records[xid("annotated", "en", "We won the cup, we actually won!")]
    assert won["gold"] == ["joy", "surprise", "trust"] and answer(won) == "1. joy, 5. surprise, 8. trust"
    quoted = built.records[xid("annotated", "en", 'He kept saying "tomorrow" and never showed up.')]
    assert quoted["gold"] == ["sadness", "anger"] and quoted["source"]["line"] == 9
    assert built.records[xid("annotated", "en", "Well, that went better than expected.")]["gold"] == [
        "joy",
        "surprise",
    ]
    assert built.records[xid("annotated", "fi", "Me voitimme!")]["language"] == "fi"
    neutral = built.records[xid("neutral", "en", "The train leaves at seven.")]
    assert neutral["gold"] == [] and answer(neutral) == "0. neutral" and neutral["subset"] == "neutral"
    fi_neutral = built.records[xid("neutral", "fi", "Se on toisella hyllyllä.")]
    assert fi_neutral["gold"] == [] and fi_neutral["source"]["line"] == 3
    assert (fi_neutral["source"]["xed_id"], fi_neutral["source"]["opus_line"]) == ("5310", "77")
    assert fi_neutral["source"]["opus_file"] == "fi/1988/33333/4444444.xml.gz"
    de = built.records[xid("projections", "de", 'Er sagte "morgen" und kam nie.')]
    assert de["gold"] == ["sadness", "anger"] and de["subset"] == "projections"
    assert built.records[xid("projections", "tr", "Kazandık!")]["source"]["line"] == 6  # header is line 1
    assert built.records[xid("projections", "en", "Look who decided to show up.")]["gold"] == ["anger", "surprise"]

    assert built.rejects_at("en-annotated.tsv") == {
        13: "duplicate_id",  # line 1 again (same sentence, same content id)
        15: "empty_text",
        20: "bad_label",  # "0"
        24: "bad_column_count",
    }
    assert built.rejects_at("neu_en.txt") == {
        4: "blank_line",  # the empty 5-column line
        6: "duplicate_text",  # line 2 again, in other case and punctuation
        7: "bad_label",  # neutral code "nine"
    }
    assert built.rejects_at("en-projections.tsv") == {
        4: "bad_column_count",  # single column
        5: "opus_alignment_line",
        6: "opus_alignment_line",
        7: "opus_alignment_line",
        9: "bad_label",  # "3; 6"
        11: "duplicate_text",  # line 8 with "!"
    }
    assert built.rejects_at("tr-projections2.tsv") == {7: "missing_text"}  # pandas' "nan"
    files = built.files("xed")
    assert files["xed/Projections/tr-projections2.tsv"]["rows"] == 8  # 9 lines less the header
    assert "xed/Projections/tr-projections.tsv" not in files  # older copy, skipped
    assert "xed/Projections/tr-projections.tsv" not in built.manifest["datasets"]["xed"]["inputs"]
    assert {f: s["rows"] for f, s in files.items() if "AnnotatedData" in f} == {
        "xed/AnnotatedData/en-annotated.tsv": 25,
        "xed/AnnotatedData/fi-annotated.tsv": 10,
        "xed/AnnotatedData/neu_en.txt": 8,
        "xed/AnnotatedData/neu_fi.txt": 5,
    }
    assert Counter(r["language"] for r in built.records.values()) == {
        "en": 32,
        "fi": 15,
        "de": 10,
        "es": 10,
        "ar": 10,
        "tr": 7,
    }
    assert_seeded_splits(built, "xed")


def test_xed_rebuild_is_deterministic(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = build_datasets(tmp_path / "a", {"xed": {}})
    second = build_datasets(tmp_path / "b", {"xed": {}})
    assert first.manifest["outputs"] == second.manifest["outputs"]
    assert first.records == second.records


def _lines(path):
    return path.read_bytes().decode("utf-8").replace("\r\n", "\n").split("\n")[:-1]


@pytest.mark.realdata
def test_xed_realdata(tmp_path):
    src = REALDATA / "xed"
    if not src.exists():
        pytest.skip("../shared/realdata not present")
    built = build_datasets(tmp_path, {"xed": {}}, raw_root=REALDATA)
    assert_accounting(built, "xed")
    files = built.files("xed")
    expected = {f"xed/{p.relative_to(src).as_posix()}": len(_lines(p)) for p in sorted(src.rglob("*")) if p.is_file()}
    assert {f: s["rows"] for f, s in files.items()} == expected

    lines = _lines(src / "Projections" / "en-projections.tsv")
    alignment = {
        n for n, line in enumerate(lines, 1) if len(line.split("\t")) == 6 and line.split("\t")[0].endswith(".xml.gz")
    }
    single = {n for n, line in enumerate(lines, 1) if len(line.split("\t")) == 1}
    assert len(alignment) > 200 and single
    rejects = built.rejects_at("en-projections.tsv")
    assert {n for n, r in rejects.items() if r == "opus_alignment_line"} == alignment
    assert {n for n, r in rejects.items() if r == "bad_column_count"} == single
    assert not {r for n, r in rejects.items() if n not in alignment | single} & BUILDER_REASONS  # the rest parse
    for name in ("ar", "de", "es", "zh"):
        assert not set(built.rejects_at(f"{name}-projections.tsv").values()) & BUILDER_REASONS
    for name in ("en", "fi"):
        assert not set(built.rejects_at(f"{name}-annotated.tsv").values()) & BUILDER_REASONS

    neu = _lines(src / "AnnotatedData" / "neu_en.txt")
    label_first = {n: line.split("\t")[1] for n, line in enumerate(neu, 1) if line.startswith("9\t")}
    blank = {n for n, line in enumerate(neu, 1) if not line.strip()}
    assert len(label_first) + len(blank) == len(neu)
    assert {n: r for n, r in built.rejects_at("neu_en.txt").items() if r in BUILDER_REASONS} == dict.fromkeys(
        blank, "blank_line"
    )
    neutral = [r for r in built.records.values() if r["source"]["file"] == "xed/AnnotatedData/neu_en.txt"]
    assert neutral and all(r["gold"] == [] and r["subset"] == "neutral" for r in neutral)
    assert all(r["text"] == label_first[r["source"]["line"]].strip() for r in neutral)
