"""Video decoders side by side: decord (eva-decord wheel), PyAV and torchcodec (where it imports).

    python benchmarks/bench_decoders.py [--workdir /tmp/mmaff-decoders]

Writes deterministic test clips with PyAV (short MELD-like clips and a 60 s clip, MPEG-4 in mp4), then for
each decoder: open + probe, and decode the frames a 2 fps / max 128 frames sampling picks (the MMAFFBen
budget), `--repeat` times. Prints decoded frames per second (median) and the speed ratio to PyAV. Every
decoder must return the same frame count and frame shape, which is checked.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import av
import numpy as np

from mmaff.data.media import MediaBudget, probe_video, sample_frame_indices

CLIPS = {"short_3s_640x360": (75, 25, 640, 360), "long_60s_640x360": (1800, 30, 640, 360)}


def write_clip(path: Path, frames: int, fps: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.roll(base, i * 3, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def decode_pyav(path: Path, indices: list[int]) -> np.ndarray:
    wanted, frames = set(indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                frames[i] = frame.to_ndarray(format="rgb24")
            if i >= indices[-1]:
                break
    return np.stack([frames[i] for i in indices])


def decode_decord(path: Path, indices: list[int]) -> np.ndarray:
    import decord

    return decord.VideoReader(str(path), num_threads=1).get_batch(indices).asnumpy()


def decode_torchcodec(path: Path, indices: list[int]) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    return VideoDecoder(str(path)).get_frames_at(indices).data.permute(0, 2, 3, 1).numpy()


DECODERS = {"pyav": decode_pyav, "decord": decode_decord, "torchcodec": decode_torchcodec}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mmaff-decoders"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    print(f"{'clip':<20} {'decoder':<11} {'frames':>6} {'median s':>9} {'frames/s':>9} {'vs pyav':>8}")
    for name, spec in CLIPS.items():
        path = args.workdir / f"{name}.mp4"
        write_clip(path, *spec)
        indices = sample_frame_indices(probe_video(path), MediaBudget())
        reference, pyav_rate = None, None
        for decoder, decode in DECODERS.items():
            try:
                frames = decode(path, indices)
            except Exception as err:  # noqa: BLE001 - a decoder that does not install or run here is reported, not fatal
                print(f"{name:<20} {decoder:<11} unavailable: {type(err).__name__}: {str(err)[:80]}")
                continue
            if reference is None:
                reference = frames.shape
            assert frames.shape == reference, (decoder, frames.shape, reference)
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                decode(path, indices)
                times.append(time.perf_counter() - start)
            rate = len(indices) / statistics.median(times)
            pyav_rate = pyav_rate or rate
            print(
                f"{name:<20} {decoder:<11} {len(indices):>6} {statistics.median(times):>9.3f} {rate:>9.0f} {rate / pyav_rate:>7.2f}x"
            )


if __name__ == "__main__":
    main()
