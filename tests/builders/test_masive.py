import pytest
from helpers import assert_accounting, build_datasets, registry_spec

from data_builders import masive
from mmaff.data.build import SAMPLE_RAW
from mmaff.data.builder import BuildContext
from mmaff.data.rawio import MissingData, RawFormatError
from mmaff.data.schema import Example, Reject
from mmaff.data.templates import load_template

ACCEPTED = {
    "en": {
        "train": ["t001", "t002", "t003", "t010", "t011", "t012"],
        "validation": ["v001", "v002", "v003"],
        "test": ["s001", "s002", "s003"],
    },
    "es": {
        "train": ["t001", "t002", "t003", "t004", "t006", "t007", "t009"],
        "validation": ["v001", "v002", "v003"],
        "test": ["s001", "s002", "s003"],
    },
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_datasets(tmp_path_factory.mktemp("masive"), {"masive": {}})


def test_masive_ids_and_splits(built):
    assert_accounting(built, "masive")
    expected = {
        f"masive/{lang}/ASI/{lang}-{i}": split
        for lang, splits in ACCEPTED.items()
        for split, ids in splits.items()
        for i in ids
    }
    assert {rid: r["split"] for rid, r in built.records.items()} == expected
    files = built.files("masive")
    assert files["masive/en/train.csv"]["rows"] == 12 and files["masive/es/train.csv"]["rows"] == 9


def test_masive_texts_gold_answers(built):
    rec = built.records["masive/en/ASI/en-t002"]
    # the default text is the authors' clip_input context, not the full post
    assert rec["text"] == "I feel [MASK1] and a bit [MASK2] about the vet bills."
    assert rec["gold"] == ["worried", "overwhelmed"]
    assert rec["messages"][-1]["content"][0]["text"] == "worried, overwhelmed"
    assert "Text: I feel [MASK1] and a bit [MASK2]" in rec["messages"][-2]["content"][-1]["text"]
    assert rec["source"] == {"file": "masive/en/train.csv", "line": 3, "source_id": "en-t002"}
    # quoted field with commas and a newline; target without the closing sentinel
    rec = built.records["masive/en/ASI/en-t003"]
    assert rec["text"] == "Moved to a new city, new job, no friends yet.\nMost nights I feel [MASK1]."
    assert rec["gold"] == ["lonely"]
    assert built.records["masive/en/ASI/en-t010"]["gold"] == ["on top of the world"]
    assert built.records["masive/en/ASI/en-t011"]["gold"] == ["grateful"]  # "</s>" dropped
    assert built.records["masive/en/ASI/en-t001"]["gold"] == ["relieved"]  # first of the duplicate ids
    # Spanish gender forms stay distinct answers
    assert built.records["masive/es/ASI/es-t001"]["gold"] == ["cansada"]
    assert built.records["masive/es/ASI/es-t002"]["gold"] == ["cansado"]
    rec = built.records["masive/es/ASI/es-t003"]
    assert rec["text"] == "Me siento [MASK1] pero también [MASK2] por ella."
    assert rec["messages"][-1]["content"][0]["text"] == "triste, orgullosa"
    assert rec["language"] == "es" and rec["task"] == "ASI" and rec["target_type"] == "open"
    assert built.records["masive/es/ASI/es-v002"]["gold"] == ["tranquilo", "contento"]


def test_masive_rejects(built):
    assert built.rejects_at("masive/en/train.csv") == {
        7: "mask_target_mismatch",  # one mask, two terms
        8: "empty_text",
        9: "mask_target_mismatch",  # no sentinel in the input
        10: "empty_target",
        11: "duplicate_id",  # en-t001 again
        12: "bad_column_count",
    }
    assert built.rejects_at("masive/es/train.csv") == {8: "mask_target_mismatch", 11: "duplicate_id"}
    for split in ("val", "test"):
        assert built.rejects_at(f"masive/en/{split}.csv") == {} and built.rejects_at(f"masive/es/{split}.csv") == {}


def test_masive_answers_parse_back(built):
    spec = registry_spec("masive")
    subtask = spec.subtasks["ASI"]
    template = load_template("affective_state")
    for rec in built.records.values():
        parsed = template.parse(rec["messages"][-1]["content"][0]["text"], subtask, spec.subtasks)
        assert (parsed.value, parsed.status) == (rec["gold"], "strict"), rec["id"]


def test_parse_target():
    assert masive.parse_target("<extra_id_0> a <extra_id_1> b c <extra_id_2>") == ([0, 1], ["a", "b c"])
    assert masive.parse_target("<extra_id_0> a <extra_id_1> b") == ([0, 1], ["a", "b"])
    assert masive.parse_target("<extra_id_0>") == ([0], [""])
    assert masive.parse_target("<extra_id_0> <extra_id_1>") == ([0], [""])
    assert masive.parse_target("<pad> <extra_id_0> x <extra_id_1></s>") == ([0], ["x"])
    assert masive.parse_target("x <extra_id_0> y") is None


def _run(raw_root, options=None):
    ctx = BuildContext(registry_spec("masive"), raw_root, frozenset({"ASI"}), options or {})
    return list(masive.build(ctx))


def test_masive_text_field_defaults_to_clip_input_and_input_takes_the_full_post():
    assert registry_spec("masive").options["text_field"] == "clip_input"
    default = {i.source_id: i for i in _run(SAMPLE_RAW) if isinstance(i, Example)}
    assert default["en-t002"].text == "I feel [MASK1] and a bit [MASK2] about the vet bills."
    assert default["es-t003"].text == "Me siento [MASK1] pero también [MASK2] por ella."
    assert default["es-t003"].split == "train"
    full = {i.source_id: i for i in _run(SAMPLE_RAW, {"text_field": "input"}) if isinstance(i, Example)}
    assert full["en-t002"].text.startswith("My dog has been sick all week. I feel [MASK1] and a bit [MASK2]")
    assert full["es-t003"].text.startswith("Mi hermana se va a vivir a otro país. Me siento [MASK1]")
    assert {k: v.gold for k, v in full.items()} == {k: v.gold for k, v in default.items()}


def test_masive_csv_without_clip_input_names_the_option(tmp_path):
    (tmp_path / "masive" / "en").mkdir(parents=True)
    (tmp_path / "masive" / "en" / "test.csv").write_text("id,input,t5_trg\na1,I feel <extra_id_0>.,<extra_id_0> ok\n")
    with pytest.raises(RawFormatError, match=r"masive/en/test.csv:1: .*lacks columns \['clip_input'\]") as err:
        _run(tmp_path)
    assert "options: {text_field: input}" in str(err.value) and "\n" not in str(err.value)
    (item,) = _run(tmp_path, {"text_field": "input"})
    assert (item.source_id, item.text, item.gold) == ("a1", "I feel [MASK1].", ["ok"])


def test_masive_header_and_missing_files(tmp_path):
    with pytest.raises(MissingData):
        _run(tmp_path)
    (tmp_path / "masive" / "en").mkdir(parents=True)
    (tmp_path / "masive" / "en" / "test.csv").write_text(
        "\ufeffidx,id,clip_input,t5_trg\n0,a1,I feel <extra_id_0>.,<extra_id_0> ok\n"
    )
    (item,) = _run(tmp_path)  # BOM, extra leading column, test file only
    assert (item.source_id, item.text, item.gold, item.split) == ("a1", "I feel [MASK1].", ["ok"], "test")
    (tmp_path / "masive" / "en" / "test.csv").write_text("id,text,t5_trg\na1,x,y\n")
    with pytest.raises(RawFormatError, match="lacks columns"):
        _run(tmp_path)
    (tmp_path / "masive" / "en" / "test.csv").write_text(
        "id,clip_input,t5_trg\n ,I feel <extra_id_0>.,<extra_id_0> ok\n"
    )
    assert [(r.line, r.reason) for r in _run(tmp_path) if isinstance(r, Reject)] == [(2, "missing_id")]
