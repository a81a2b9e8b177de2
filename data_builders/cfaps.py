"""CFAPS, the Chinese Facial Affective Picture System (Gong, Huang, Wang & Luo, 2011), from the authors' copy.

Layout (from the system's manual; there is no public download): seven emotion folders `1anger/ 2disguse/
3fear/ 4sad/ 5surprise/ 6neutral/ 7happy/`, each with `male/` and `female/`, holding pictures named by
emotion + sex abbreviation and a running number (`AM1.jpg`, `SUF19.bmp`; .jpg .jpeg .png .bmp), plus a
ratings table `ratings.csv` (UTF-8; columns `file,emotion,agreement,intensity`): the picture (its file name,
its stem, or a path ending in it; matched case-insensitively), its emotion, the raters' agreement
(percent, kept as `source.agreement`) and its intensity, the mean 1-9 rating by 100 raters. The manual's
table is a spreadsheet of unknown format: export it to this CSV.

Records: EC for every picture (gold = its folder's emotion, ekman7 names) and EI for every rated picture
(gold = (intensity - 1) / 8 in [0, 1], facet {"emotion": <the folder's emotion>} so the prompt names it).
A picture without a usable rating (none, or one rejected) gets its EC record only: no EI is invented,
and the EC record says `source.rated: false` (the manifest's EC and EI counts differ by those pictures). Source id =
`<emotion>-<sex>-<file stem>` (e.g. `anger-male-AM1`), so EC and EI of one picture share the seeded
split. EC rows are the picture files (line 1 of `<folder>/<sex>/<file>`), EI rows the ratings.csv lines.

Warts: folder names vary (`2disguse` [sic] / disgust, `4sad` / sadness, `7happy` / happiness, any case,
the leading digit optional; Chinese names 愤怒 厌恶 恐惧 悲伤 惊讶 中性 高兴 are accepted too), and
`__MACOSX/` and dot-folders left by archivers are skipped, as are Thumbs.db, desktop.ini and dot-files.
The manual's counts are inconsistent (870 stated, its per-class counts sum to 900).

Rejects: rating_without_image (a ratings row naming no picture), ambiguous_rating (its stem names several),
duplicate_rating (a second row for one picture), bad_label (an emotion outside ekman7), bad_score (an
intensity that is not a number in 1..9), emotion_mismatch (the table's emotion differs from the folder's:
both the rating and the picture's EC row are rejected, since the two sources disagree about the picture),
unexpected_file (a non-image file, or a picture outside male/ and female/). Missing, empty and
undecodable pictures are rejected by the pipeline (missing_media, empty_media, undecodable_image). An
unknown folder is a RawFormatError naming it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mmaff.data.builder import BuildContext, Example, RawFormatError, Reject, clean_text, excerpt, read_csv

RATINGS = "ratings.csv"
RATINGS_HEADER = ["file", "emotion", "agreement", "intensity"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
JUNK_FILES = {"thumbs.db", "desktop.ini"}
SKIPPED_FOLDERS = {"__macosx"}
INTENSITY_MIN, INTENSITY_MAX = 1.0, 9.0
EMOTION_ALIASES = {
    "anger": "anger", "angry": "anger", "愤怒": "anger",
    "disgust": "disgust", "disguse": "disgust", "disgusted": "disgust", "厌恶": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "恐惧": "fear",
    "sad": "sadness", "sadness": "sadness", "悲伤": "sadness",
    "surprise": "surprise", "surprised": "surprise", "惊讶": "surprise",
    "neutral": "neutral", "中性": "neutral",
    "happy": "happiness", "happiness": "happiness", "高兴": "happiness",
}  # fmt: skip
SEX_ALIASES = {"male": "male", "female": "female", "男": "male", "女": "female"}
_FOLDER = re.compile(r"^\d*[\s_.-]*(.+?)\s*$")


@dataclass(frozen=True)
class Picture:
    relative: str  # path inside the dataset folder, posix
    emotion: str  # ekman7 name of its folder
    sex: str

    @property
    def name(self) -> str:
        return self.relative.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]

    @property
    def source_id(self) -> str:
        return f"{self.emotion}-{self.sex}-{self.stem}"


@dataclass(frozen=True)
class Rating:
    line: int
    picture: Picture
    emotion: str
    agreement: float | None
    intensity: float


def _skipped(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in JUNK_FILES | SKIPPED_FOLDERS


def folder_emotion(name: str) -> str | None:
    """The ekman7 name of an emotion folder (`1anger`, `2disguse`, `4Sad`, `7happy`), or None."""
    match = _FOLDER.match(name)
    return EMOTION_ALIASES.get(match.group(1).lower()) if match else None


def scan_pictures(ctx: BuildContext) -> tuple[list[Picture], list[Reject]]:
    """Pictures in the emotion/sex folders (sorted), and rejects for stray files; RawFormatError on an unknown
    folder."""
    pictures: list[Picture] = []
    rejects: list[Reject] = []
    seen: dict[str, str] = {}
    for folder in sorted(p for p in ctx.raw_dir.iterdir() if p.is_dir() and not _skipped(p)):
        emotion = folder_emotion(folder.name)
        if emotion is None:
            raise RawFormatError(_rel(ctx, folder), None, "unknown folder (expected the emotion folders, e.g. 1anger)")
        if emotion in seen:
            raise RawFormatError(_rel(ctx, folder), None, f"a second {emotion} folder besides {seen[emotion]}")
        seen[emotion] = folder.name
        for entry in sorted(p for p in folder.iterdir() if not _skipped(p)):
            if not entry.is_dir():
                rejects.append(_stray(ctx, entry, "not inside male/ or female/"))
                continue
            sex = SEX_ALIASES.get(entry.name.lower())
            if sex is None:
                raise RawFormatError(_rel(ctx, entry), None, "unknown folder (expected male/ and female/)")
            _scan_sex_folder(ctx, entry, emotion, sex, pictures, rejects)
    if not pictures:
        raise RawFormatError(_rel(ctx, ctx.raw_dir), None, "no pictures in emotion folders (1anger/male/AM1.jpg ...)")
    return pictures, rejects


def _scan_sex_folder(
    ctx: BuildContext, folder: Path, emotion: str, sex: str, pictures: list[Picture], rejects: list[Reject]
) -> None:
    for file in sorted(p for p in folder.iterdir() if not _skipped(p)):
        if file.is_dir():
            raise RawFormatError(_rel(ctx, file), None, "unexpected folder inside a male/female folder")
        if file.suffix.lower() not in IMAGE_SUFFIXES:
            rejects.append(_stray(ctx, file, f"not one of {sorted(IMAGE_SUFFIXES)}"))
            continue
        pictures.append(Picture(file.relative_to(ctx.raw_dir).as_posix(), emotion, sex))


def _rel(ctx: BuildContext, path: Path) -> str:
    return path.relative_to(ctx.raw_root).as_posix()


def _stray(ctx: BuildContext, path: Path, why: str) -> Reject:
    return Reject(_rel(ctx, path), 1, "unexpected_file", path.name, why)


def _picture_index(pictures: list[Picture]) -> dict[str, list[Picture]]:
    """Lower-cased file names and stems -> pictures (a stem may name several)."""
    index: dict[str, list[Picture]] = {}
    for picture in pictures:
        index.setdefault(picture.name.lower(), []).append(picture)
        if picture.stem.lower() != picture.name.lower():
            index.setdefault(picture.stem.lower(), []).append(picture)
    return index


def parse_intensity(raw: str) -> float | None:
    """The 1-9 mean rating, or None if it is not a finite number in range."""
    try:
        value = float(clean_text(raw))
    except ValueError:
        return None
    return value if math.isfinite(value) and INTENSITY_MIN <= value <= INTENSITY_MAX else None


def parse_agreement(raw: str) -> float | None:
    try:
        value = float(clean_text(raw).removesuffix("%"))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_ratings(
    path: Path, rel: str, pictures: list[Picture]
) -> tuple[dict[Picture, Rating], dict[Picture, Reject], list[Reject]]:
    """(usable ratings by picture, EC rejects for pictures whose rating disagrees with their folder, rejects of
    ratings.csv rows)."""
    index = _picture_index(pictures)
    claimed: dict[Picture, int] = {}  # the first row naming a picture claims it, usable or not
    ratings: dict[Picture, Rating] = {}
    mismatched: dict[Picture, Reject] = {}
    rejects: list[Reject] = []
    for item in read_csv(path, rel, header=RATINGS_HEADER):
        result, picture = (item, None) if isinstance(item, Reject) else _rating_row(rel, item, index, claimed)
        if isinstance(result, Rating):
            ratings[result.picture] = result
            continue
        rejects.append(result)
        if result.reason == "emotion_mismatch" and picture is not None:
            mismatched[picture] = Reject("", 1, result.reason, picture.source_id, result.detail)
    return ratings, mismatched, rejects


def _rating_row(
    rel: str, item: tuple[int, list[str]], index: dict[str, list[Picture]], claimed: dict[Picture, int]
) -> tuple[Rating | Reject, Picture | None]:
    """One ratings.csv row checked against the pictures: (its Rating or Reject, the picture it names)."""
    line, (raw_file, raw_emotion, raw_agreement, raw_intensity) = item
    text = excerpt(",".join(item[1]))
    matches = index.get(re.split(r"[/\\]", clean_text(raw_file))[-1].lower(), [])
    if len(matches) != 1:
        reason = "ambiguous_rating" if matches else "rating_without_image"
        return Reject(rel, line, reason, text, ", ".join(p.relative for p in matches)), None
    (picture,) = matches
    if picture in claimed:
        return Reject(
            rel, line, "duplicate_rating", text, f"{picture.relative} rated at line {claimed[picture]}"
        ), None
    claimed[picture] = line
    emotion = EMOTION_ALIASES.get(clean_text(raw_emotion).lower())
    if emotion is None:
        return Reject(rel, line, "bad_label", text, f"emotion {raw_emotion!r}"), picture
    if emotion != picture.emotion:
        detail = f"{rel}:{line} says {emotion}, folder of {picture.relative} says {picture.emotion}"
        return Reject(rel, line, "emotion_mismatch", text, detail), picture
    intensity = parse_intensity(raw_intensity)
    if intensity is None:
        return Reject(rel, line, "bad_score", text, f"intensity {raw_intensity!r} not in 1..9"), picture
    return Rating(line, picture, emotion, parse_agreement(raw_agreement), intensity), picture


def build(ctx: BuildContext) -> Iterator[Example | Reject]:
    pictures, stray = scan_pictures(ctx)
    yield from stray
    found = ctx.find(RATINGS, required=ctx.wants("EI"))
    rel = ctx.track(found[0]) if found else None
    ratings, mismatched, rating_rejects = read_ratings(found[0], rel, pictures) if found else ({}, {}, [])
    for picture in pictures:
        file = _rel(ctx, ctx.raw_dir / picture.relative)
        if picture in mismatched:
            reject = mismatched[picture]
            yield Reject(file, 1, reject.reason, reject.excerpt, reject.detail)
            continue
        yield _ec(ctx, picture, file, rated=picture in ratings)
    yield from rating_rejects
    for rating in sorted(ratings.values(), key=lambda r: r.line):
        yield _ei(ctx, rating, rel)


def _ec(ctx: BuildContext, picture: Picture, file: str, rated: bool) -> Example:
    return Example(
        source_id=picture.source_id,
        subtask="EC",
        language="zxx",
        gold=picture.emotion,
        file=file,
        line=1,
        images=[ctx.media_ref(picture.relative)],
        meta={"sex": picture.sex, "rated": rated},
    )


def _ei(ctx: BuildContext, rating: Rating, rel: str) -> Example:
    picture = rating.picture
    return Example(
        source_id=picture.source_id,
        subtask="EI",
        language="zxx",
        gold=round((rating.intensity - INTENSITY_MIN) / (INTENSITY_MAX - INTENSITY_MIN), 10),  # no 0.8999999999999999
        file=rel,
        line=rating.line,
        facet={"emotion": picture.emotion},
        images=[ctx.media_ref(picture.relative)],
        meta={"sex": picture.sex, "intensity": rating.intensity, "agreement": rating.agreement},
    )
