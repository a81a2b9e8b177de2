"""Media of a corpus record as a model or a server takes them, shared by the training encoder and every evaluation
backend. Light on imports: the API backend loads images and video frames without torch or transformers
(`video()`, which adds the transformers `VideoMetadata`, imports transformers when called)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mmaff.data.media import MediaBudget, VideoInfo, decode_frames, sample_frame_indices

if TYPE_CHECKING:
    from transformers.video_utils import VideoMetadata


class MediaLoader:
    """Media of a corpus record as the processor takes them: images as RGB, videos as the frames the builder
    sampled (or its pre-extracted PNGs) with the clip's real fps, so temporal positions come out right."""

    def __init__(self, root: str | Path, budget: MediaBudget, decoder: str = "auto") -> None:
        self.root, self.budget, self.decoder = Path(root), budget, decoder

    def image(self, path: str) -> Image.Image:
        with Image.open(self.root / path) as image:
            return image.convert("RGB")

    def frames(self, path: str, info: dict[str, Any]) -> tuple[np.ndarray, list[int]]:
        """The clip's sampled frames (N x H x W x 3 uint8) and their indices in the clip."""
        clip = VideoInfo(info["frames"], info["fps"], info["width"], info["height"])
        indices = info.get("frame_indices") or sample_frame_indices(clip, self.budget)
        if info.get("frames_dir"):
            frames = [
                np.asarray(Image.open(self.root / info["frames_dir"] / f"{i:06d}.png").convert("RGB")) for i in indices
            ]
        else:
            frames = decode_frames(self.root / path, indices, self.decoder)
        return np.stack(frames), indices

    def video(self, path: str, info: dict[str, Any]) -> tuple[np.ndarray, VideoMetadata]:
        from transformers.video_utils import VideoMetadata

        frames, indices = self.frames(path, info)
        # The real fps and frame indices give second_per_grid_ts = 2 / sampled fps, i.e. correct temporal positions.
        return frames, VideoMetadata(total_num_frames=info["frames"], fps=info["fps"], frames_indices=indices)

    def load(self, record: dict[str, Any]) -> tuple[list[Image.Image], list[tuple[np.ndarray, VideoMetadata]]]:
        video_info = [m for m in record["media"] if m["kind"] == "video"]
        images = [self.image(p) for p in record["images"]]
        return images, [self.video(p, info) for p, info in zip(record["videos"], video_info)]
