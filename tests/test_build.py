"""The corpus build: determinism, atomic publish, resume, missing data, clear errors, dedup, CLI."""

from __future__ import annotations

import shutil

import orjson
import pytest
from helpers import Built, write_mixture

from mmaff.data import build as build_mod
from mmaff.data.build import SAMPLE_RAW, BuildError, build, main


def _raw_copy(tmp_path, *datasets):
    raw = tmp_path / "raw"
    for name in datasets:
        shutil.copytree(SAMPLE_RAW / name, raw / name)
    return raw


def _tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _build(tmp_path, raw, out_name="corpus", datasets=None, **kwargs):
    mixture = write_mixture(tmp_path / "mixture.yaml", datasets or {"goemotions": {}})
    return build(raw, tmp_path / out_name, mixture, workers=1, log=lambda *_: None, **kwargs)


def test_rebuild_is_byte_identical(tmp_path):
    raw = _raw_copy(tmp_path, "goemotions")
    _build(tmp_path, raw, "a", use_cache=False)
    _build(tmp_path, raw, "b", use_cache=False)
    a, b = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert a.keys() == b.keys() and a == b


def test_manifest_hashes_and_counts(tmp_path):
    raw = _raw_copy(tmp_path, "goemotions")
    manifest = _build(tmp_path, raw)
    out = tmp_path / "corpus"
    for rel, info in manifest["outputs"].items():
        assert build_mod.sha256_file(out / rel) == info["sha256"]
    inputs = manifest["datasets"]["goemotions"]["inputs"]
    assert set(inputs) == {
        "goemotions/emotions.txt",
        "goemotions/train.tsv",
        "goemotions/dev.tsv",
        "goemotions/test.tsv",
    }
    assert inputs["goemotions/train.tsv"]["sha256"] == build_mod.sha256_file(raw / "goemotions/train.tsv")
    counts = manifest["datasets"]["goemotions"]["counts"]
    assert counts["train"]["EC"]["en"] == len(Built(out).by_split("train"))
    assert manifest["git"]["commit"] and manifest["packages"]["orjson"]
    assert (out / "README.md").read_text().startswith("---\n")


def test_failed_build_keeps_previous_corpus(tmp_path, monkeypatch):
    raw = _raw_copy(tmp_path, "goemotions")
    _build(tmp_path, raw)
    before = _tree_bytes(tmp_path / "corpus")
    (raw / "goemotions" / "test.tsv").write_text("new text\t3\tfx9\n", encoding="utf-8")

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(build_mod.card, "render", boom)
    with pytest.raises(RuntimeError):
        _build(tmp_path, raw)
    assert _tree_bytes(tmp_path / "corpus") == before
    assert not [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or p.name.endswith(".old")]


def test_interrupted_dataset_build_resumes(tmp_path, monkeypatch):
    raw = _raw_copy(tmp_path, "goemotions", "ewect")
    datasets = {"goemotions": {}, "ewect": {}}
    real_build = build_mod.build_dataset

    def crash_on_ewect(spec, *args, **kwargs):
        if spec.key == "ewect":
            raise KeyboardInterrupt
        return real_build(spec, *args, **kwargs)

    monkeypatch.setattr(build_mod, "build_dataset", crash_on_ewect)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path, raw, datasets=datasets)
    assert not (tmp_path / "corpus").exists()
    stage = tmp_path / ".corpus.stage"
    assert (stage / "goemotions" / "DONE.json").exists() and not (stage / "ewect").exists()
    monkeypatch.setattr(build_mod, "build_dataset", real_build)
    logs = []
    mixture = write_mixture(tmp_path / "mixture.yaml", datasets)
    build(raw, tmp_path / "corpus", mixture, workers=1, log=logs.append)
    assert any("goemotions" in line and "reused" in line for line in logs)
    assert any("ewect" in line and "built" in line for line in logs)
    resumed = _tree_bytes(tmp_path / "corpus")
    _build(tmp_path, raw, "fresh", datasets=datasets, use_cache=False)
    assert resumed == _tree_bytes(tmp_path / "fresh")


def test_cache_invalidated_by_changed_input(tmp_path):
    raw = _raw_copy(tmp_path, "goemotions")
    _build(tmp_path, raw)
    with open(raw / "goemotions" / "dev.tsv", "a", encoding="utf-8") as f:
        f.write("A brand new comment\t17\tfx0199z\n")
    manifest = _build(tmp_path, raw)
    assert manifest["datasets"]["goemotions"]["counts"]["validation"]["EC"]["en"] == 3


def test_missing_dataset_reported_and_strict(tmp_path):
    raw = _raw_copy(tmp_path, "goemotions")
    datasets = {"goemotions": {}, "xed": {}}
    manifest = _build(tmp_path, raw, datasets=datasets)
    assert manifest["datasets"]["xed"]["status"] == "missing"
    assert manifest["datasets"]["goemotions"]["status"] == "built"
    with pytest.raises(BuildError, match="xed"):
        _build(tmp_path, raw, datasets=datasets, strict=True)


def test_unreadable_file_is_a_clear_error(tmp_path, capsys):
    raw = _raw_copy(tmp_path, "goemotions")
    (raw / "goemotions" / "emotions.txt").write_text("joy\nanger", encoding="utf-8")
    with pytest.raises(BuildError, match=r"goemotions/emotions.txt"):
        _build(tmp_path, raw)
    mixture = write_mixture(tmp_path / "mixture.yaml", {"goemotions": {}})
    code = main(["--raw-root", str(raw), "--out", str(tmp_path / "cli"), "--mixture", str(mixture), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "error: goemotions: goemotions/emotions.txt" in err and "Traceback" not in err


def test_cli_builds_with_notice(tmp_path, capsys):
    mixture = write_mixture(tmp_path / "mixture.yaml", {"goemotions": {}})
    assert main(["--out", str(tmp_path / "cli"), "--mixture", str(mixture), "--workers", "1"]) == 0
    captured = capsys.readouterr()
    assert "bundled sample" in captured.err and "goemotions" in captured.out
    manifest = orjson.loads((tmp_path / "cli" / "manifest.json").read_bytes())
    assert manifest["raw_root"] == "data_builders/sample_raw"


def test_dedup_within_split_and_train_eval_leakage(tmp_path):
    raw = tmp_path / "raw" / "goemotions"
    raw.mkdir(parents=True)
    shutil.copy(SAMPLE_RAW / "goemotions" / "emotions.txt", raw)
    (raw / "train.tsv").write_text(
        "Hello there friend\t17\ta1\nhello, there  FRIEND!\t17\ta2\nSomething else\t2\ta3\nLeaked test text\t2\ta4\nSomething else\t3\ta5\n",
        encoding="utf-8",
    )
    (raw / "dev.tsv").write_text("A dev comment\t17\td1\n", encoding="utf-8")
    (raw / "test.tsv").write_text("leaked TEST text.\t2\tt1\n", encoding="utf-8")
    _build(tmp_path, tmp_path / "raw", use_cache=False)
    built = Built(tmp_path / "corpus")
    assert sorted(r["source"]["source_id"] for r in built.by_split("train")) == ["a1"]
    assert built.rejects_at("train.tsv") == {
        2: "duplicate_text",  # same normalised text and labels as line 1
        3: "conflicting_labels",  # lines 3 and 5: same text, different labels -> both dropped
        4: "train_text_in_eval_split",
        5: "conflicting_labels",
    }
    assert built.manifest["datasets"]["goemotions"]["rejects"] == {
        "conflicting_labels": 2,
        "duplicate_text": 1,
        "train_text_in_eval_split": 1,
    }


def test_official_eval_sets_keep_repeated_texts(tmp_path):
    raw = tmp_path / "raw" / "goemotions"
    raw.mkdir(parents=True)
    shutil.copy(SAMPLE_RAW / "goemotions" / "emotions.txt", raw)
    (raw / "train.tsv").write_text("A train comment\t17\ta1\n", encoding="utf-8")
    (raw / "test.tsv").write_text("Same words\t2\tt1\nsame words!\t2\tt2\nSame words\t3\tt3\n", encoding="utf-8")
    _build(tmp_path, tmp_path / "raw", use_cache=False)
    assert sorted(r["source"]["source_id"] for r in Built(tmp_path / "corpus").by_split("test")) == ["t1", "t2", "t3"]


def test_mixture_errors_are_clear(tmp_path):
    from mmaff.data.build import load_mixture
    from mmaff.data.registry import load_registry

    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets:\n  goemotions: {weigth: 2}\n", encoding="utf-8")
    with pytest.raises(BuildError, match=r"bad.yaml: datasets.goemotions.weigth: unknown key \(allowed: options, "):
        load_mixture(bad, load_registry())
    bad.write_text("datasets:\n  nope: {}\n", encoding="utf-8")
    with pytest.raises(BuildError, match=r"datasets.nope: unknown dataset"):
        load_mixture(bad, load_registry())
    bad.write_text("datasets: [\n", encoding="utf-8")
    with pytest.raises(BuildError, match="cannot read mixture"):
        load_mixture(bad, load_registry())


def test_shards_rendered_in_parallel_give_the_same_bytes(tmp_path, monkeypatch):
    from mmaff.data import stage

    raw = _raw_copy(tmp_path, "semeval2018_task1")
    mixture = write_mixture(tmp_path / "mixture.yaml", {"semeval2018": {}})
    monkeypatch.setattr(stage, "SHARD_EXAMPLES", 20)  # the sample is tiny: several output shards
    build(raw, tmp_path / "one", mixture, workers=1, use_cache=False, log=lambda *_: None)
    build(raw, tmp_path / "two", mixture, workers=2, use_cache=False, log=lambda *_: None)
    one, two = _tree_bytes(tmp_path / "one"), _tree_bytes(tmp_path / "two")
    assert one.keys() == two.keys() and one == two
    shards = sorted(k for k in one if k.startswith("train/"))
    assert len(shards) > 2 and shards[0] == "train/semeval2018-00000-of-00004.jsonl"  # empty shards are left out
    manifest = orjson.loads(two["manifest.json"])
    assert sum(manifest["outputs"][k]["records"] for k in shards) == manifest["totals"]["records"]["train"]
    for k in shards:
        assert manifest["outputs"][k]["sha256"] == build_mod.sha256_file(tmp_path / "two" / k)
    from mmaff.encode.corpus import load_corpus

    assert (
        len(load_corpus(tmp_path / "two", split="train", datasets_filter=["semeval2018"]))
        == manifest["totals"]["records"]["train"]
    )
