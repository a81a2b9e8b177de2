"""Write the bundled video samples: MELD (`meld/`) and CH-SIMS (`chsims/`), CSVs plus tiny mp4 clips.

Deterministic: fixed numpy seed, bit-exact muxing and encoding flags, no timestamps in the files, so
rerunning it rewrites byte-identical files (with the same PyAV/FFmpeg build). Each clip is 64x48 yuv420p
MPEG-4 Part 2 at 10 fps, 6-12 frames of a moving colour gradient, a few KB.

The samples imitate the real releases and their warts:
  MELD: CRLF CSVs with quoted SRT times (one with a one-digit hour), curly quotes and ellipses, every
  emotion and sentiment; a dev row whose clip is missing (like the real dev dia110_utt7), a truncated clip
  (like train dia125_utt3), a zero-byte clip, an unannotated extra clip (like final_videos_testdia101_utt0),
  an unknown emotion and an unknown sentiment, a non-integer dialogue id, an unquoted time that splits
  into extra columns, and an empty utterance.
  CH-SIMS: label.csv over train/valid/test with integer and zero-padded clip ids, a label off the 0.2 grid
  (0.3), float noise within tolerance, a "dev" mode, an annotation that disagrees with the sign, a row
  whose clip is missing, an empty transcript and a row with too many columns.

Run: .venv/bin/python data_builders/sample_raw/make_video_samples.py
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 20240611
WIDTH, HEIGHT, FPS = 64, 48, 10

MELD_HEADER = [
    "Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID", "Season",
    "Episode", "StartTime", "EndTime",
]  # fmt: skip
# (Sr No., Utterance, Speaker, Emotion, Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, Start, End);
# a row given as a plain string is written verbatim (a malformed line)
MELD_ROWS: dict[str, list] = {
    "train": [
        (1, "Oh my God, you’re here!", "Rachel", "joy", "positive", 0, 0, 3, 5, "00:12:01,100", "00:12:03,250"),
        (2, "You’re kidding… right?", "Ross", "surprise", "positive", 0, 1, 3, 5, "0:12:03,300", "0:12:05,010"),
        (3, "I miss him.", "Monica", "sadness", "negative", 0, 2, 3, 5, "00:12:05,200", "00:12:06,900"),
        (4, "Get out!", "Joey", "anger", "negative", 1, 0, 3, 6, "00:03:10,000", "00:03:11,500"),  # corrupt clip
        (5, "Is that a spider?", "Phoebe", "fear", "negative", 1, 1, 3, 6, "00:03:11,600", "00:03:13,000"),
        (6, "Ew. That’s gross.", "Chandler", "disgust", "negative", 1, 2, 3, 6, "00:03:13,100", "00:03:14,800"),
        (7, "Okay.", "Rachel", "neutral", "neutral", 2, 0, 4, 1, "00:20:00,000", "00:20:01,000"),
        (8, "We were on a break!", "Ross", "contempt", "negative", 2, 1, 4, 1, "00:20:01,200", "00:20:03,400"),
    ],
    "dev": [
        (1, "Who ate my sandwich?", "Ross", "anger", "negative", 0, 0, 5, 9, "00:01:00,000", "00:01:02,000"),
        (2, "Okay.", "Joey", "neutral", "neutral", 0, 1, 5, 9, "00:01:02,100", "00:01:03,000"),  # same text as train
        (3, "I love this song!", "Phoebe", "joy", "positive", 1, 7, 2, 3, "00:07:00,000", "00:07:02,000"),  # no clip
        (4, "", "Chandler", "neutral", "neutral", 1, 8, 2, 3, "00:07:02,100", "00:07:03,000"),
    ],
    "test": [
        (1, "That is disgusting.", "Rachel", "disgust", "negative", 0, 0, 8, 2, "00:05:00,000", "00:05:01,500"),
        (2, "What was that noise?", "Monica", "fear", "negative", 0, 1, 8, 2, "0:05:01,600", "0:05:03,000"),
        (3, "Hi.", "Joey", "neutral", "neutral", "1a", 0, 8, 2, "00:06:00,000", "00:06:01,000"),
        "4,Pivot!,Ross,anger,negative,1,1,5,16,00:09:00,000,00:09:02,000",  # unquoted times: 13 columns
        (5, "Yes!", "Chandler", "joy", "mixed", 2, 0, 6, 1, "00:10:00,000", "00:10:01,000"),
    ],
}
MELD_CLIP_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
MELD_GOOD_CLIPS = {
    "train": ["dia0_utt0", "dia0_utt1", "dia0_utt2", "dia1_utt1", "dia2_utt0", "dia2_utt1"],
    "dev": ["dia0_utt0", "dia0_utt1", "dia1_utt8"],  # dia1_utt7 is missing, as dia110_utt7 in the real dev set
    "test": ["dia0_utt0", "dia0_utt1", "dia2_utt0", "final_videos_testdia101_utt0"],  # the last has no row
}
MELD_TRUNCATED = "train_splits/dia1_utt0.mp4"  # like train dia125_utt3
MELD_EMPTY = "train_splits/dia1_utt2.mp4"

CHSIMS_HEADER = ["video_id", "clip_id", "text", "label", "label_T", "label_A", "label_V", "annotation", "mode"]
CHSIMS_ROWS: list = [
    ("video_0001", "1", "我真的受不了了。", "-0.8", "-1.0", "-0.6", "-0.8", "Negative", "train"),
    ("video_0001", "2", "今天天气还行吧", "0.0", "0.2", "0.0", "-0.2", "Neutral", "train"),
    ("video_0001", "3", "太好了，我们赢了, 真的！", "0.6", "0.8", "0.4", "0.6", "Positive", "train"),
    ("video_0002", "0001", "这是我见过最美的风景。", "1.0", "1.0", "0.8", "1.0", "Positive", "train"),
    ("video_0002", "2", "嗯，好像也没什么。", "-0.2", "0.0", "-0.2", "-0.4", "Neutral", "train"),  # disagrees
    ("video_0002", "3", "你说得对。", "0.3", "0.4", "0.2", "0.2", "Positive", "train"),  # off the grid
    ("video_0003", "1", "还不错。", "0.4", "0.4", "0.2", "0.6", "Positive", "valid"),
    ("video_0003", "2", "我不太喜欢这样。", "-0.4", "-0.6", "-0.2", "-0.4", "Negative", "valid"),
    ("video_0003", "3", "好吧。", "0.2", "0.2", "0.0", "0.2", "Positive", "dev"),  # bad mode
    ("video_0004", "1", "简直糟透了！", "-1.0", "-1.0", "-1.0", "-1.0", "Negative", "test"),
    ("video_0004", "2", "我很开心见到你。", "0.8", "0.8", "0.6", "1.0", "Positive", "test"),
    ("video_0004", "3", "他走了。", "0.0", "-0.2", "0.0", "0.2", "Neutral", "test"),  # clip missing
    ("video_0005", "1", "  ", "-0.6", "-0.6", "-0.6", "-0.6", "Negative", "test"),  # empty text
    ("video_0005", "2", "唉，算了吧。", "-0.6000000001", "-0.8", "-0.4", "-0.6", "Negative", "test"),
    "video_0005,3,多了一列,0.2,0.2,0.2,0.2,Positive,test,extra",
    ("../../../etc", "1", "路径穿越。", "0.2", "0.2", "0.2", "0.2", "Positive", "train"),  # leaves the folder
]
CHSIMS_CLIPS = [
    "video_0001/0001", "video_0001/0002", "video_0001/0003", "video_0002/0001", "video_0002/0002",
    "video_0002/0003", "video_0003/0001", "video_0003/0002", "video_0003/0003", "video_0004/0001",
    "video_0004/0002", "video_0005/0001", "video_0005/0002",
]  # fmt: skip


def write_clip(path: Path, rng: np.random.Generator) -> None:
    """A 64x48 MPEG-4 clip of 6-12 frames: a colour gradient moving across the frame."""
    frames = int(rng.integers(6, 13))
    colour = rng.integers(40, 216, size=3)
    speed = int(rng.integers(2, 6))
    x = np.arange(WIDTH)[None, :, None]
    y = np.arange(HEIGHT)[:, None, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        container.metadata.clear()
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.codec_context.flags |= av.codec.context.Flags.bitexact
        stream.codec_context.bit_rate = 64_000
        for i in range(frames):
            image = (colour[None, None, :] * 0.5 + (x * 2 + y + i * speed * 4) % 128).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_csv(path: Path, header: list[str], rows: list, newline: str) -> None:
    """Rows quoted only where needed (like pandas' to_csv); a string row is written verbatim."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    for row in rows:
        if isinstance(row, str):
            out.write(row + newline)
        else:
            writer.writerow(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out.getvalue().encode("utf-8"))


def make_meld(root: Path, rng: np.random.Generator) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for split, rows in MELD_ROWS.items():
        write_csv(root / f"{split}_sent_emo.csv", MELD_HEADER, rows, "\r\n")
        for name in MELD_GOOD_CLIPS[split]:
            write_clip(root / MELD_CLIP_DIRS[split] / f"{name}.mp4", rng)
    truncated = root / MELD_TRUNCATED
    write_clip(truncated, rng)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 3])
    (root / MELD_EMPTY).write_bytes(b"")


def make_chsims(root: Path, rng: np.random.Generator) -> None:
    shutil.rmtree(root, ignore_errors=True)
    write_csv(root / "label.csv", CHSIMS_HEADER, CHSIMS_ROWS, "\n")
    for name in CHSIMS_CLIPS:
        write_clip(root / "Raw" / f"{name}.mp4", rng)


def main() -> None:
    rng = np.random.default_rng(SEED)
    make_meld(HERE / "meld", rng)
    make_chsims(HERE / "chsims", rng)


if __name__ == "__main__":
    main()
