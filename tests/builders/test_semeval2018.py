import shutil

import pytest
from helpers import REALDATA, assert_accounting, build_datasets

from mmaff.data.build import SAMPLE_RAW, BuildError

ALL_DATA = "semeval2018_task1/SemEval2018-Task1-all-data"
EN = f"{ALL_DATA}/English"
REAL_EN = REALDATA / "semeval2018_task1" / "English"


def _copy_fixture(tmp_path, flat=False):
    """The bundled fixture copied to tmp_path/raw; flat=True drops the SemEval2018-Task1-all-data level."""
    raw = tmp_path / "raw" / "semeval2018_task1"
    src = SAMPLE_RAW / "semeval2018_task1"
    shutil.copytree(src / "SemEval2018-Task1-all-data" if flat else src, raw)
    return raw


def _data_lines(path):
    return len(path.read_bytes().splitlines()) - 1  # minus the header


def test_semeval2018_fixture_files():
    root = SAMPLE_RAW / ALL_DATA
    for path in root.rglob("*.txt"):  # CRLF like the official zips, LF in the mirrors' gold files
        data = path.read_bytes()
        assert (b"\r\n" in data) != path.name.endswith("-gold.txt") and data.count(b"\n") <= 16, path
    assert (root / "English/EI-reg/EI-reg-En-anger-train.txt").exists()  # train: no 2018- prefix
    assert (root / "English/EI-reg/2018-EI-reg-En-anger-dev.txt").exists()


def test_semeval2018_fixture(tmp_path):
    built = build_datasets(tmp_path, {"semeval2018": {}})
    assert_accounting(built, "semeval2018")
    rec = built.records
    # EI-reg: float gold, emotion facet in the id and the prompt; dev -> validation
    ei = rec["semeval2018/en/EI-reg/anger/2017-En-10001"]
    assert ei["gold"] == 0.688 and ei["split"] == "train" and ei["source"]["emotion"] == "anger"
    assert "Emotion E: anger" in ei["messages"][1]["content"][0]["text"]
    assert ei["messages"][-1]["content"][0]["text"] == "0.688"
    assert rec["semeval2018/en/EI-reg/joy/2017-En-30001"]["gold"] == 0.902
    assert rec["semeval2018/en/EI-reg/anger/2018-En-00101"]["split"] == "validation"
    assert rec["semeval2018/en/EI-reg/anger/2018-En-00201"]["split"] == "test"
    # EI-oc: int parsed from an English, a Spanish and an Arabic class string
    assert rec["semeval2018/en/EI-oc/anger/2017-En-10005"]["gold"] == 3
    assert rec["semeval2018/en/EI-oc/fear/2018-En-00111"]["split"] == "validation"
    es = rec["semeval2018/es/EI-oc/anger/2018-Es-01003"]
    assert es["gold"] == 2 and es["language"] == "es" and es["subset"] == "es"
    assert es["messages"][-1]["content"][0]["text"] == "2: moderate"
    assert rec["semeval2018/es/EI-oc/anger/2018-Es-02001"]["split"] == "validation"
    assert rec["semeval2018/ar/EI-oc/sadness/2018-Ar-01002"]["gold"] == 1
    assert rec["semeval2018/ar/EI-reg/sadness/2018-Ar-01001"]["gold"] == 0.781
    # V-oc: negative classes (English and Spanish / Arabic strings)
    assert rec["semeval2018/en/V-oc/2017-En-40002"]["gold"] == -2
    assert rec["semeval2018/en/V-oc/2018-En-00302"]["gold"] == -3
    assert rec["semeval2018/es/V-oc/2018-Es-01102"]["gold"] == -2
    assert rec["semeval2018/ar/V-oc/2018-Ar-01102"]["gold"] == -1
    assert rec["semeval2018/en/V-reg/2018-En-00121"]["split"] == "validation"
    # E-c: columns read in header order, gold in the registry's label order; all zeros = neutral
    assert rec["semeval2018/en/E-c/2017-En-20002"]["gold"] == ["anger", "surprise", "disgust"]
    assert rec["semeval2018/en/E-c/2018-En-00301"]["gold"] == ["joy", "surprise", "anticipation", "optimism"]
    neutral = rec["semeval2018/en/E-c/2017-En-20001"]
    assert neutral["gold"] == [] and neutral["messages"][-1]["content"][0]["text"] == "0. neutral"
    assert rec["semeval2018/es/E-c/2018-Es-01201"]["gold"] == ["fear", "pessimism"]
    # joint and two-step records: only for tweets in both V-reg and E-c (same language and split)
    joint = rec["semeval2018/en/V-reg+E-c/2017-En-40001"]
    assert joint["gold"] == {"SI": 0.875, "EC": ["joy", "love", "optimism"]} and joint["task"] == "SI+EC"
    assert (
        joint["messages"][-1]["content"][0]["text"]
        == "Sentiment intensity: 0.875\nEmotions: 1. joy, 8. love, 9. optimism"
    )
    assert joint["source"]["derived"] is True and joint["source"]["file"].endswith("2018-Valence-reg-En-train.txt")
    assert joint["source"]["line"] == 2
    v_to_e = rec["semeval2018/en/V-reg>E-c/2018-En-00302"]
    assert (
        v_to_e["given"] == {"SI": 0.094} and v_to_e["gold"] == ["sadness", "pessimism"] and v_to_e["split"] == "test"
    )
    e_to_v = rec["semeval2018/en/E-c>V-reg/2017-En-40002"]
    assert e_to_v["given"] == {"EC": ["sadness", "pessimism"]} and e_to_v["gold"] == 0.172
    for subtask in ("V-reg+E-c", "V-reg>E-c", "E-c>V-reg"):
        ids = sorted(r["source"]["source_id"] for r in rec.values() if r["subtask"] == subtask)
        # 2017-En-40006 is in both files but its E-c row has a bad label
        assert ids == ["2017-En-40001", "2017-En-40002", "2018-En-00301", "2018-En-00302"], subtask
    # rejects
    assert built.rejects_at("English/EI-reg/EI-reg-En-anger-train.txt") == {
        4: "bad_column_count",
        5: "score_out_of_range",
    }
    assert built.rejects_at("English/EI-reg/EI-reg-En-joy-train.txt") == {4: "empty_text", 5: "dimension_mismatch"}
    assert built.rejects_at("English/EI-reg/EI-reg-En-anger-test-gold.txt") == {
        4: "semeval_mystery_row",
        5: "semeval_mystery_row",
    }
    assert built.rejects_at("English/V-reg/Valence-reg-En-test-gold.txt") == {
        5: "semeval_mystery_row",
        6: "semeval_mystery_row",
    }
    assert built.rejects_at("English/V-reg/2018-Valence-reg-En-train.txt") == {5: "bad_score", 6: "dimension_mismatch"}
    assert built.rejects_at("English/EI-oc/EI-oc-En-anger-train.txt") == {5: "bad_class", 7: "bad_class"}
    assert built.rejects_at("English/E-c/2018-E-c-En-train.txt") == {4: "bad_label"}
    assert built.rejects_at("Spanish/EI-oc/2018-EI-oc-Es-anger-test.txt") == {
        2: "unlabelled_test",
        3: "unlabelled_test",
    }
    assert len(built.rejects) == 15
    # inputs: the unlabelled English test file is not read (its gold file is); the Spanish one is (no gold)
    inputs = built.manifest["datasets"]["semeval2018"]["inputs"]
    assert f"{EN}/EI-reg/EI-reg-En-anger-test-gold.txt" in inputs
    assert f"{EN}/EI-reg/2018-EI-reg-En-anger-test.txt" not in inputs
    assert f"{ALL_DATA}/Spanish/EI-oc/2018-EI-oc-Es-anger-test.txt" in inputs
    assert len(inputs) == 24  # every fixture file but the shadowed unlabelled one
    files = built.files("semeval2018")
    assert files[f"{EN}/V-reg/2018-Valence-reg-En-train.txt"]["derived_written"] == 6
    assert files[f"{EN}/V-reg/Valence-reg-En-test-gold.txt"] == {
        "rows": 5, "written": 3, "rejected": {"semeval_mystery_row": 2}, "capped": 0, "held_out": 0, "excluded_subtask": 0,
        "derived_written": 6, "derived_rejected": 0,
    }  # fmt: skip
    counts = built.manifest["datasets"]["semeval2018"]["counts"]
    assert counts["validation"]["EI-reg"] == {"en": 2} and counts["test"]["V-reg+E-c"] == {"en": 2}
    assert counts["train"]["EI-oc"] == {"ar": 2, "en": 4, "es": 3}


def test_semeval2018_flat_layout_and_name_case(tmp_path):
    raw = _copy_fixture(tmp_path, flat=True)  # {English,Arabic,Spanish}/ directly under the raw folder
    dev = raw / "English" / "V-oc" / "2018-Valence-oc-En-dev.txt"
    dev.rename(dev.with_name("2018-VALENCE-OC-en-Dev.txt"))
    (tmp_path / "flat").mkdir()
    (tmp_path / "official").mkdir()
    flat = build_datasets(tmp_path / "flat", {"semeval2018": {}}, raw_root=tmp_path / "raw")
    official = build_datasets(tmp_path / "official", {"semeval2018": {}})
    assert_accounting(flat, "semeval2018")
    assert flat.records.keys() == official.records.keys()
    assert flat.records["semeval2018/en/V-oc/2018-En-00121"]["gold"] == -2


def test_semeval2018_reads_only_wanted_files(tmp_path):
    built = build_datasets(tmp_path, {"semeval2018": {"subtasks": ["V-reg>E-c"]}})
    assert_accounting(built, "semeval2018")
    assert {r["subtask"] for r in built.records.values()} == {"V-reg>E-c"}
    assert len(built.records) == 4
    inputs = built.manifest["datasets"]["semeval2018"]["inputs"]
    assert all("/V-reg/" in rel or "/E-c/" in rel for rel in inputs) and len(inputs) == 7
    ec_train = built.files("semeval2018")[f"{EN}/E-c/2018-E-c-En-train.txt"]
    assert ec_train["excluded_subtask"] == 4 and ec_train["rejected"] == {"bad_label": 1}


@pytest.mark.parametrize(
    ("rel", "content", "message"),
    [
        (
            "English/V-oc/2018-Valence-oc-En-dev.txt",
            "ID\tTweet\tAffect Dimension\tIntensity Score\r\n",
            "Intensity Class",
        ),
        ("English/E-c/2018-E-c-En-dev.txt", "ID\tTweet\tanger\tjoy\r\n", "emotion columns"),
        (
            "Spanish/EI-reg/EI-reg-Es-anger-train.txt",
            "2018-ar-anger-train-1\tQué rabia\tanger\t0.5\r\n",
            "pre-release",
        ),
    ],
)
def test_semeval2018_bad_header(tmp_path, rel, content, message):
    raw = _copy_fixture(tmp_path)
    path = raw / "SemEval2018-Task1-all-data" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_bytes().split(b"\n", 1)[1] if path.exists() else b""
    path.write_bytes(content.encode() + old)
    with pytest.raises(BuildError, match=rf"{path.name}:1: .*{message}"):
        build_datasets(tmp_path, {"semeval2018": {}}, raw_root=tmp_path / "raw")


def test_semeval2018_same_file_twice_is_an_error(tmp_path):
    raw = _copy_fixture(tmp_path)
    shutil.copytree(raw / "SemEval2018-Task1-all-data" / "Arabic", raw / "Arabic")
    with pytest.raises(BuildError, match="several files hold the same data"):
        build_datasets(tmp_path, {"semeval2018": {}}, raw_root=tmp_path / "raw")


def _need_realdata():
    if not REAL_EN.exists():
        pytest.skip("../shared/realdata not present")


@pytest.mark.realdata
def test_semeval2018_realdata(tmp_path):
    _need_realdata()
    built = build_datasets(tmp_path, {"semeval2018": {}}, raw_root=REALDATA)
    assert_accounting(built, "semeval2018")
    files = built.files("semeval2018")
    real = {p.relative_to(REALDATA).as_posix(): p for p in REAL_EN.rglob("*.txt")}
    shadowed = {  # unlabelled releases next to their gold files, and a partial excerpt (not an official name)
        "EI-reg/2018-EI-reg-En-anger-test.txt", "E-c/2018-E-c-En-test.txt", "EI-reg/EI-reg-En-anger-test-gold.rows995-1014.txt",
    }  # fmt: skip
    expected = {rel: _data_lines(p) for rel, p in real.items() if rel.split("English/")[1] not in shadowed}
    assert {rel: s["rows"] for rel, s in files.items()} == expected
    assert sorted(built.manifest["datasets"]["semeval2018"]["inputs"]) == sorted(expected)
    assert not built.rejects_at("EI-reg-En-anger-test-gold.txt")  # the first 200 gold rows are real tweets
    # joint records for every V-reg/E-c id overlap, per split
    for v_reg, e_c, split in [
        ("V-reg/Valence-reg-En-train.txt", "E-c/2018-E-c-En-train.txt", "train"),
        ("V-reg/Valence-reg-En-test-gold.txt", "E-c/E-c-En-test-gold.txt", "test"),
    ]:
        ids = [
            {line.split(b"\t")[0].decode() for line in (REAL_EN / f).read_bytes().splitlines()[1:]}
            for f in (v_reg, e_c)
        ]
        overlap = ids[0] & ids[1]
        assert len(overlap) == {"train": 11, "test": 7}[split]
        for subtask in ("V-reg+E-c", "V-reg>E-c", "E-c>V-reg"):
            got = {r["source"]["source_id"] for r in built.by_split(split) if r["subtask"] == subtask}
            assert got == overlap, (subtask, split)
    assert all(r["split"] == "validation" for r in built.records.values() if "-dev." in r["source"]["file"])
    sample = built.records["semeval2018/en/EI-oc/anger/2017-En-10072"]
    assert sample["gold"] == 3


@pytest.mark.realdata
def test_semeval2018_realdata_mystery_rows(tmp_path):
    _need_realdata()
    raw = tmp_path / "raw" / "semeval2018_task1" / "English" / "EI-reg"
    raw.mkdir(parents=True)
    src = REAL_EN / "EI-reg" / "EI-reg-En-anger-test-gold.rows995-1014.txt"
    (raw / "EI-reg-En-anger-test-gold.txt").write_bytes(src.read_bytes())
    built = build_datasets(tmp_path, {"semeval2018": {}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "semeval2018")
    lines = src.read_bytes().splitlines()
    mystery = {n for n, line in enumerate(lines, start=1) if b"-mystery-" in line.split(b"\t")[0]}
    assert len(mystery) == 12
    assert built.rejects_at("EI-reg-En-anger-test-gold.txt") == dict.fromkeys(mystery, "semeval_mystery_row")
    assert len(built.records) == len(lines) - 1 - len(mystery)
    assert all(r["split"] == "test" for r in built.records.values())


@pytest.mark.realdata
def test_semeval2018_realdata_unlabelled_only(tmp_path):
    _need_realdata()
    raw = tmp_path / "raw" / "semeval2018_task1" / "English"
    for rel in ("EI-reg/2018-EI-reg-En-anger-test.txt", "E-c/2018-E-c-En-test.txt"):
        (raw / rel).parent.mkdir(parents=True)
        (raw / rel).write_bytes((REAL_EN / rel).read_bytes())
    built = build_datasets(tmp_path, {"semeval2018": {}}, raw_root=tmp_path / "raw")
    assert_accounting(built, "semeval2018")
    assert not built.records
    for rel in ("EI-reg/2018-EI-reg-En-anger-test.txt", "E-c/2018-E-c-En-test.txt"):
        n = _data_lines(REAL_EN / rel)
        assert built.rejects_at(rel) == dict.fromkeys(range(2, n + 2), "unlabelled_test")
        assert f"semeval2018_task1/English/{rel}" in built.manifest["datasets"]["semeval2018"]["inputs"]
