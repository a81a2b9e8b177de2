"""Write the image sample fixtures (FER2013 + FER+, CFAPS) deterministically.

    .venv/bin/python data_builders/sample_raw/make_image_samples.py

Pictures are synthetic (seeded numpy noise shaped into a blurry face), labels and ratings invented. Running
it twice gives byte-identical files; the outputs are committed, so tests do not run this script. It
rewrites only sample_raw/fer2013/ and sample_raw/cfaps/.

FER2013 (fer2013.csv, 24 data rows, data row n on line n + 1) mirrors the real file (`emotion,pixels,Usage`,
LF line ends, no newline after the last row) with planted faults: a CRLF row (line 5, valid), 2303 pixels
(line 9), emotion 7 (line 10), a pixel 300 (line 11), Usage `Validation` (line 12). fer2013new.csv aligns
1:1 and plants an empty image name (line 13), contempt (14), unknown (15) and NF (22) majorities and a
tie (16); rows 6 and 19 relabel (sadness -> neutral, fear -> surprise).

CFAPS: the manual's folders with spelling quirks (`2disguse`, `4Sad`, `7happy`), three pictures per emotion
(24-64 px, jpg/png/bmp, grayscale and colour), a zero-byte picture (3fear/female/FF2.jpg), a truncated one
(5surprise/female/SUF2.jpg), a Thumbs.db, and ratings.csv with a rating without picture, bad intensities,
an emotion mismatch, a duplicate rating and a picture without rating (2disguse/female/DF2.jpg).
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
SEED = 20240611
SIDE = 48

# (Kaggle emotion, Usage, fault, FER+ votes or None for an empty image name)
# FER+ vote order: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FER_ROWS = [
    (0, "Training", None, (1, 0, 0, 0, 8, 1, 0, 0, 0, 0)),
    (1, "Training", None, (0, 0, 0, 1, 2, 7, 0, 0, 0, 0)),
    (2, "Training", None, (0, 0, 3, 0, 0, 0, 7, 0, 0, 0)),
    (3, "Training", "crlf", (0, 10, 0, 0, 0, 0, 0, 0, 0, 0)),
    (4, "Training", None, (6, 0, 0, 3, 0, 0, 0, 0, 1, 0)),  # relabelled: neutral
    (5, "Training", None, (0, 1, 9, 0, 0, 0, 0, 0, 0, 0)),
    (6, "Training", None, (9, 0, 0, 1, 0, 0, 0, 0, 0, 0)),
    (3, "Training", "short", (0, 10, 0, 0, 0, 0, 0, 0, 0, 0)),  # 2303 pixels
    (7, "Training", None, (0, 0, 0, 0, 0, 0, 0, 0, 10, 0)),  # emotion 7
    (0, "Training", "300", (0, 0, 0, 0, 10, 0, 0, 0, 0, 0)),  # a pixel 300
    (2, "Validation", None, (0, 0, 0, 0, 0, 0, 10, 0, 0, 0)),  # bad Usage
    (3, "Training", None, None),  # FER+: not a face
    (4, "Training", None, (1, 0, 0, 2, 0, 0, 0, 6, 1, 0)),  # contempt
    (6, "PublicTest", None, (2, 0, 0, 1, 0, 0, 0, 0, 7, 0)),  # unknown
    (5, "PublicTest", None, (0, 0, 4, 0, 0, 0, 4, 0, 2, 0)),  # tie surprise / fear
    (0, "PublicTest", None, (0, 0, 0, 0, 6, 4, 0, 0, 0, 0)),
    (1, "PublicTest", None, (0, 0, 0, 0, 3, 5, 0, 2, 0, 0)),
    (2, "PublicTest", None, (0, 0, 6, 0, 0, 0, 4, 0, 0, 0)),  # relabelled: surprise
    (3, "PrivateTest", None, (1, 9, 0, 0, 0, 0, 0, 0, 0, 0)),
    (4, "PrivateTest", None, (2, 0, 0, 8, 0, 0, 0, 0, 0, 0)),
    (5, "PrivateTest", None, (0, 0, 2, 0, 0, 0, 1, 0, 0, 7)),  # NF
    (6, "PrivateTest", None, (10, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
    (1, "PrivateTest", None, (0, 0, 0, 0, 1, 9, 0, 0, 0, 0)),
    (0, "PrivateTest", None, (0, 0, 0, 0, 7, 1, 2, 0, 0, 0)),  # last row: no trailing newline
]
FERPLUS_HEADER = (
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"  # one line
)

# CFAPS: folder -> [(sex folder, file name, size, colour)]
CFAPS_FOLDERS = {
    "1anger": [("male", "AM1.jpg", 40, False), ("male", "AM2.png", 32, True), ("female", "AF1.bmp", 24, False)],
    "2disguse": [("male", "DM1.jpg", 48, False), ("female", "DF1.png", 36, False), ("female", "DF2.jpg", 44, True)],
    "3fear": [("male", "FM1.png", 28, False), ("female", "FF1.jpg", 64, False), ("female", "FF2.jpg", 0, False)],
    "4Sad": [("male", "SAM1.jpg", 52, False), ("female", "SAF1.bmp", 30, True), ("female", "SAF2.png", 26, False)],
    "5surprise": [
        ("male", "SUM1.jpg", 56, False),
        ("female", "SUF19.bmp", 34, False),
        ("female", "SUF2.jpg", -1, False),  # -1: truncated JPEG
    ],
    "6neutral": [("male", "NM1.png", 38, False), ("male", "NM2.jpg", 46, True), ("female", "NF1.jpg", 42, False)],
    "7happy": [("male", "HM1.jpg", 60, False), ("female", "HF1.png", 24, False), ("female", "HF2.bmp", 50, True)],
}
RATINGS = [
    ("file", "emotion", "agreement", "intensity"),
    ("AM1.jpg", "anger", "92.0", "6.84"),  # line 2
    ("AM2", "anger", "85.5%", "5.2"),  # by stem
    ("AF1.bmp", "Anger", "88", "7.1"),
    ("DM1.jpg", "disgust", "75", "6.0"),
    ("DF1.png", "disgust", "70.2", "5.5"),  # DF2.jpg has no rating
    ("FM1.png", "fear", "81", "7.9"),
    ("FF1.jpg", "fear", "66", "4.3"),
    ("FF2.jpg", "fear", "72", "5.0"),  # line 9: zero-byte picture
    ("SAM1.jpg", "sad", "90", "6.1"),
    ("SAF1.bmp", "悲伤", "78", "5.8"),
    ("SAF2.png", "sadness", "80", "high"),  # line 12: bad_score
    ("SUM1.jpg", "surprise", "95", "8.2"),
    ("suf19.BMP", "surprise", "83", "9"),  # case-insensitive match; top of the scale
    ("SUF2.jpg", "surprise", "77", "6.6"),  # line 15: truncated picture
    ("NM1.png", "neutral", "88", "1.0"),  # bottom of the scale
    ("NM2.jpg", "neutral", "91", "2.2"),
    ("NF1.jpg", "happy", "64", "3.5"),  # line 18: emotion_mismatch
    ("HM1.jpg", "happy", "97", "7.7"),
    ("HF1.png", "happiness", "93", "12"),  # line 20: bad_score (out of range)
    ("7happy/female/HF2.bmp", "happy", "89", "6.9"),  # a path ending in the name
    ("XM9.jpg", "anger", "70", "5.0"),  # line 22: rating_without_image
    ("HM1.jpg", "happy", "96", "7.5"),  # line 23: duplicate_rating
]


def face(rng: np.random.Generator, side: int) -> np.ndarray:
    """A blurry synthetic face in [0, 255]: an oval, two eyes, a mouth, plus seeded noise."""
    y, x = np.mgrid[0:side, 0:side] / max(side - 1, 1) * 2 - 1
    image = 60 + 120 * ((x / 0.75) ** 2 + (y / 0.95) ** 2 < 1)
    for ex in (-0.35, 0.35):
        image = np.where((x - ex) ** 2 + (y + 0.25) ** 2 < 0.012, 30, image)
    mouth = rng.uniform(-0.2, 0.2)
    image = np.where((abs(y - 0.45 - mouth * x**2) < 0.06) & (abs(x) < 0.4), 40, image)
    image = image + rng.normal(0, 18, (side, side))
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def fer_pixels(rng: np.random.Generator, fault: str | None) -> str:
    values = face(rng, SIDE).reshape(-1).tolist()
    if fault == "short":
        values = values[:-1]
    if fault == "300":
        values[1000] = 300
    return " ".join(map(str, values))


def write_fer(rng: np.random.Generator) -> None:
    out = HERE / "fer2013"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    lines, plus = ["emotion,pixels,Usage\n"], [FERPLUS_HEADER + "\n"]
    for index, (emotion, usage, fault, votes) in enumerate(FER_ROWS):
        end = "\r\n" if fault == "crlf" else "\n"
        lines.append(f"{emotion},{fer_pixels(rng, fault)},{usage}{end}")
        name = "" if votes is None else f"fer{index:07d}.png"
        counts = votes or (0, 0, 0, 0, 0, 0, 0, 0, 0, 10)
        plus_usage = usage if usage != "Validation" else "Training"
        plus.append(f"{plus_usage},{name},{','.join(map(str, counts))}\n")
    (out / "fer2013.csv").write_bytes("".join(lines).rstrip("\n").encode("ascii"))
    (out / "fer2013new.csv").write_bytes("".join(plus).encode("ascii"))


def encode(image: Image.Image, suffix: str) -> bytes:
    buffer = io.BytesIO()
    fmt = {".jpg": "JPEG", ".png": "PNG", ".bmp": "BMP"}[suffix]
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def write_cfaps(rng: np.random.Generator) -> None:
    out = HERE / "cfaps"
    shutil.rmtree(out, ignore_errors=True)
    for folder, pictures in CFAPS_FOLDERS.items():
        for sex in ("male", "female"):
            (out / folder / sex).mkdir(parents=True)
        for sex, name, side, colour in pictures:
            path = out / folder / sex / name
            if side == 0:
                path.write_bytes(b"")
                continue
            pixels = face(rng, abs(side) if side > 0 else 40)
            image = Image.fromarray(pixels)
            if colour:
                image = Image.merge("RGB", (image, image.point(lambda v: v * 9 // 10), image.point(lambda v: v // 2)))
            data = encode(image, path.suffix)
            path.write_bytes(data if side > 0 else data[: len(data) // 2])
    (out / "6neutral" / "female" / "Thumbs.db").write_bytes(b"\x00junk")
    with open(out / "ratings.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f, lineterminator="\n").writerows(RATINGS)


def main() -> None:
    rng = np.random.default_rng(SEED)
    write_fer(rng)
    write_cfaps(rng)


if __name__ == "__main__":
    main()
