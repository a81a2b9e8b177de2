"""Session-wide fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built tiny Qwen2.5-VL (real Qwen2.5 vocabulary): ``$MMAFF_TINY_MODEL`` if it holds one, else built once."""
    from mmaff.testing.tiny_model import build_tiny_qwen25vl, is_complete_build

    prebuilt = os.environ.get("MMAFF_TINY_MODEL")
    if prebuilt and is_complete_build(prebuilt):
        return Path(prebuilt)
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-model") / "tiny-qwen2.5-vl")


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus built from the bundled raw sample (all 15 datasets, text + image + video), once per session."""
    from mmaff.data.build import DEFAULT_MIXTURE, SAMPLE_RAW, build

    out = tmp_path_factory.mktemp("sample") / "mmaffin"
    build(SAMPLE_RAW, out, DEFAULT_MIXTURE, workers=2, use_cache=False, log=lambda *_: None)
    return out


@pytest.fixture(scope="session")
def varied_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with its matrices redrawn at std 0.1 (`mmaff.testing.tiny_model.redraw_weights`): prompts decode
    differently and label scores spread over tens of nats (the tests check both)."""
    from mmaff.testing.tiny_model import redraw_weights

    return redraw_weights(tiny_model_dir, tmp_path_factory.mktemp("varied") / "model")


@pytest.fixture(scope="session")
def corpus(sample_corpus):
    """The bundled corpus opened as training and generation open it (root, manifest, media budget)."""
    from mmaff.encode.corpus import open_corpus

    return open_corpus(str(sample_corpus))


@pytest.fixture(scope="session")
def test_records(corpus) -> list[dict]:
    """The bundled corpus's test records, in file order."""
    from mmaff.encode.corpus import read_records

    return read_records(corpus.root, "test")


@pytest.fixture(scope="session")
def gold_answers(sample_corpus) -> dict[str, str]:
    """id -> the assistant answer the corpus trains on, for every test record."""
    import orjson

    answers = {}
    for path in sorted((sample_corpus / "test").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = orjson.loads(line)
            answers[record["id"]] = record["messages"][-1]["content"][0]["text"]
    return answers
