"""Cost of an independent corpus (media copied or reflinked, never hard-linked from the raw tree) and of a
content-keyed stage cache, on a video-heavy MELD-layout build.

    python benchmarks/bench_media_copy.py [--clips 200] [--seconds 3] [--size 640x360] [--workers 2]
                                          [--baseline DIR] [--workdir /tmp/mmaff-bench-media]

Writes a raw root in MELD's layout (`meld/train_sent_emo.csv` + `meld/train_splits/dia{D}_utt{U}.mp4`): one
noise clip of about MELD's average size (~0.7-1 MB, encoded with PyAV) copied under `--clips` names, one row
each. Then runs the real CLI (`python -m mmaff.data.build --datasets meld`) in fresh processes:

  cold     --no-cache, every clip probed, placed and (new code) hashed
  warm     the same command with the cache: the stage is reused
  touched  warm after every clip's mtime changed (content not): the new code re-hashes the clips, then reuses

`--baseline DIR` runs the same steps with a checkout of the old code (hard links raw -> stage -> corpus, cache
keyed on names and sizes), e.g. `git worktree add /tmp/mmaff-old 160c3dc`. It also times the parts alone over
the media set: hard link vs copy (reflink where the file system has it) vs sha256 vs xxh3-128, and reports
whether FICLONE works in the work folder. Bytes: what the corpus and its stage add on disk beyond the raw tree
(blocks of inodes not shared with it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xxhash

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mmaff.data.stage import copy_independent, reflink  # noqa: E402

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
EMOTIONS = ("neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust")
SENTIMENTS = {"neutral": "neutral", "joy": "positive", "surprise": "positive"}


def _clip(path: Path, seconds: float, width: int, height: int, fps: int = 24) -> None:
    """A gradient with noise (which compresses badly): about MELD's bytes per second at 640x360."""
    import av

    rng = np.random.default_rng(0)
    base = np.linspace(0, 200, width, dtype=np.uint8)[None, :, None].repeat(height, 0).repeat(3, 2)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = width, height, "yuv420p", 2_000_000
        for _ in range(int(seconds * fps)):
            frame = base + rng.integers(0, 24, (height, width, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_raw(raw: Path, clips: int, seconds: float, width: int, height: int) -> int:
    """MELD layout with `clips` rows and clips; returns the bytes of one clip."""
    clip_dir = raw / "meld" / "train_splits"
    clip_dir.mkdir(parents=True)
    _clip(clip_dir / "dia0_utt0.mp4", seconds, width, height)
    rows = [HEADER]
    for i in range(clips):
        dialogue, utterance = divmod(i, 10)
        if i:
            shutil.copyfile(clip_dir / "dia0_utt0.mp4", clip_dir / f"dia{dialogue}_utt{utterance}.mp4")
        emotion = EMOTIONS[i % len(EMOTIONS)]
        sentiment = SENTIMENTS.get(emotion, "negative")
        rows.append(f'{i + 1},Line number {i}.,Ross,{emotion},{sentiment},{dialogue},{utterance},1,1,'
                    f'"00:00:01,000","00:00:03,000"')  # fmt: skip
    (raw / "meld" / "train_sent_emo.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    return (clip_dir / "dia0_utt0.mp4").stat().st_size


def run_build(code: Path, raw: Path, out: Path, workers: int, cache: bool) -> float:
    command = [
        sys.executable,
        "-m",
        "mmaff.data.build",
        "--raw-root",
        str(raw),
        "--out",
        str(out),
        "--datasets",
        "meld",
    ]
    command += ["--workers", str(workers)] + ([] if cache else ["--no-cache"])
    env = {**os.environ, "PYTHONPATH": str(code), "TQDM_DISABLE": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=code, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"build failed ({code}):\n{done.stdout}\n{done.stderr}")
    return elapsed


def added_bytes(raw: Path, *folders: Path) -> int:
    """Disk blocks (bytes) of the files under `folders` whose inodes are not the raw tree's."""
    raw_inodes = {p.stat().st_ino for p in raw.rglob("*") if p.is_file()}
    seen, total = set(), 0
    for folder in folders:
        for path in folder.rglob("*") if folder.exists() else []:
            st = path.lstat()
            if path.is_file() and st.st_ino not in raw_inodes and st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


def touch_all(folder: Path) -> None:
    now = time.time_ns()
    for path in folder.rglob("*.mp4"):
        os.utime(path, ns=(now, now))


def measure(code: Path, raw: Path, work: Path, workers: int) -> dict[str, float]:
    out = work / "corpus"
    result = {"cold": run_build(code, raw, out, workers, cache=False)}
    result["bytes"] = added_bytes(raw, out, out.with_name(f".{out.name}.stage"))
    result["warm"] = run_build(code, raw, out, workers, cache=True)
    touch_all(raw)
    result["touched"] = run_build(code, raw, out, workers, cache=True)
    shutil.rmtree(work)
    return result


def parts(raw: Path, work: Path) -> dict[str, float]:
    """The media step alone over the clip set: link, copy (reflink if possible), hash."""
    clips = sorted((raw / "meld" / "train_splits").glob("*.mp4"))
    timings = {}
    for name, place in (("hard link", os.link), ("copy_independent", copy_independent)):
        target = work / name.replace(" ", "_")
        target.mkdir(parents=True)
        os.sync()
        start = time.perf_counter()
        for clip in clips:
            place(clip, target / clip.name)
        timings[name] = time.perf_counter() - start
    for name, digest in (("sha256", hashlib.sha256), ("xxh3-128", xxhash.xxh3_128)):
        start = time.perf_counter()
        for clip in clips:
            digest(clip.read_bytes()).hexdigest()
        timings[name] = time.perf_counter() - start
    probe = work / "probe"
    timings["reflink works"] = reflink(clips[0], probe)
    shutil.rmtree(work)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", type=Path, default=None, help="checkout of the old (hard-link) code")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mmaff-bench-media"))
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    shutil.rmtree(args.workdir, ignore_errors=True)
    raw = args.workdir / "raw"
    clip_bytes = make_raw(raw, args.clips, args.seconds, width, height)
    media_mb = clip_bytes * args.clips / 1e6
    fs = subprocess.run(["df", "-T", str(args.workdir)], capture_output=True, text=True).stdout.split("\n")[1]
    print(f"{args.clips} clips x {clip_bytes / 1e6:.2f} MB = {media_mb:.0f} MB ({args.size}, {args.seconds} s), "
          f"workers {args.workers}; file system: {fs.split()[1]}")  # fmt: skip
    timings = parts(raw, args.workdir / "parts")
    print(f"FICLONE (reflink) works here: {timings.pop('reflink works')}")
    print("\n| media step alone | s | MB/s |\n|---|---:|---:|")
    for name, seconds in timings.items():
        print(f"| {name} | {seconds:.3f} | {media_mb / seconds:.0f} |")
    runs = {"new (copy/reflink + sha256, content-keyed cache)": measure(ROOT, raw, args.workdir / "new", args.workers)}
    if args.baseline:
        runs["old (hard links, name+size cache)"] = measure(args.baseline, raw, args.workdir / "old", args.workers)
    print("\n| code | cold build s | warm (reused) s | warm after touching every clip s | MB added on disk |")
    print("|---|---:|---:|---:|---:|")
    for name, r in runs.items():
        print(f"| {name} | {r['cold']:.2f} | {r['warm']:.2f} | {r['touched']:.2f} | {r['bytes'] / 1e6:.1f} |")
    if len(runs) == 2:
        new, old = runs.values()
        print("\nnew / old: " + ", ".join(f"{k} {new[k] / old[k]:.2f}x" for k in ("cold", "warm", "touched")))
    shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
