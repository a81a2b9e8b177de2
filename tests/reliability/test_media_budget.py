"""A mixture's media budget reaches the records: the manifest's budget, every record's visual tokens and what the
Qwen2.5-VL processor makes under that budget agree, so training and generation accept the corpus."""

from __future__ import annotations

import orjson
import pytest
import yaml
from transformers import AutoProcessor

from mmaff.data.build import SAMPLE_RAW, build
from mmaff.data.media import MediaBudget, VideoInfo, image_tokens, video_tokens
from mmaff.encode.corpus import open_corpus
from mmaff.encode.samples import SampleEncoder

# smaller pixel budgets and fewer frames than MMAFFBen's: every sample image and clip gets fewer tokens
SMALL_BUDGET = {
    "image_min_pixels": 784,
    "image_max_pixels": 1568,
    "video_min_pixels": 784,
    "video_max_pixels": 1568,
    "video_fps": 1.0,
    "video_min_frames": 2,
    "video_max_frames": 2,
}
MEDIA_DATASETS = ("emotic", "fer2013", "cfaps", "samsemo", "meld", "chsims")


def _default_tokens(item: dict) -> int:
    if item["kind"] == "image":
        return image_tokens(item["width"], item["height"])
    return video_tokens(VideoInfo(item["frames"], item["fps"], item["width"], item["height"]))


@pytest.fixture(scope="module")
def small_budget_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("budget")
    mixture = root / "mixture.yaml"
    mixture.write_text(
        yaml.safe_dump(
            {"name": "budget", "media_budget": SMALL_BUDGET, "datasets": dict.fromkeys(MEDIA_DATASETS, {})}
        ),
        encoding="utf-8",
    )
    build(SAMPLE_RAW, root / "corpus", mixture, workers=2, use_cache=False, log=lambda *_: None)
    return root / "corpus"


def _records(corpus_root) -> list[dict]:
    return [
        orjson.loads(line) for path in sorted(corpus_root.glob("*/*.jsonl")) for line in path.read_bytes().splitlines()
    ]


def test_records_carry_the_mixture_budget(small_budget_corpus):
    manifest = orjson.loads((small_budget_corpus / "manifest.json").read_bytes())
    budget = MediaBudget(**SMALL_BUDGET)
    assert manifest["media_budget"] == vars(budget)
    records = _records(small_budget_corpus)
    assert {r["dataset"] for r in records} == set(MEDIA_DATASETS)
    changed = set()
    for record in records:
        assert record["visual_tokens"] == sum(item["tokens"] for item in record["media"]), record["id"]
        for item in record["media"]:
            clip = item["kind"] == "video" and VideoInfo(item["frames"], item["fps"], item["width"], item["height"])
            expected = video_tokens(clip, budget) if clip else image_tokens(item["width"], item["height"], budget)
            assert item["tokens"] == expected, record["id"]
            if item["kind"] == "video":
                assert item["sampled_frames"] == 2, record["id"]
            if item["tokens"] != _default_tokens(item):
                changed.add(item["kind"])
    assert changed == {"image", "video"}  # the budget binds: these are not the default's counts


def test_processor_accepts_every_record_under_the_corpus_budget(small_budget_corpus, tiny_model_dir):
    corpus = open_corpus(str(small_budget_corpus))
    assert corpus.budget == MediaBudget(**SMALL_BUDGET)
    encoder = SampleEncoder(AutoProcessor.from_pretrained(tiny_model_dir), corpus.root, corpus.budget, decoder="pyav")
    records = _records(small_budget_corpus)
    for record in records:
        sample = encoder.encode(record)  # EncodingError if the processor's visual tokens differ from the record's
        assert int((sample.mm_token_type_ids > 0).sum()) == record["visual_tokens"], record["id"]
        assert encoder.length(record) == len(sample), record["id"]
