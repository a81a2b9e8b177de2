"""The bundled sample: every registry dataset has one, the default mixture builds it all, and the rules
for malformed input show up as rejects with file, line and reason."""

from __future__ import annotations

import importlib
import json
import shutil

import pytest
from helpers import Built, assert_accounting
from split_bands import assert_seeded_splits

from mmaff.data.build import DEFAULT_MIXTURE, SAMPLE_RAW, build, load_mixture
from mmaff.data.registry import load_registry
from mmaff.data.templates import load_template

REGISTRY = load_registry()


@pytest.fixture(scope="module")
def sample(sample_corpus):
    return Built(sample_corpus)


def test_registry_is_consistent():
    _, entries = load_mixture(DEFAULT_MIXTURE, REGISTRY)
    assert {e.dataset for e in entries} == set(REGISTRY), "the default mixture builds every registry dataset"
    for key, spec in REGISTRY.items():
        for subtask in spec.subtasks.values():
            load_template(subtask.template)
        module = importlib.import_module(f"data_builders.{spec.builder}")
        assert callable(module.build) and module.__doc__, key
        assert (SAMPLE_RAW / spec.raw_dir).is_dir(), f"{key}: no bundled sample in {spec.raw_dir}"
        assert spec.license and spec.source and spec.languages, key


def _given_splits(dataset: str) -> frozenset[str]:
    """Source ids whose split the raw sample states (synthetic_emotions rows may carry one)."""
    if dataset != "synthetic_emotions":
        return frozenset()
    rows = [json.loads(line) for p in sorted((SAMPLE_RAW / dataset).glob("*.jsonl")) for line in _lines(p)]
    return frozenset(str(row.get("id")) for row in rows if isinstance(row, dict) and row.get("split"))


def _lines(path):
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines():
        try:
            json.loads(line)
        except ValueError:
            continue
        yield line


def test_every_dataset_and_subtask_builds(sample):
    manifest = sample.manifest
    assert all(info["status"] == "built" for info in manifest["datasets"].values())
    for key, spec in REGISTRY.items():
        assert_accounting(sample, key)
        built_subtasks = {r["subtask"] for r in sample.records.values() if r["dataset"] == key}
        assert built_subtasks == set(spec.subtasks), key
        splits = {r["split"] for r in sample.records.values() if r["dataset"] == key}
        if spec.splits["strategy"] == "seeded":  # bands sized for the full release: small samples are mostly train
            assert_seeded_splits(sample, key, _given_splits(key))
            assert "train" in splits, key
        else:
            official = set(spec.splits["map"].values())
            assert splits == official, key  # FER2013 has no validation split (test = PublicTest + PrivateTest)
    assert sum(manifest["totals"]["records"].values()) == len(sample.records)


def test_malformed_input_becomes_located_rejects(sample):
    reasons = {r["reason"] for r in sample.rejects}
    for reason in (
        "bad_column_count",
        "label_not_in_label_set",
        "score_out_of_range",
        "empty_text",
        "duplicate_id",
        "undecodable_bytes",
        "truncated_json",
        "duplicate_text",
        "train_text_in_eval_split",
    ):
        assert reason in reasons, reason
    for reject in sample.rejects:
        assert reject["file"] and reject["line"] >= 1 and reject["reason"], reject
        assert (SAMPLE_RAW / reject["file"].split(":")[0]).exists(), reject["file"]


def test_parallel_build_equals_serial(sample, tmp_path):
    out = tmp_path / "serial"
    build(SAMPLE_RAW, out, DEFAULT_MIXTURE, workers=1, use_cache=False, log=lambda *_: None)
    for path in sorted(sample.out.rglob("*")):
        if path.is_file():
            assert (out / path.relative_to(sample.out)).read_bytes() == path.read_bytes(), path.name


def test_ids_are_stable_across_input_order(tmp_path):
    """Ids come from source ids or content, never row positions: shuffling an input keeps every id."""
    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE_RAW / "online_shopping_10_cats", raw / "online_shopping_10_cats")
    csv = raw / "online_shopping_10_cats" / "online_shopping_10_cats.csv"
    build(
        raw,
        tmp_path / "a",
        DEFAULT_MIXTURE,
        datasets=["online_shopping"],
        workers=1,
        use_cache=False,
        log=lambda *_: None,
    )
    header, *rows = csv.read_text(encoding="utf-8").splitlines(keepends=True)
    csv.write_text(header + "".join(reversed(rows)), encoding="utf-8")
    build(
        raw,
        tmp_path / "b",
        DEFAULT_MIXTURE,
        datasets=["online_shopping"],
        workers=1,
        use_cache=False,
        log=lambda *_: None,
    )
    a, b = Built(tmp_path / "a"), Built(tmp_path / "b")
    common = set(a.records) & set(b.records)
    assert len(common) >= len(a.records) - 4  # duplicates keep their first occurrence, which moves
    assert all(a.records[i]["split"] == b.records[i]["split"] for i in common)


def test_corpus_loads_with_datasets_and_card_schema(sample):
    import yaml

    from mmaff.encode.corpus import features, load_corpus

    corpus = load_corpus(sample.out)
    assert {name: len(ds) for name, ds in corpus.items()} == {
        split: n for split, n in sample.manifest["totals"]["records"].items() if n
    }
    row = next(r for r in corpus["train"] if r["subtask"] == "V-reg+E-c")
    assert row["gold"] == sample.records[row["id"]]["gold"] and isinstance(row["gold"]["EC"], list)
    header = (sample.out / "README.md").read_text(encoding="utf-8").split("---\n")[1]
    card = yaml.safe_load(header)
    assert card["dataset_info"]["features"] == features()._to_yaml_list()  # the plain-data schema is datasets' own
    assert card["task_categories"] == [
        "image-classification",
        "text-classification",
        "video-classification",
        "text-generation",
    ]
