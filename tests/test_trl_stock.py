"""recipes/trl_stock: the corpus through TRL's own SFTTrainer and collator (text + image; BMP converted; no video)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from mmaff.encode.corpus import read_records

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("trl_stock_train", ROOT / "recipes" / "trl_stock" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rows_have_absolute_loadable_images_and_no_video(recipe, sample_corpus, tmp_path):
    rows, skipped = recipe.stock_rows(sample_corpus, "train", tmp_path / "images")
    records = read_records(sample_corpus, "train")
    videos = sum(1 for r in records if r["videos"])
    assert videos and skipped == {"video (not supported by TRL's SFT collator)": videos}
    assert len(rows) == len(records) - videos
    images = [p for row in rows for p in row["images"]]
    assert any(r["images"][0].endswith(".bmp") for r in records if r["images"])  # raw CFAPS pictures
    assert images and all(Path(p).is_absolute() and Path(p).is_file() for p in images)
    assert not any(p.lower().endswith((".bmp", ".tif", ".tiff")) for p in images)
    for row in rows:
        parts = [p for m in row["messages"] for p in m["content"]]
        assert sum(p["type"] == "image" for p in parts) == len(row["images"])


def test_trl_collator_gives_the_records_visual_tokens(recipe, sample_corpus, tiny_model_dir, tmp_path):
    from transformers import AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    records = read_records(sample_corpus, "train")
    bmp = next(r for r in records if r["images"] and r["images"][0].endswith(".bmp"))
    text = next(r for r in records if r["modality"] == "text")
    rows = [recipe.stock_row(r, sample_corpus, tmp_path / "images") for r in (bmp, text)]
    batch = DataCollatorForVisionLanguageModeling(processor)(rows)
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert int((batch["input_ids"][0] == image_pad).sum()) == bmp["visual_tokens"]
    assert int((batch["input_ids"][1] == image_pad).sum()) == 0
    assert batch["image_grid_thw"].shape[0] == 1


def test_stock_sft_trainer_runs_two_steps(recipe, sample_corpus, tiny_model_dir, tmp_path):
    trainer = recipe.train(sample_corpus, str(tiny_model_dir), tmp_path / "out", 2, ["text", "image"])
    assert trainer.state.global_step == 2
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 2 and all(math.isfinite(float(x)) for x in losses)


def test_video_is_refused_in_one_line(recipe, sample_corpus, tmp_path, capsys):
    argv = ["--corpus", str(sample_corpus), "--model", "m", "--output-dir", str(tmp_path), "--modalities", "video"]
    assert recipe.main(argv) == 2
    assert capsys.readouterr().err.startswith("error: --modalities video: choose from text,image")
