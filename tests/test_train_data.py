"""The training data path on the tiny model and the bundled corpus: label masks token by token, exact lengths,
media budgets, video timing, packed == unpacked loss, inert dummy media, mixture weights, packing, cutoffs."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from mmaff.data.media import MediaBudget
from mmaff.encode.samples import IGNORE_INDEX, EncodingError, SampleEncoder
from mmaff.train.args import DataArguments
from mmaff.train.collator import MixedModalCollator
from mmaff.train.data import keep_fitting, load_split, mixture_indices, pack, packed_dataset

IM_START, IM_END, NEWLINE, ASSISTANT = 151644, 151645, 198, 77091


@pytest.fixture(scope="module")
def encoder(corpus, tiny_model_dir):
    return SampleEncoder(AutoProcessor.from_pretrained(tiny_model_dir), corpus.root, corpus.budget, decoder="pyav")


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return AutoModelForImageTextToText.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def train(corpus):
    return load_split(corpus, "train", DataArguments(), weighted=False)


def _first(table, modality):
    return next(r for r in table if r["modality"] == modality)


def _expected_trained(ids: list[int]) -> list[bool]:
    """Independent reference: trained = after each `<|im_start|>assistant\\n` through its `<|im_end|>\\n`."""
    trained, inside = [False] * len(ids), False
    for i, token in enumerate(ids):
        if i >= 2 and ids[i - 2 : i + 1] == [IM_START, ASSISTANT, NEWLINE]:
            inside = True
            continue
        if inside:
            trained[i] = True
            if token == NEWLINE and ids[i - 1] == IM_END:
                inside = False
    return trained


def test_labels_cover_exactly_each_assistant_answer_and_its_end(encoder, corpus):
    record = copy.deepcopy(_first(load_split(corpus, "train", DataArguments(), weighted=False), "image"))
    answer = record["messages"][-1]["content"][0]["text"]
    record["messages"] += [
        {"role": "user", "content": [{"type": "text", "text": "And the second time?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Still the same."}]},
    ]
    sample = encoder.encode(record)
    ids, labels = sample.input_ids.tolist(), sample.labels.tolist()
    expected = _expected_trained(ids)
    for i, (token, label) in enumerate(zip(ids, labels)):
        assert (label == token) if expected[i] else (label == IGNORE_INDEX), (i, token, label)
    tokenizer = encoder.processor.tokenizer
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    runs.append(tokenizer.decode(current)) if current else None
    assert runs == [f"{answer}<|im_end|>\n", "Still the same.<|im_end|>\n"]
    assert ids[: len(ids)].count(151655) == record["visual_tokens"]  # image pads all present, none trained


def test_input_equals_the_model_chat_template_with_expanded_pads(encoder, train):
    record = _first(train, "video")
    sample = encoder.encode(record)
    messages = [
        {"role": m["role"], "content": [{k: v for k, v in p.items() if v is not None} for p in m["content"]]}
        for m in record["messages"]
    ]
    text = encoder.processor.apply_chat_template(messages, tokenize=False)
    text = text.replace("<|video_pad|>", "<|video_pad|>" * record["visual_tokens"])
    assert encoder.processor.tokenizer.decode(sample.input_ids) == text


def test_lengths_are_exact_for_every_record(encoder, train):
    for record in train:
        assert encoder.length(record) == len(encoder.encode(record)), record["id"]


def test_visual_tokens_must_match_the_corpus_budget(corpus, tiny_model_dir, train):
    other = MediaBudget(image_max_pixels=28 * 28 * 8)
    encoder = SampleEncoder(AutoProcessor.from_pretrained(tiny_model_dir), corpus.root, other)
    record = max((r for r in train if r["modality"] == "image"), key=lambda r: r["visual_tokens"])
    with pytest.raises(EncodingError, match=record["id"].replace("/", ".")):
        encoder.encode(record)


def test_video_positions_follow_real_time(encoder, model, train):
    record = _first(train, "video")
    info = record["media"][0]
    sample = encoder.encode(record)
    frames = encoder.media.video(record["videos"][0], info)[1].frames_indices
    sampled_fps = len(frames) / info["frames"] * info["fps"]
    assert sample.second_per_grid_ts.item() == pytest.approx(2 / sampled_fps)
    collator = MixedModalCollator(encoder, model.config)
    positions = collator.rope.positions(sample)
    video = sample.mm_token_type_ids == 2
    temporal = positions[0, video].unique()
    step = model.config.vision_config.tokens_per_second * sample.second_per_grid_ts.item()
    assert len(temporal) == int(sample.video_grid_thw[0, 0])
    expected = temporal[0] + (torch.arange(len(temporal)) * step).long()
    assert torch.equal(temporal, expected)


def _token_losses(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    batch = {k: v for k, v in batch.items() if k != "token_stats"}
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch, use_cache=False).logits.float()  # a cache turns off packed-row masking
    shifted = labels[:, 1:]
    losses = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), shifted.reshape(-1).clamp(min=0), reduction="none"
    )
    mask = shifted.reshape(-1) != IGNORE_INDEX
    return losses[mask], logits


def _mixed_items(train, n_each=2):
    records = []
    for modality in ("text", "image", "video"):
        records += [r for r in train if r["modality"] == modality][:n_each]
    return [{"records": [r]} for r in records]


def test_packed_loss_equals_unpacked_loss(encoder, model, train):
    items = _mixed_items(train)
    flat = MixedModalCollator(encoder, model.config, padding_free=True)(items)
    padded = MixedModalCollator(encoder, model.config, padding_free=False)(items)
    assert flat["input_ids"].shape[0] == 1 and flat["position_ids"].shape[:2] == (4, 1)
    packed_losses, packed_logits = _token_losses(model, flat)
    padded_losses, _ = _token_losses(model, padded)
    alone = torch.cat([_token_losses(model, MixedModalCollator(encoder, model.config)([i]))[0] for i in items])
    assert packed_losses.numel() == padded_losses.numel() == alone.numel() > 0
    torch.testing.assert_close(packed_losses.mean(), padded_losses.mean(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed_losses, alone, rtol=1e-4, atol=1e-4)
    # Isolation, position by position: the last sample in the row sees nothing of the ones before it.
    last = MixedModalCollator(encoder, model.config)([items[-1]])
    _, last_logits = _token_losses(model, last)
    torch.testing.assert_close(packed_logits[0, -last_logits.shape[1] :], last_logits[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("padding_free", [True, False])
def test_dummy_media_run_the_vision_tower_but_change_nothing(encoder, model, train, padding_free):
    items = [{"records": [r]} for r in [r for r in train if r["modality"] == "text"][:3]]
    plain = MixedModalCollator(encoder, model.config, padding_free=padding_free)(items)
    with_dummy = MixedModalCollator(encoder, model.config, padding_free=padding_free, vision_dummy=True)(items)
    assert "pixel_values" not in plain and "pixel_values_videos" not in plain
    assert with_dummy["image_grid_thw"].shape[0] == 1 and with_dummy["video_grid_thw"].shape[0] == 1
    assert with_dummy["token_stats"][0] == plain["token_stats"][0] < with_dummy["token_stats"][1]
    assert with_dummy["input_ids"].shape[0] == plain["input_ids"].shape[0]  # no extra row, even when padded
    assert (with_dummy["labels"] != IGNORE_INDEX).sum() == (plain["labels"] != IGNORE_INDEX).sum()
    a, logits_a = _token_losses(model, plain)
    b, logits_b = _token_losses(model, with_dummy)
    torch.testing.assert_close(a, b)
    real = plain["attention_mask"].bool() if not padding_free else torch.ones_like(plain["input_ids"], dtype=bool)
    width = plain["input_ids"].shape[1]
    torch.testing.assert_close(logits_a[real], logits_b[:, :width][real], rtol=1e-4, atol=1e-4)


def test_mixture_weights_copies_and_caps(train):
    weights = {"meld": 2.0, "fer2013": 0.5, "ewect": 0.0}
    rows = mixture_indices(train, weights, {}, seed=1)
    by_dataset = {}
    for row in rows:
        by_dataset.setdefault(train[row]["dataset"], []).append(row)
    n = {name: sum(1 for d in train["dataset"] if d == name) for name in weights}
    assert len(by_dataset["meld"]) == 2 * n["meld"] and len(set(by_dataset["meld"])) == n["meld"]
    assert 0 < len(by_dataset["fer2013"]) < n["fer2013"]
    assert "ewect" not in by_dataset and set(by_dataset) == {"meld", "fer2013"}
    assert rows == mixture_indices(train, weights, {}, seed=1)  # deterministic
    capped = mixture_indices(train, weights, {"meld": 3}, seed=1)
    assert sum(1 for row in capped if train[row]["dataset"] == "meld") == 3


def test_mixture_names_must_exist(corpus):
    from mmaff.encode.corpus import CorpusError

    with pytest.raises(CorpusError, match="not in the corpus"):
        load_split(corpus, "train", DataArguments(dataset_mixture={"no_such_set": 1.0}), weighted=True)


def test_best_fit_packing():
    lengths = [300, 120, 500, 80, 80, 400, 20, 250, 512]
    packs = pack(lengths, 512)
    assert sorted(i for p in packs for i in p) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in p) <= 512 for p in packs)
    assert len(packs) == -(-sum(lengths) // 512)  # the lower bound, reached here
    assert packs == [[8], [2], [5, 4, 6], [0, 1, 3], [7]]  # longest first, each into the fullest pack it fits
    assert pack(lengths, 512) == packs
    with pytest.raises(ValueError):
        pack([600], 512)


def test_over_long_samples_are_dropped_and_reported(encoder, train):
    lengths = [encoder.length(r) for r in train]
    cutoff = sorted(lengths)[len(lengths) // 2]
    keep, report = keep_fitting(lengths, train, cutoff)
    assert report.kept == len(keep) and len(keep) + len(report.dropped) == len(train)
    assert all(lengths[row] <= cutoff for row in keep)
    assert {d["id"] for d in report.dropped} == {train[i]["id"] for i, n in enumerate(lengths) if n > cutoff}


def test_packed_dataset_items_are_record_lists(train):
    items = packed_dataset(train, [[0, 1], [2]])
    assert len(items) == 2 and [r["id"] for r in items[0]["records"]] == [train[0]["id"], train[1]["id"]]


def test_streamed_records_follow_the_mixture(corpus, encoder, model):
    from mmaff.train.data import streamed_records

    args = DataArguments(dataset_mixture={"meld": 1.0, "goemotions": 1.0, "fer2013": 1.0})
    seen = [r["dataset"] for r in streamed_records(corpus, "train", args)]
    assert set(seen) == {"meld", "goemotions", "fer2013"}
    for name in ("meld", "goemotions", "fer2013"):
        assert seen.count(name) >= corpus.split_size(name, "train")  # all_exhausted: every record at least once
    first = next(iter(streamed_records(corpus, "train", args)))
    batch = MixedModalCollator(encoder, model.config)([first, first])  # plain records are items too
    assert batch["input_ids"].shape[0] == 1 and batch["token_stats"][0] == batch["input_ids"].numel()
