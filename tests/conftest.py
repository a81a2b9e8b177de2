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
