"""Session-wide fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A built tiny Qwen2.5-VL (real Qwen2.5 vocabulary): ``$MMAFF_TINY_MODEL`` if it holds one, else built once."""
    from mmaff.tiny_model import build_tiny_qwen25vl, is_complete_build

    prebuilt = os.environ.get("MMAFF_TINY_MODEL")
    if prebuilt and is_complete_build(prebuilt):
        return Path(prebuilt)
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-model") / "tiny-qwen2.5-vl")


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The corpus built from the bundled raw sample (all 15 datasets, text + image + video), once per session."""
    from mmaff.build import DEFAULT_MIXTURE, SAMPLE_RAW, build

    out = tmp_path_factory.mktemp("sample") / "mmaffin"
    build(SAMPLE_RAW, out, DEFAULT_MIXTURE, workers=2, use_cache=False, log=lambda *_: None)
    return out
