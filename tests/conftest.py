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


@pytest.fixture(scope="session")
def varied_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model with its matrices redrawn at std 0.1. At the tiny model's own init every prompt decodes to
    the same newlines and every label scores about the same, which would make 'batch 1 == batch 4' or 'prefix
    == full' hold trivially; these weights answer each prompt differently and spread label scores over tens of
    nats (the tests check both), so the comparisons mean something."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    out = tmp_path_factory.mktemp("varied") / "model"
    model.save_pretrained(out)
    AutoProcessor.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out
