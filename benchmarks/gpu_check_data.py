"""MMAFFIn-shaped synthetic samples for `gpu_check.py`: corpus records with images and videos, written to a scratch
folder without any video codec (a clip is stored as its sampled frames, `frames_dir`, which our media loader reads
directly), so the device needs no PyAV/decord.

The records and their prompts are those of `bench_train_gpu.py` (MMAFFIn emotion-classification / sentiment
prompts); datasets are named after real MMAFFIn ones so that evaluation finds a task (decoding) for each.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_gpu import LABELS, _label_prompt, _record, _sentence, _write_image  # noqa: E402

DATASET_OF = {"text": "xed", "image": "fer2013", "video": "meld"}  # real task names: <dataset>/EC
VIDEO_SIZE = (320, 240)


def _video_media(root: Path, index: int, seconds: float, fps: int, rng: random.Random) -> dict[str, Any]:
    """The sampled frames of a moving-square clip as PNGs, and the media entry the loader reads them by."""
    import numpy as np
    from PIL import Image

    from mmaff.data.media import MediaBudget, VideoInfo, sample_frame_indices, video_tokens

    width, height = VIDEO_SIZE
    frames = round(seconds * fps)
    info = VideoInfo(frames, float(fps), width, height)
    budget = MediaBudget()
    indices = sample_frame_indices(info, budget)
    frames_dir = f"media/frames/{index:06d}"
    (root / frames_dir).mkdir(parents=True, exist_ok=True)
    gen = np.random.default_rng(rng.getrandbits(32))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    color = gen.uniform(0, 255, size=3)
    for i in indices:
        frame = np.stack([(x + 4 * i) % width / width * 255, y / height * 255, np.full_like(x, 96)], axis=-1)
        cx, cy = (40 + 6 * i) % (width - 40), (30 + 3 * i) % (height - 40)
        frame[cy : cy + 40, cx : cx + 40] = color
        Image.fromarray(frame.astype(np.uint8)).save(root / frames_dir / f"{i:06d}.png", compress_level=1)
    return {
        "kind": "video",
        "frames": frames,
        "fps": float(fps),
        "width": width,
        "height": height,
        "sampled_frames": len(indices),
        "tokens": video_tokens(info, budget),
        "frames_dir": frames_dir,
    }


def make_record(root: Path, index: int, kind: str, rng: random.Random) -> dict[str, Any]:
    """One sample: `kind` text (60-250 tokens), face (48x48 image), scene (640x480 image) or video (3-4 s clip)."""
    from mmaff.data.media import MediaBudget, image_tokens

    task = rng.choice(("EC", "SP")) if kind == "text" else "EC"
    gold = rng.choice(LABELS[task][0])
    if kind == "text":
        text = _sentence(rng, rng.randint(20, 190))
        prompt = _label_prompt("text", task, text)
        record = _record(DATASET_OF["text"], "text", index, task, prompt, gold, [], [], text)
    elif kind in ("face", "scene"):
        width, height = (48, 48) if kind == "face" else (640, 480)
        relative = f"media/images/{index:06d}.png"
        _write_image(root / relative, width, height, rng)
        media = [
            {"kind": "image", "width": width, "height": height, "tokens": image_tokens(width, height, MediaBudget())}
        ]
        prompt = _label_prompt(kind, task, None)
        record = _record(DATASET_OF["image"], "image", index, task, prompt, gold, media, [relative], None)
    else:
        media = [_video_media(root, index, rng.uniform(3.0, 4.0), rng.choice((10, 15, 25)), rng)]
        transcript = _sentence(rng, rng.randint(5, 25))
        prompt = _label_prompt("video", task, transcript)
        path = f"media/videos/{index:06d}.mp4"  # never opened: the loader reads media[0]["frames_dir"]
        record = _record(DATASET_OF["video"], "video", index, task, prompt, gold, media, [path], transcript)
    return record


def make_records(root: Path, samples: int, seed: int = 0) -> list[dict[str, Any]]:
    """`samples` records, 75% text / 20% images (half faces, half scenes) / 5% videos (at least one of each)."""
    rng = random.Random(seed)
    n_video = max(1, round(samples * 0.05))
    n_image = max(2, round(samples * 0.20))
    kinds = ["video"] * n_video + ["face", "scene"] * (n_image // 2) + ["text"] * (samples - n_video - n_image)
    kinds = kinds[:samples]
    rng.shuffle(kinds)
    return [make_record(root, index, kind, random.Random(rng.getrandbits(32))) for index, kind in enumerate(kinds)]
