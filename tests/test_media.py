"""Media checks and visual-token counts against the real Qwen2.5-VL processors (built offline from a config)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from mmaff.data.media import (
    MediaBudget,
    MediaError,
    check_image,
    image_tokens,
    probe_video,
    resolve_inside,
    sample_frame_indices,
    video_tokens,
)

BUDGET = MediaBudget()


def _png(path, width, height, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(path)
    return path


def _mp4(path, frames=20, fps=10, width=64, height=48):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), (i * 12) % 255, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_bad_media_raise_specific_reasons(tmp_path):
    good = _png(tmp_path / "ok.png", 40, 30)
    assert check_image(good) == (40, 30)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    clip = _mp4(tmp_path / "ok.mp4")
    (tmp_path / "cut.mp4").write_bytes(clip.read_bytes()[: len(clip.read_bytes()) // 3])
    cases = [
        (lambda: check_image(tmp_path / "missing.png"), "missing_media"),
        (lambda: check_image(tmp_path / "empty.png"), "empty_media"),
        (lambda: check_image(tmp_path / "cut.png"), "undecodable_image"),
        (lambda: probe_video(tmp_path / "cut.mp4"), "undecodable_video"),
        (lambda: probe_video(tmp_path / "ok.png"), "no_video_stream"),
        (lambda: probe_video(_mp4(tmp_path / "one.mp4", frames=1)), "too_short_video"),
        (lambda: resolve_inside(tmp_path, "../../etc/passwd"), "unsafe_media_path"),
        (lambda: resolve_inside(tmp_path, "/etc/passwd"), "unsafe_media_path"),
    ]
    for call, reason in cases:
        with pytest.raises(MediaError) as err:
            call()
        assert err.value.reason == reason
    assert resolve_inside(tmp_path, "ok.png") == good.resolve()


def test_probe_video(tmp_path):
    info = probe_video(_mp4(tmp_path / "clip.mp4", frames=20, fps=10, width=64, height=48))
    assert (info.frames, info.fps, info.width, info.height) == (20, 10.0, 64, 48)
    assert sample_frame_indices(info) == [0, 5, 10, 15]  # 2 fps over 2 s, at least 4 frames


@pytest.mark.parametrize("size", [(48, 48), (640, 480), (1920, 1080), (33, 1000), (2000, 29)])
def test_image_tokens_equal_processor(size):
    from transformers import Qwen2VLImageProcessor

    processor = Qwen2VLImageProcessor(
        min_pixels=BUDGET.image_min_pixels,
        max_pixels=BUDGET.image_max_pixels,
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )
    image = Image.fromarray(np.zeros((size[1], size[0], 3), dtype=np.uint8))
    grid = processor(images=[image], return_tensors="np")["image_grid_thw"][0]
    assert image_tokens(*size) == int(np.prod(grid)) // 4


@pytest.mark.parametrize(
    ("frames", "fps", "width", "height"), [(20, 10, 64, 48), (9, 25, 128, 72), (300, 30, 320, 240)]
)
def test_video_tokens_equal_processor(tmp_path, frames, fps, width, height):
    from transformers import Qwen2VLVideoProcessor
    from transformers.video_utils import VideoMetadata

    clip = probe_video(_mp4(tmp_path / "clip.mp4", frames, fps, width, height))
    indices = sample_frame_indices(clip)
    with av.open(str(tmp_path / "clip.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    video = np.stack([decoded[i] for i in indices])
    processor = Qwen2VLVideoProcessor(
        size={"shortest_edge": BUDGET.video_min_pixels, "longest_edge": BUDGET.video_max_pixels},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
        cap_pixels_per_frame=True,
    )
    metadata = VideoMetadata(total_num_frames=clip.frames, fps=clip.fps, frames_indices=indices)
    out = processor(videos=[video], video_metadata=[metadata], do_sample_frames=False, return_tensors="np")
    assert video_tokens(clip) == int(np.prod(out["video_grid_thw"][0])) // 4
