"""Media in the build pipeline, with a stand-in builder: checks become rejects, tokens are recorded, media is
linked or written into the corpus, unused generated media is dropped, and rebuilds are byte-identical."""

from __future__ import annotations

import types

import numpy as np
import orjson
import pytest
from helpers import Built, write_mixture
from PIL import Image
from test_media import _mp4, _png

from mmaff.data.build import build
from mmaff.data.media import image_tokens, probe_video, video_tokens
from mmaff.data.registry import DatasetSpec
from mmaff.data.schema import Example


def _image_builder(ctx):
    """cfaps-shaped stand-in: raw images, one generated image, and every kind of bad media."""
    rel = ctx.track(ctx.raw_dir / "ratings.csv")
    rows = ["a.png", "b.png", "missing.png", "empty.png", "cut.png", "../../etc/passwd"]
    for line, name in enumerate(rows, start=2):
        yield Example(f"img{line}", "EC", "zxx", "happiness", rel, line, images=[ctx.media_ref(name)], split="train")
    path, ref = ctx.generated_media("faces/g1.png")
    Image.fromarray(np.full((48, 48), 7, dtype=np.uint8)).save(path, format="PNG")
    yield Example("gen1", "EC", "zxx", "sadness", rel, 8, images=[ref], split="test")
    path, ref = ctx.generated_media("faces/g2.png")  # its record is a duplicate id: the file must not survive
    Image.fromarray(np.full((48, 48), 9, dtype=np.uint8)).save(path, format="PNG")
    yield Example("gen1", "EC", "zxx", "sadness", rel, 9, images=[ref], split="test")


@pytest.fixture
def image_raw(tmp_path):
    raw = tmp_path / "raw" / "cfaps"
    raw.mkdir(parents=True)
    (raw / "ratings.csv").write_text("file\n", encoding="utf-8")
    _png(raw / "a.png", 64, 48)
    _png(raw / "b.png", 300, 200, seed=1)
    (raw / "empty.png").write_bytes(b"")
    (raw / "cut.png").write_bytes((raw / "a.png").read_bytes()[:50])
    return tmp_path / "raw"


def _with_builder(monkeypatch, function):
    monkeypatch.setattr(DatasetSpec, "builder_module", lambda self: types.SimpleNamespace(build=function))


def test_image_media_in_the_pipeline(tmp_path, image_raw, monkeypatch):
    _with_builder(monkeypatch, _image_builder)
    mixture = write_mixture(tmp_path / "mixture.yaml", {"cfaps": {"subtasks": ["EC"]}})
    build(image_raw, tmp_path / "a", mixture, workers=1, use_cache=False, log=lambda *_: None)
    built = Built(tmp_path / "a")
    assert built.rejects_at("cfaps/ratings.csv") == {
        4: "missing_media",
        5: "empty_media",
        6: "undecodable_image",
        7: "unsafe_media_path",
        9: "duplicate_id",
    }
    a = built.records["cfaps/zxx/EC/img2"]
    assert a["images"] == ["media/cfaps/a.png"] and a["visual_tokens"] == image_tokens(64, 48)
    assert a["media"] == [{"kind": "image", "width": 64, "height": 48, "tokens": image_tokens(64, 48)}]
    assert a["messages"][1]["content"][0] == {"type": "image"}
    assert (built.out / "media/cfaps/a.png").read_bytes() == (image_raw / "cfaps/a.png").read_bytes()
    assert built.records["cfaps/zxx/EC/gen1"]["images"] == ["media/cfaps/generated/faces/g1.png"]
    files = sorted(p.relative_to(built.out).as_posix() for p in (built.out / "media").rglob("*") if p.is_file())
    assert files == ["media/cfaps/a.png", "media/cfaps/b.png", "media/cfaps/generated/faces/g1.png"]
    info = built.manifest["datasets"]["cfaps"]
    assert info["media"]["files"] == 3 and info["media"]["generated"] == 1
    assert info["visual_tokens"] == {
        "train": image_tokens(64, 48) + image_tokens(300, 200),
        "test": image_tokens(48, 48),
    }
    build(image_raw, tmp_path / "b", mixture, workers=2, use_cache=False, log=lambda *_: None)
    for path in sorted((tmp_path / "a").rglob("*")):
        if path.is_file():
            assert (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes() == path.read_bytes(), path


def _video_builder(ctx):
    rel = ctx.track(ctx.raw_dir / "train_sent_emo.csv")
    for line, name in enumerate(["dia0_utt0.mp4", "dia0_utt1.mp4", "dia0_utt2.mp4"], start=2):
        ref = ctx.media_ref(f"train_splits/{name}")
        yield Example(name[:-4], "EC", "en", "happiness", rel, line, text=f"line {line}", videos=[ref], split="train")
        yield Example(
            name[:-4],
            "SP",
            "en",
            "positive",
            rel,
            line,
            text=f"line {line}",
            videos=[ref],
            split="train",
            primary=False,
        )


def test_video_media_in_the_pipeline(tmp_path, monkeypatch):
    raw = tmp_path / "raw" / "meld"
    (raw / "train_splits").mkdir(parents=True)
    (raw / "train_sent_emo.csv").write_text("x\n", encoding="utf-8")
    _mp4(raw / "train_splits/dia0_utt0.mp4", frames=30, fps=10, width=64, height=48)
    clip = (raw / "train_splits/dia0_utt0.mp4").read_bytes()
    (raw / "train_splits/dia0_utt1.mp4").write_bytes(clip[: len(clip) // 3])
    _with_builder(monkeypatch, _video_builder)
    mixture = write_mixture(tmp_path / "mixture.yaml", {"meld": {"subtasks": ["EC", "SP"]}})
    build(tmp_path / "raw", tmp_path / "out", mixture, workers=2, use_cache=False, log=lambda *_: None)
    built = Built(tmp_path / "out")
    assert built.rejects_at("meld/train_sent_emo.csv") == {3: "undecodable_video", 4: "missing_media"}
    assert built.files("meld")["meld/train_sent_emo.csv"]["derived_rejected"] == 2
    record = built.records["meld/en/EC/dia0_utt0"]
    info = probe_video(raw / "train_splits/dia0_utt0.mp4")
    assert record["videos"] == ["media/meld/train_splits/dia0_utt0.mp4"] and record["visual_tokens"] == video_tokens(
        info
    )
    assert record["media"][0] | {"tokens": 0} == {
        "kind": "video",
        "frames": 30,
        "fps": 10.0,
        "width": 64,
        "height": 48,
        "sampled_frames": 6,
        "tokens": 0,
    }
    assert built.records["meld/en/SP/dia0_utt0"]["videos"] == record["videos"]
    manifest = orjson.loads((tmp_path / "out/manifest.json").read_bytes())
    assert manifest["media_budget"]["video_fps"] == 2.0 and manifest["datasets"]["meld"]["media"]["files"] == 1


@pytest.mark.parametrize("decoder", ["decord", "pyav", "torchcodec"])
def test_frame_pre_extraction(tmp_path, monkeypatch, decoder):
    if decoder == "torchcodec":
        pytest.importorskip("torchcodec.decoders", exc_type=ImportError)  # optional: needs FFmpeg libraries
    raw = tmp_path / "raw" / "meld"
    (raw / "train_splits").mkdir(parents=True)
    (raw / "train_sent_emo.csv").write_text("x\n", encoding="utf-8")
    _mp4(raw / "train_splits/dia0_utt0.mp4", frames=30, fps=10, width=64, height=48)
    _with_builder(monkeypatch, lambda ctx: (e for e in _video_builder(ctx) if e.source_id == "dia0_utt0"))
    options = {"extract_frames": True, "decoder": decoder}
    mixture = write_mixture(tmp_path / "mixture.yaml", {"meld": {"subtasks": ["EC", "SP"], "options": options}})
    for out in ("a", "b"):
        build(tmp_path / "raw", tmp_path / out, mixture, workers=1, use_cache=False, log=lambda *_: None)
    media = Built(tmp_path / "a").records["meld/en/EC/dia0_utt0"]["media"][0]
    assert media["frame_indices"] == [0, 5, 10, 15, 20, 25] and media["timestamps"] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert media["frames_dir"] == "media/meld/frames/train_splits/dia0_utt0.mp4" and media["decoder"] == decoder
    pngs = sorted((tmp_path / "a" / media["frames_dir"]).glob("*.png"))
    assert [p.name for p in pngs] == [f"{i:06d}.png" for i in media["frame_indices"]]
    assert Image.open(pngs[1]).size == (64, 48)
    for png in pngs:  # byte-identical on rebuild
        assert (tmp_path / "b" / png.relative_to(tmp_path / "a")).read_bytes() == png.read_bytes()
