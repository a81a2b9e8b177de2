"""A corpus pushed with `mmaff push-dataset` trains and evaluates by id: `open_corpus` on the upload folder (what
`snapshot_download` of the repository gives) rebuilds the corpus folder once in the cache, byte for byte (records in
file order, media), and `python -m mmaff.score --corpus <that folder>` scores as on the source corpus; a damaged
shard is a one-line error, never a half-written cache."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmaff.data.schema import SPLITS
from mmaff.encode.corpus import CorpusError, open_corpus, read_records
from mmaff.hub.push_dataset import main as push_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def push_folder(sample_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("push") / "upload"
    assert push_dataset([str(sample_corpus), "org/mmaffin", "--dry-run", str(out)]) == 0
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MMAFF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "corpora"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_push_folder_opens_as_the_source_corpus_and_is_rebuilt_once(push_folder, sample_corpus, cache):
    source = open_corpus(str(sample_corpus))
    rebuilt = open_corpus(str(push_folder))
    assert rebuilt.root.parent == cache and rebuilt.manifest == source.manifest
    assert not any((push_folder / split).exists() for split in SPLITS)  # nothing written next to the download
    for split in SPLITS:
        records = read_records(rebuilt.root, split)
        assert records == read_records(source.root, split)  # every field, in file order
        for record in records:
            for rel in record["images"] + record["videos"]:
                assert _sha256(rebuilt.root / rel) == _sha256(source.root / rel), rel  # BMP: the original bytes
    assert any(rel.endswith(".bmp") for r in read_records(rebuilt.root, "train") for rel in r["images"])
    for rel in source.manifest["outputs"]:
        assert (rebuilt.root / rel).read_bytes() == (source.root / rel).read_bytes(), rel

    stamp = (rebuilt.root / "test" / "meld.jsonl").stat().st_mtime_ns
    again = open_corpus(str(push_folder))
    assert again.root == rebuilt.root and (again.root / "test" / "meld.jsonl").stat().st_mtime_ns == stamp
    assert [p.name for p in cache.iterdir()] == [rebuilt.root.name]  # no temp folder left


def _drop_first_row(shard: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(shard)
    pq.write_table(table.slice(1), shard)


def _drop_corpus_column(shard: Path) -> None:
    import pyarrow.parquet as pq

    table = pq.read_table(shard)
    pq.write_table(table.drop_columns(["corpus"]), shard)


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_drop_first_row, "differs from its sha256 in manifest.json"), (_drop_corpus_column, "no 'corpus' column")],
)
def test_a_damaged_push_folder_is_an_error_and_caches_nothing(push_folder, cache, tmp_path, damage, message):
    damaged = tmp_path / "damaged"
    shutil.copytree(push_folder, damaged)
    damage(damaged / "data" / "meld" / "EC" / "test-00000-of-00001.parquet")
    with pytest.raises(CorpusError, match=message):
        open_corpus(str(damaged))
    assert not cache.exists() or not any(cache.iterdir())


def test_score_cli_on_the_push_folder_matches_the_source_corpus(push_folder, sample_corpus, gold_answers, tmp_path):
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "prediction": a}) + "\n" for i, a in gold_answers.items()))
    env = {**os.environ, "MMAFF_CACHE": str(tmp_path / "cache")}
    reports = {}
    for name, corpus in (("pushed", push_folder), ("source", sample_corpus)):
        out = tmp_path / name
        argv = ["--predictions", str(predictions), "--corpus", str(corpus), "--out", str(out), "--no-plots"]
        done = subprocess.run(
            [sys.executable, "-m", "mmaff.score", *argv], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        reports[name] = json.loads((out / "metrics.json").read_text())
    pushed, source = reports["pushed"], reports["source"]
    assert pushed["coverage"]["complete"] and pushed["tasks"] == source["tasks"]
    assert pushed["corpus"]["corpus_sha256"] == source["corpus"]["corpus_sha256"]
    for entry in pushed["tasks"].values():
        if entry["target_type"] == "single":
            assert entry["corrected"]["pooled"]["accuracy"] == 1.0


def test_score_cli_names_a_damaged_push_folder_in_one_line(push_folder, gold_answers, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(push_folder, damaged)
    _drop_first_row(damaged / "data" / "meld" / "EC" / "test-00000-of-00001.parquet")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "prediction": a}) + "\n" for i, a in gold_answers.items()))
    argv = ["--predictions", str(predictions), "--corpus", str(damaged), "--out", str(tmp_path / "out")]
    env = {**os.environ, "MMAFF_CACHE": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "mmaff.score", *argv], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.startswith("error: ") and len(done.stderr.splitlines()) == 1
    assert "meld.jsonl" in done.stderr
