import dataclasses
import json
from collections import Counter

import pytest
from helpers import assert_accounting, build_datasets, registry_spec
from split_bands import assert_seeded_splits

from data_builders import synthetic_emotions
from mmaff.data.build import SAMPLE_RAW
from mmaff.data.builder import BuildContext
from mmaff.data.rawio import MissingData
from mmaff.data.schema import Example, Reject
from mmaff.data.templates import load_template


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_datasets(tmp_path_factory.mktemp("synth"), {"synthetic_emotions": {}})


def _rec(built, lang, source_id):
    return built.records[f"synthetic_emotions/{lang}/EC/{source_id}"]


def _answer(rec):
    return rec["messages"][-1]["content"][0]["text"]


def test_synthetic_ids_and_seeded_splits(built):
    assert_accounting(built, "synthetic_emotions")
    expected_ids = {f"en-{i:03d}" for i in range(1, 21)} | {f"de-{i:03d}" for i in range(1, 21)}
    expected_ids |= {f"fr-{i:03d}" for i in range(1, 6)} | {f"es-{i:03d}" for i in range(1, 6)}
    expected_ids |= {"ja-001", "ja-002", "ja-003"}
    assert {r["source"]["source_id"] for r in built.records.values()} == expected_ids
    sizes = Counter((r["language"], r["split"]) for r in built.records.values())
    # unassigned rows: the bands are ~1.1% of the hash space (50,000 rows per language expected), all train here
    assert {k: v for k, v in sizes.items() if k[0] in ("en", "de", "fr")} == {
        ("en", "train"): 20, ("de", "train"): 20, ("fr", "train"): 5,
    }  # fmt: skip
    # explicit splits are kept as given
    explicit = {
        "es-001": "train",
        "es-002": "train",
        "es-003": "validation",
        "es-004": "test",
        "es-005": "test",
        "ja-001": "train",
        "ja-002": "validation",
        "ja-003": "test",
    }
    assert {sid: _rec(built, sid[:2], sid)["split"] for sid in explicit} == explicit
    assert_seeded_splits(built, "synthetic_emotions", given=frozenset(explicit))


def test_synthetic_seeded_split_is_deterministic(built, tmp_path):
    again = build_datasets(tmp_path, {"synthetic_emotions": {}})
    assert {k: r["split"] for k, r in again.records.items()} == {k: r["split"] for k, r in built.records.items()}


def test_synthetic_gold_and_answers(built):
    rec = _rec(built, "en", "en-001")  # first line carries a BOM
    assert rec["text"] == "Thank you so much for staying late to help me move, you are the best."
    assert rec["gold"] == ["love", "gratitude"] and _answer(rec) == "7. love, 8. gratitude"
    assert rec["source"] == {"file": "synthetic_emotions/part-a.jsonl", "line": 1, "source_id": "en-001"}
    assert _rec(built, "en", "en-011")["gold"] == ["joy", "love"]  # ["Joy", "LOVE", "joy"]
    assert _answer(_rec(built, "en", "en-012")) == "1. joy, 5. surprise, 8. gratitude"  # label-set order
    for lang, sid in (("en", "en-009"), ("en", "en-014"), ("es", "es-004"), ("ja", "ja-003")):
        rec = _rec(built, lang, sid)  # ["neutral"] and [] both mean no emotion
        assert rec["gold"] == [] and _answer(rec) == "0. neutral"
    rec = _rec(built, "es", "es-005")  # "language": "ES"
    assert rec["language"] == "es" and rec["gold"] == ["joy", "surprise"]
    assert rec["source"]["file"] == "synthetic_emotions/part-b.jsonl" and rec["source"]["line"] == 5
    assert _rec(built, "es", "es-001")["text"] == "¡Gracias por venir a mi boda, significa mucho para mí!"
    assert _rec(built, "ja", "ja-002")["text"] == "また電車が遅れていて本当にイライラする。"
    assert _rec(built, "de", "de-006")["gold"] == ["anger", "contempt"]


def test_synthetic_rejects(built):
    assert built.rejects_at("part-a.jsonl") == {}
    assert built.rejects_at("part-b.jsonl") == {
        9: "bad_json",
        10: "bad_json_item",  # an array, not an object
        11: "bad_json_item",  # "label" instead of "labels"
        12: "bad_json_item",  # labels is a string
        13: "unknown_language",  # sv is not in the registry's list
        14: "bad_split",  # "dev"
        15: "label_not_in_label_set",
        16: "neutral_with_emotions",
        17: "blank_line",
        18: "undecodable_bytes",
        19: "empty_text",
        20: "duplicate_id",  # es-001 again
    }
    details = {r["line"]: r["detail"] for r in built.rejects if r["file"].endswith("part-b.jsonl")}
    assert "anticipation" in details[15] and "'sv'" in details[13] and "'dev'" in details[14]


def test_synthetic_answers_parse_back(built):
    spec = registry_spec("synthetic_emotions")
    subtask = spec.subtasks["EC"]
    template = load_template("emotion_classification")
    for rec in built.records.values():
        parsed = template.parse(_answer(rec), subtask, spec.subtasks)
        assert (parsed.value, parsed.status) == (rec["gold"], "strict"), rec["id"]


def _run(spec, raw_root):
    return list(synthetic_emotions.build(BuildContext(spec, raw_root, frozenset({"EC"}))))


def test_synthetic_label_set_comes_from_registry():
    spec = registry_spec("synthetic_emotions")
    xed8 = registry_spec("xed").subtasks["EC"].label_set
    other = dataclasses.replace(spec, subtasks={"EC": dataclasses.replace(spec.subtasks["EC"], label_set=xed8)})
    items = {(i.file, i.line): i for i in _run(other, SAMPLE_RAW)}
    first = items[("synthetic_emotions/part-a.jsonl", 1)]  # gratitude and love are not in xed8
    assert isinstance(first, Reject) and first.reason == "label_not_in_label_set"
    assert "gratitude" in first.detail and "love" in first.detail
    joy = items[("synthetic_emotions/part-a.jsonl", 3)]
    assert isinstance(joy, Example) and joy.gold == ["joy"]


def test_synthetic_edge_cases(tmp_path):
    spec = registry_spec("synthetic_emotions")
    (tmp_path / "synthetic_emotions").mkdir()
    with pytest.raises(MissingData):
        _run(spec, tmp_path)
    rows = [
        '{"id": "a", "text": "bad \\ud800 escape", "language": "en", "labels": []}',
        json.dumps({"id": " ", "text": "empty id", "language": "en", "labels": []}),
        json.dumps({"id": "b", "text": "labels hold a number", "language": "en", "labels": [1]}),
        json.dumps({"id": "c", "text": "  Spaced\r\n  ", "language": "en", "labels": [" Fear "], "split": None}),
    ]
    (tmp_path / "synthetic_emotions" / "x.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    items = _run(spec, tmp_path)
    assert [i.reason for i in items[:3]] == ["bad_json_item"] * 3
    assert (items[3].text, items[3].gold, items[3].split) == ("Spaced", ["fear"], None)
