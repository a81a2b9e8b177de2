"""Media checks and Qwen2.5-VL visual-token arithmetic for image and video datasets.

Every image is fully decoded and every video opened and probed before a record may point at it; what fails
becomes a reject with a specific reason (`MediaError.reason`). Token counts follow the Qwen2.5-VL processors
exactly (`smart_resize`, 14-px patches merged 2x2, frames paired in time), under MMAFFBen's budgets by
default, so training can size batches without decoding and never cut through a run of visual tokens.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.pool
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmaff.workers import pool_initializer

PATCH, MERGE, TEMPORAL_PATCH = 14, 2, 2
FACTOR = PATCH * MERGE  # 28: resized sides are multiples of this
_STILL_IMAGE_FORMATS = {"image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "gif", "webp_pipe", "tiff_pipe"}


class MediaError(ValueError):
    """A media file that cannot be used; `reason` is the reject code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class MediaBudget:
    """Pixel and frame budgets (defaults: MMAFFBen's LLaMA-Factory settings)."""

    image_min_pixels: int = 4 * FACTOR * FACTOR
    image_max_pixels: int = 262_144
    video_min_pixels: int = 4 * FACTOR * FACTOR  # per frame
    video_max_pixels: int = 16_384  # per frame
    video_fps: float = 2.0
    video_min_frames: int = 4
    video_max_frames: int = 128
    max_video_tokens: int = 128_000  # the processor's cap on a whole video (only binds for huge frame counts)


@dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int


def resolve_inside(root: Path, relative: str) -> Path:
    """`root/relative`, refusing anything that resolves outside `root` (`../../etc/passwd`, absolute paths, links)."""
    candidate = (root / relative).resolve()
    if not relative or Path(relative).is_absolute() or not candidate.is_relative_to(root.resolve()):
        raise MediaError("unsafe_media_path", f"{relative!r} is outside {root}")
    return candidate


def _existing(path: Path) -> None:
    if not path.exists():
        raise MediaError("missing_media", str(path))
    if path.stat().st_size == 0:
        raise MediaError("empty_media", str(path))


def check_image(path: Path) -> tuple[int, int]:
    """(width, height) of an image that decodes completely (PIL `load`, not just the header). Images over PIL's
    decompression-bomb limit (`Image.MAX_IMAGE_PIXELS`) are `too_large_image`, judged from the header alone."""
    from PIL import Image, UnidentifiedImageError

    _existing(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # judged below, before decoding
            with Image.open(path) as image:
                _within_pixel_limit(path, *image.size, Image.MAX_IMAGE_PIXELS)
                image.load()
                return image.size
    except MediaError:
        raise
    except Image.DecompressionBombError as err:  # over twice the limit: PIL refuses to open it
        raise MediaError("too_large_image", f"{path}: {err}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise MediaError("undecodable_image", f"{path}: {err}") from err


def _within_pixel_limit(path: Path, width: int, height: int, limit: int | None) -> None:
    if limit is not None and width * height > limit:
        raise MediaError("too_large_image", f"{path}: {width}x{height} = {width * height} pixels, limit {limit}")


def probe_video(path: Path) -> VideoInfo:
    """Frame count, fps and size of a video, read with PyAV; every packet is demuxed and the first and last
    frames decoded, so truncated files fail here rather than in a training worker."""
    import av

    _existing(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video or container.format.name in _STILL_IMAGE_FORMATS:
                raise MediaError("no_video_stream", f"{path} ({container.format.name})")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            decoded = [frame for packet in container.demux(stream) for frame in packet.decode()]
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as err:
        raise MediaError("undecodable_video", f"{path}: {err}") from err
    if not decoded or fps <= 0:
        raise MediaError("undecodable_video", f"{path}: no decodable frames")
    if len(decoded) < TEMPORAL_PATCH:
        raise MediaError("too_short_video", f"{path}: {len(decoded)} frame(s)")
    return VideoInfo(frames=len(decoded), fps=fps, width=decoded[0].width, height=decoded[0].height)


def smart_resize(height: int, width: int, min_pixels: int, max_pixels: int, factor: int = FACTOR) -> tuple[int, int]:
    """The Qwen2-VL resize rule (as in transformers' `qwen2_vl.smart_resize`, checked equal by the tests): sides
    rounded to multiples of `factor`, area brought within [min_pixels, max_pixels], aspect ratio kept."""
    if max(height, width) / min(height, width) > 200:
        raise MediaError("extreme_aspect_ratio", f"{width}x{height}")
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar, w_bar = math.ceil(height * beta / factor) * factor, math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def image_tokens(width: int, height: int, budget: MediaBudget = MediaBudget()) -> int:
    h, w = smart_resize(height, width, budget.image_min_pixels, budget.image_max_pixels)
    return (h // PATCH) * (w // PATCH) // (MERGE * MERGE)


def sample_frame_indices(info: VideoInfo, budget: MediaBudget = MediaBudget()) -> list[int]:
    """Frames sampled at `video_fps`, as the Qwen2-VL video processor samples them (even count, uniform)."""
    max_frames = math.floor(min(budget.video_max_frames, info.frames) / TEMPORAL_PATCH) * TEMPORAL_PATCH
    wanted = info.frames / info.fps * budget.video_fps
    count = min(max(wanted, budget.video_min_frames), max_frames, info.frames)
    count = max(TEMPORAL_PATCH, math.floor(count / TEMPORAL_PATCH) * TEMPORAL_PATCH)
    step = info.frames / count
    return [min(info.frames - 1, int(i * step)) for i in range(count)]


def video_tokens(info: VideoInfo, budget: MediaBudget = MediaBudget(), frames: int | None = None) -> int:
    """Visual tokens of the sampled frames (or of `frames` frames) under the per-frame pixel budget."""
    n = frames if frames is not None else len(sample_frame_indices(info, budget))
    total_pixels = int(budget.max_video_tokens * FACTOR * FACTOR * 0.9)
    max_pixels = max(
        min(budget.video_max_pixels, total_pixels * TEMPORAL_PATCH // n), int(budget.video_min_pixels * 1.05)
    )
    h, w = smart_resize(info.height, info.width, budget.video_min_pixels, max_pixels)
    return math.ceil(n / TEMPORAL_PATCH) * (h // PATCH) * (w // PATCH) // (MERGE * MERGE)


DECODERS = ("torchcodec", "decord", "pyav")  # fastest first (BENCHMARKS.md)


def available_decoder(preferred: str = "auto") -> str:
    """`preferred`, or for "auto" the fastest decoder that imports here (torchcodec needs FFmpeg libraries)."""
    if preferred != "auto":
        return preferred
    for name in DECODERS[:-1]:
        try:
            __import__("torchcodec.decoders" if name == "torchcodec" else name)
            return name
        except (ImportError, OSError, RuntimeError):
            continue
    return "pyav"


def decode_frames(path: Path, indices: list[int], decoder: str = "auto") -> list[Any]:
    """RGB frames (H x W x 3 uint8 arrays) at the given indices with torchcodec, decord (both seek) or PyAV."""
    decoder = available_decoder(decoder)
    if decoder == "torchcodec":
        from torchcodec.decoders import VideoDecoder

        return list(VideoDecoder(str(path)).get_frames_at(indices).data.permute(0, 2, 3, 1).numpy())
    if decoder == "decord":
        import decord

        return list(decord.VideoReader(str(path), num_threads=1).get_batch(indices).asnumpy())
    if decoder != "pyav":
        raise ValueError(f"unknown decoder {decoder!r} (one of {DECODERS} or auto)")
    import av

    wanted, frames = set(indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return [frames[i] for i in indices]


def extract_frames(
    path: Path, info: VideoInfo, out_dir: Path, budget: MediaBudget, decoder: str = "decord"
) -> dict[str, Any]:
    """Write the sampled frames as PNGs (`<index>.png`) and return what the processor needs for correct
    temporal positions: the frame indices and their timestamps at the clip's real fps."""
    from PIL import Image

    indices = sample_frame_indices(info, budget)
    if not all((out_dir / f"{i:06d}.png").exists() for i in indices):
        out_dir.mkdir(parents=True, exist_ok=True)
        for index, frame in zip(indices, decode_frames(path, indices, decoder)):
            tmp = out_dir / f".{index:06d}.png.{os.getpid()}"
            Image.fromarray(frame).save(tmp, format="PNG")
            os.replace(tmp, out_dir / f"{index:06d}.png")  # atomic: shards may extract the same clip
    return {
        "frame_indices": indices,
        "timestamps": [round(i / info.fps, 6) for i in indices],
        "decoder": available_decoder(decoder),
    }


def describe(path: str, kind: str, budget: MediaBudget) -> dict[str, Any]:
    """Check one media file and describe it for its record; {"error", "detail"} when it cannot be used."""
    try:
        if kind == "image":
            width, height = check_image(Path(path))
            return {"kind": "image", "width": width, "height": height, "tokens": image_tokens(width, height, budget)}
        info = probe_video(Path(path))
        return {
            "kind": "video",
            "frames": info.frames,
            "fps": round(info.fps, 6),
            "width": info.width,
            "height": info.height,
            "sampled_frames": len(sample_frame_indices(info, budget)),
            "tokens": video_tokens(info, budget),
        }
    except MediaError as err:
        return {"error": err.reason, "detail": err.detail}


class MediaChecker:
    """Describes media files in worker processes (decoders live there), with a timeout per file against
    decoder hangs, caching by path so a clip shared by several records is probed once."""

    def __init__(self, budget: MediaBudget, processes: int = 1, timeout: float = 120.0) -> None:
        self.budget, self.processes, self.timeout = budget, max(1, processes), timeout
        self.cache: dict[tuple[str, str], dict[str, Any]] = {}
        self._pool = None

    def _new_pool(self) -> multiprocessing.pool.Pool:
        return multiprocessing.get_context("fork").Pool(self.processes, **pool_initializer())

    def prefetch(self, items: list[tuple[str, str]]) -> None:
        todo = list(dict.fromkeys(i for i in items if i not in self.cache))
        while todo:
            self._pool = self._pool or self._new_pool()
            pending = [(item, self._pool.apply_async(describe, (*item, self.budget))) for item in todo]
            todo = []
            for position, (item, result) in enumerate(pending):
                try:
                    self.cache[item] = result.get(timeout=self.timeout)
                except multiprocessing.TimeoutError:
                    self.cache[item] = {
                        "error": "media_timeout",
                        "detail": f"{item[0]}: no answer in {self.timeout} s",
                    }
                    self._pool.terminate()  # a hung decoder: kill the workers, retry the rest on fresh ones
                    self._pool = None
                    todo = [i for i, _ in pending[position + 1 :]]
                    break

    def describe(self, path: str, kind: str) -> dict[str, Any]:
        if (path, kind) not in self.cache:
            self.prefetch([(path, kind)])
        return self.cache[(path, kind)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
