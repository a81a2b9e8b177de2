"""Write the EMOTIC and SAMSEMO sample fixtures (images, a .mat file, video clips) deterministically.

    .venv/bin/python data_builders/sample_raw/make_emotic_samsemo_samples.py

Everything is invented: pictures are seeded gradients with a few rectangles, clips are seeded moving
gradients (MPEG-4 part 2, 64x48 yuv420p, 8 frames at 10 fps), annotations and transcripts are made up.
Running it twice gives byte-identical files for one set of library versions (Pillow, scipy, PyAV/FFmpeg);
the outputs are committed, so tests do not run this script. Each fixture row's comment says what it tests.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import av
import numpy as np
from PIL import Image
from scipy.io import savemat

HERE = Path(__file__).resolve().parent
EMOTIC = HERE / "emotic"
SAMSEMO = HERE / "samsemo"
SEED = 20240611

# ---------------------------------------------------------------- EMOTIC

# (folder, filename, width, height); written under emotic/emotic/<folder>/
IMAGES = [
    ("mscoco/images", "COCO_fx_0001.jpg", 96, 72),
    ("mscoco/images", "COCO_fx_0002.jpg", 120, 90),
    ("emodb_small/images", "fx_0003.jpg", 64, 48),
    ("emodb_small/images", "fx_0004.jpg", 80, 60),
    ("mscoco/images", "COCO_fx_0005.jpg", 100, 75),
    ("emodb_small/images", "fx_0006.jpg", 72, 54),
]
NAN = float("nan")


def picture(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A smooth blue-green picture with a few darker rectangles; red stays low so a drawn red box stands out."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack(
        [20 + 30 * x / width, 80 + 120 * y / height, 200 - 100 * x / width], axis=-1
    )  # R low, G and B vary
    for _ in range(3):
        x0, y0 = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        w, h = int(rng.integers(6, width // 3)), int(rng.integers(6, height // 3))
        pixels[y0 : y0 + h, x0 : x0 + w] *= rng.uniform(0.5, 0.8)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB")


def cell(*names: str) -> np.ndarray:
    """A MATLAB cell array of strings."""
    array = np.empty((1, len(names)), dtype=object)
    for i, name in enumerate(names):
        array[0, i] = name
    return array


def struct_array(records: list[dict]) -> np.ndarray:
    """A 1xN MATLAB struct array (fields in the first record's order)."""
    array = np.zeros((1, len(records)), dtype=[(name, object) for name in records[0]])
    for i, record in enumerate(records):
        for name, value in record.items():
            array[0, i][name] = value
    return array


def vad(valence: float, arousal: float, dominance: float) -> dict:
    return {"valence": valence, "arousal": arousal, "dominance": dominance}


def train_person(bbox: list[int], categories: np.ndarray | str, continuous: dict) -> dict:
    return {
        "body_bbox": np.array(bbox, dtype=np.float64),
        "annotations_categories": {"categories": categories},
        "annotations_continuous": continuous,
        "gender": "Female",
        "age": "Adult",
    }


def eval_person(bbox: list[int], annotators: list[tuple], combined: tuple | None) -> dict:
    """A val/test person: one (categories, continuous) per annotator, plus combined fields unless None."""
    person = {
        "body_bbox": np.array(bbox, dtype=np.float64),
        "annotations_categories": struct_array([{"categories": cats} for cats, _ in annotators]),
    }
    if combined is not None:
        person["combined_categories"] = combined[0]
    person["annotations_continuous"] = struct_array([cont for _, cont in annotators])
    if combined is not None:
        person["combined_continuous"] = combined[1]
    person |= {"gender": "Male", "age": "Kid"}
    return person


def entry(image: int | tuple[str, str], persons: list[dict]) -> dict:
    """An image entry: an index into IMAGES, or (folder, filename) of an image that is not on disk."""
    folder, filename, width, height = IMAGES[image] if isinstance(image, int) else (*image, 64, 48)
    return {
        "filename": filename,
        "folder": folder,
        "image_size": {"n_col": width, "n_row": height},
        "original_database": {"name": folder.split("/")[0]},
        "person": struct_array(persons),
    }


def emotic_annotations() -> dict[str, np.ndarray]:
    train = [
        entry(0, [  # line 1
            train_person([10, 8, 50, 60], cell("Happiness", "Peace", "Affection"), vad(8, 4, 6)),  # p1 EC + VAD
            train_person([70, 30, 110, 80], "Engagement", vad(5, 5, 5)),  # p2: box clipped to 96x72; bare string
        ]),
        entry(2, [  # line 2: variant spellings; NaN valence -> EC only, source.vad = missing
            train_person([4, 4, 40, 44], cell("Disquitement", "Doubt/Confusion"), vad(NAN, 6, 7)),
        ]),
        entry(1, [  # line 3
            train_person([130, 10, 160, 50], cell("Peace"), vad(5, 5, 5)),  # p1 -> bbox_outside_image
            train_person([10, 10, 30, 30], cell("Boredom"), vad(5, 5, 5)),  # p2 -> label_not_in_label_set
            train_person([20, 10, 100, 85], cell("Fatigue", "Sadness"), vad(3, 2, 4)),  # p3 ok
        ]),
        entry(("mscoco/images", "COCO_fx_missing.jpg"), [  # line 4: image not on disk -> missing_media
            train_person([1, 1, 20, 20], cell("Peace"), vad(5, 5, 5)),
        ]),
    ]  # fmt: skip
    val = [
        entry(3, [  # line 1: three annotators + combined fields (combined wins)
            eval_person(
                [8, 6, 60, 56],
                [(cell("Sadness"), vad(2, 7, 3)), (cell("Sadness", "Suffering"), vad(3, 6, 4)),
                 (cell("Pain"), vad(1, 8, 2))],
                (cell("Sadness", "Suffering"), vad(2, 7, 3)),
            ),
        ]),
    ]  # fmt: skip
    test = [
        entry(4, [  # line 1: combined fields
            eval_person([5, 5, 45, 70], [(cell("Excitement"), vad(9, 8, 7))], (cell("Excitement", "Happiness"), vad(9, 8, 7))),
            eval_person([50, 20, 95, 74], [(cell("Anticipation"), vad(6, 5, 10))], (cell("Anticipation"), vad(6, 5, 10))),
        ]),
        entry(5, [  # line 2: no combined fields -> union of annotators, mean of V/A/D
            eval_person([10, 5, 60, 50], [(cell("Surprise"), vad(4, 9, 3)), (cell("Surprise", "Fear"), vad(5, 8, 3))], None),
            eval_person([2, 2, 30, 30], [(cell(), vad(5, 5, 5)), (cell(), vad(6, 6, 6))], None),  # p2 -> no_label
        ]),
    ]  # fmt: skip
    return {"train": struct_array(train), "val": struct_array(val), "test": struct_array(test)}


def write_emotic() -> None:
    shutil.rmtree(EMOTIC, ignore_errors=True)
    rng = np.random.default_rng(SEED)
    for folder, filename, width, height in IMAGES:
        path = EMOTIC / "emotic" / folder / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        picture(rng, width, height).save(path, format="JPEG", quality=85, subsampling=0)
    (EMOTIC / "Annotations").mkdir(parents=True)
    path = EMOTIC / "Annotations" / "Annotations.mat"
    savemat(path, emotic_annotations(), format="5", do_compression=False)
    # savemat stamps the 116-byte text header with the current time: replace it with a fixed text
    data = bytearray(path.read_bytes())
    data[:116] = b"MATLAB 5.0 MAT-file, written by make_emotic_samsemo_samples.py".ljust(116)
    path.write_bytes(bytes(data))


# ---------------------------------------------------------------- SAMSEMO

TSV_COLUMNS = [
    "utterance_id", "movie_title", "language",
    "emotion_1_annotator_1", "emotion_1_annotator_2", "emotion_1_annotator_3",
    "emotion_2_annotator_1", "emotion_2_annotator_2", "emotion_2_annotator_3",
    "aggregated_emotions", "transcript",
]  # fmt: skip
# (utterance_id, language, annotators' first emotions, annotators' second emotions, aggregated, transcript)
UTTERANCES = [
    ("en_fx_01", "EN", ("happiness", "happiness", "surprise"), ("", "", "happiness"), "happiness",
     'I can\'t believe we actually won, "champions"!'),  # train, line 2
    ("en_fx_02", "EN", ("sadness", "sadness", "surprise"), ("surprise", "", ""), "sadness, surprise", "Yes."),
    ("en_fx_03", "EN", ("neutral", "neutral", "neutral"), ("", "", ""), "neutral", "Yes."),  # validation, same text
    ("en_fx_04", "EN", ("", "", ""), ("", "", ""), "", "Where were you last night?"),  # no_label
    ("en_fx_05", "EN", ("anger", "anger", "anger"), ("", "", ""), "anger", "Get out of my house."),  # two splits
    ("en_fx_06", "EN", ("fear", "fear", "fear"), ("", "", ""), "fear", "Did you hear that?"),  # no clip on disk
    ("en_fx_07", "EN", ("surprise", "surprise", ""), ("", "", ""), "surprise", "Oh! You came."),  # in no split file
    ("pl_fx_01", "PL", ("happiness", "other", "happiness"), ("other", "", ""), "happiness;other emotions",
     "Nareszcie wakacje!"),
    ("pl_fx_02", "PL", ("disgust", "disgust", "anger"), ("", "", ""), "disgust", "Co to za zapach?"),
    ("pl_fx_03", "DE", ("sadness", "sadness", "sadness"), ("", "", ""), "sadness", "Nie wiem, co dalej."),  # mismatch
    ("de_fx_01", "DE", ("happiness", "happiness", "happiness"), ("", "", ""), "Joy", "Das ist wunderbar!"),
    ("de_fx_02", "DE", ("other", "other", "neutral"), ("", "", ""), "other", "Hm, na ja."),
    ("de_fx_03", "DE", ("anger", "fear", "disgust"), ("disgust", "anger", "fear"), "anger, disgust, fear",
     "Lass mich in Ruhe!"),  # too_many_labels
]  # fmt: skip
SPLITS = {
    "train_split_EN.txt": ["en_fx_01", "en_fx_02", "en_fx_05", "en_fx_04"],
    "valid_split_EN.txt": ["en_fx_03"],
    "test_split_EN.txt": ["en_fx_05", "en_fx_06", "en_fx_99"],  # en_fx_99: no metadata row -> not_in_metadata
    "train_split_PL.txt": ["pl_fx_01", "pl_fx_03"],
    "valid_split_PL.txt": ["pl_fx_02"],
    "train_split_DE.txt": ["de_fx_01", "de_fx_03"],
    "test_split_DE.txt": ["de_fx_02"],
}
# clips: EN and PL at <LANG>/, DE under data/DE/ (the other accepted layout); en_fx_06 has none
CLIPS = [
    "EN/en_fx_01.mp4", "EN/en_fx_02.mp4", "EN/en_fx_03.mp4", "EN/en_fx_05.mp4",
    "PL/pl_fx_01.mp4", "PL/pl_fx_02.mp4", "data/DE/de_fx_01.mp4", "data/DE/de_fx_02.mp4",
]  # fmt: skip


def write_clip(path: Path, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    base = rng.integers(40, 200, size=3)
    y, x = np.mgrid[0:48, 0:64]
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.bit_rate = 40_000
        for t in range(8):
            pixels = np.stack([base[c] + 40 * np.sin((x + 4 * t * (c + 1)) / 9 + y / 13) for c in range(3)], axis=-1)
            frame = av.VideoFrame.from_ndarray(np.clip(pixels, 0, 255).astype(np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_samsemo() -> None:
    shutil.rmtree(SAMSEMO, ignore_errors=True)
    SAMSEMO.mkdir()
    with open(SAMSEMO / "samsemo.tsv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter="\t", lineterminator="\n")
        writer.writerow(TSV_COLUMNS)
        for uid, lang, first, second, aggregated, transcript in UTTERANCES:
            writer.writerow([uid, "Fixture movie", lang, *first, *second, aggregated, transcript])
    (SAMSEMO / "splits").mkdir()
    for name, ids in SPLITS.items():
        (SAMSEMO / "splits" / name).write_text("".join(f"{uid}\n" for uid in ids), encoding="utf-8")
    rng = np.random.default_rng(SEED)
    for clip in CLIPS:
        write_clip(SAMSEMO / clip, rng)


if __name__ == "__main__":
    write_emotic()
    write_samsemo()
