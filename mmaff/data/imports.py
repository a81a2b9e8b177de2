"""Import MMAFFBen's released LLaMA-Factory files into a corpus folder the scorer and the generators accept.

    python -m mmaff.data.imports mmaffben FILE [FILE ...] --out CORPUS_DIR [--media-dir DIR]

MMAFFBen (lzw1008/MMAFFIn train/val, lzw1008/MMAFFBen test) ships one JSON array per dataset-task-split, named as
its `data/dataset_info.json` names them (`semeval2018_english_test.json`, `EMOTIC_EC_test.json`,
`MELD_SP_val.json`, ...). Text files are LLaMA-Factory's alpaca layout (`instruction`, `input`, `output`); image and
video files are sharegpt (`messages` with `role`/`content`, roles `user`/`assistant`, plus `images` / `videos`,
paths relative to LLaMA-Factory's `media_dir`, by default the folder of the JSON files).

Every row becomes one record with MMAFFBen's own prompt (the user turn is theirs, `<image>` / `<video>`
placeholders turned into content parts in place; the alpaca user turn is `instruction` + newline + `input`, as
LLaMA-Factory joins them), their system prompt where the row has one (none otherwise: the Qwen2.5-VL chat
template then adds "You are a helpful assistant.", as LLaMA-Factory's `qwen2_vl` template does), and the gold
parsed from their `output` by our template's parser for the matching dataset and subtask. Ids are
`<dataset>/<subset>/<subtask>/<file stem>-<row>` with the row's 0-based position in the file's array (the
position MMAFFBen's notebook scores by). The language comes from the file name (`semeval2018_english` -> en,
EWECT / online shopping / weibo / CH-SIMS -> zh, MELD -> en, pictures -> zxx); MMS, XED and SAMSEMO files mix
languages without naming them per row, so their records carry `mul`. SemEval files hold five subtasks; the
subtask of a row is recognised from MMAFFBen's prompt wording (Supplementary Table 4).

A row that cannot become a record (subtask not recognised, gold our parser cannot read or out of the label space,
placeholders not matching the media, a missing or undecodable media file) is a line of `rejects.jsonl` with its
reason; an unknown file name or a file that is not a JSON array of objects is a one-line error.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import shutil
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmaff.data.media import MediaBudget, describe
from mmaff.data.registry import DatasetSpec, Subtask, load_registry
from mmaff.data.schema import RecordError, check_gold, validate_record
from mmaff.data.templates import DEFAULT_STYLE, load_template

SPLIT_SUFFIXES = {"train": "train", "val": "validation", "dev": "validation", "test": "test"}
MIXED_LANGUAGES = "mul"  # ISO 639-2: multiple languages, not told apart per row


@dataclass(frozen=True)
class MmaffbenFile:
    """What one MMAFFBen dataset name holds in our terms: dataset, subset, language and subtasks (in their file
    order)."""

    dataset: str
    subset: str
    language: str
    subtasks: tuple[str, ...]


# MMAFFBen's dataset names (data/dataset_info.json, run_inference.sh) -> ours. CHSIMS_EI is dataset_info's name for
# the file the scripts call CHSIMS_SI (sentiment strength); both are accepted.
MMAFFBEN_FILES: dict[str, MmaffbenFile] = {
    "semeval2018_english": MmaffbenFile("semeval2018", "en", "en", ("EI-reg", "EI-oc", "V-oc", "V-reg", "E-c")),
    "semeval2018_arabic": MmaffbenFile("semeval2018", "ar", "ar", ("EI-reg", "EI-oc", "V-oc", "V-reg", "E-c")),
    "semeval2018_spanish": MmaffbenFile("semeval2018", "es", "es", ("EI-reg", "EI-oc", "V-oc", "V-reg", "E-c")),
    "EWECT_usual": MmaffbenFile("ewect", "usual", "zh", ("EC",)),
    "EWECT_virus": MmaffbenFile("ewect", "virus", "zh", ("EC",)),
    "onlineshopping": MmaffbenFile("online_shopping", "zh", "zh", ("SP",)),
    "weibo": MmaffbenFile("weibo_senti", "zh", "zh", ("SP",)),
    "MMS": MmaffbenFile("mms", MIXED_LANGUAGES, MIXED_LANGUAGES, ("SP",)),
    "XED": MmaffbenFile("xed", MIXED_LANGUAGES, MIXED_LANGUAGES, ("EC",)),
    "EMOTIC_EC": MmaffbenFile("emotic", "zxx", "zxx", ("EC",)),
    "EMOTIC_SI": MmaffbenFile("emotic", "zxx", "zxx", ("VAD",)),
    "FER2013": MmaffbenFile("fer2013", "zxx", "zxx", ("EC",)),
    "CFAPS_EC": MmaffbenFile("cfaps", "zxx", "zxx", ("EC",)),
    "CFAPS_EI": MmaffbenFile("cfaps", "zxx", "zxx", ("EI",)),
    "SAMSEMO": MmaffbenFile("samsemo", MIXED_LANGUAGES, MIXED_LANGUAGES, ("EC",)),
    "MELD_EC": MmaffbenFile("meld", "en", "en", ("EC",)),
    "MELD_SP": MmaffbenFile("meld", "en", "en", ("SP",)),
    "CHSIMS_SP": MmaffbenFile("chsims", "zh", "zh", ("SP",)),
    "CHSIMS_SI": MmaffbenFile("chsims", "zh", "zh", ("SI",)),
    "CHSIMS_EI": MmaffbenFile("chsims", "zh", "zh", ("SI",)),
}

# SemEval rows: the subtask from MMAFFBen's prompt wording (Supplementary Table 4; the EI-oc prompt is not printed
# there: an emotion-E prompt asking for a class is taken as EI-oc). First match wins.
_SEMEVAL_PROMPTS = (
    ("V-oc", re.compile(r"seven ordinal classes", re.I)),
    ("EI-oc", re.compile(r"emotion E\b.*\bclass|\bclass\b.*emotion E\b", re.I | re.S)),
    ("EI-reg", re.compile(r"emotion E\b", re.I)),
    ("V-reg", re.compile(r"sentiment \(valence\) intensity|valence\) intensity", re.I)),
    ("E-c", re.compile(r"\b11 categories\b|emotional tone", re.I)),
)
_EMOTION_E = re.compile(r"Emotion E:\s*([A-Za-z]+)")
_PLACEHOLDER = re.compile(r"(<image>|<video>)")


class MmaffbenImportError(ValueError):
    """A file that cannot be imported at all (unknown name, not a JSON array); the message names it."""


@dataclass
class RowReject(Exception):
    reason: str
    detail: str = ""


def file_kind(path: Path) -> tuple[MmaffbenFile, str]:
    """`EMOTIC_EC_test.json` -> (what EMOTIC_EC holds, "test")."""
    name, _, suffix = path.stem.rpartition("_")
    if name not in MMAFFBEN_FILES or suffix not in SPLIT_SUFFIXES:
        raise MmaffbenImportError(
            f"{path}: not a MMAFFBen file name (<name>_<train|val|dev|test>.json with <name> one of "
            f"{', '.join(MMAFFBEN_FILES)}); rename it as MMAFFBen's dataset_info.json names it"
        )
    return MMAFFBEN_FILES[name], SPLIT_SUFFIXES[suffix]


def read_rows(path: Path) -> list[dict[str, Any]]:
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MmaffbenImportError(
            f"{path}: cannot read a JSON array ({err}); give MMAFFBen's released JSON file"
        ) from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise MmaffbenImportError(f"{path}: expected a JSON array of objects (LLaMA-Factory alpaca or sharegpt rows)")
    return rows


def _conversation(row: dict[str, Any]) -> tuple[str | None, str, str, str | None]:
    """(system, user text with placeholders, gold answer, raw input text) of an alpaca or sharegpt row."""
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise RowReject("bad_row", "messages is not a list of {role, content}")
        system = row.get("system")
        if messages and messages[0].get("role") == "system":
            system, messages = messages[0].get("content"), messages[1:]
        roles = [m.get("role") for m in messages]
        if roles != ["user", "assistant"]:
            raise RowReject("unsupported_conversation", f"roles {roles}; one user turn and one assistant answer")
        user, answer, text = messages[0].get("content"), messages[1].get("content"), None
    elif "instruction" in row:
        if row.get("history"):
            raise RowReject("unsupported_conversation", "alpaca history is not supported")
        text = row.get("input") or None
        user = "\n".join(p for p in (row.get("instruction"), text) if p)
        answer, system = row.get("output"), row.get("system")
    else:
        raise RowReject("bad_row", "neither alpaca (instruction/output) nor sharegpt (messages)")
    if not isinstance(user, str) or not user.strip() or not isinstance(answer, str) or not answer.strip():
        raise RowReject("bad_row", "empty or non-text prompt or answer")
    return (system or None), user, answer, text


def _user_parts(user: str, images: list[str], videos: list[str]) -> list[dict[str, Any]]:
    """MMAFFBen's prompt as content parts, each placeholder an image/video part where it stands."""
    parts: list[dict[str, Any]] = []
    counts = Counter()
    for piece in _PLACEHOLDER.split(user):
        if piece in ("<image>", "<video>"):
            kind = piece[1:-1]
            counts[kind] += 1
            parts.append({"type": kind})
        elif piece:
            parts.append({"type": "text", "text": piece})
    if counts["image"] != len(images) or counts["video"] != len(videos):
        raise RowReject(
            "media_placeholder_mismatch",
            f"{counts['image']} <image> / {counts['video']} <video> placeholders for {len(images)} images / "
            f"{len(videos)} videos",
        )
    if not any(p["type"] == "text" for p in parts):
        raise RowReject("bad_row", "the prompt has no text")
    return parts


def _subtask_of(kind: MmaffbenFile, user: str) -> str:
    if len(kind.subtasks) == 1:
        return kind.subtasks[0]
    for subtask, pattern in _SEMEVAL_PROMPTS:
        if subtask in kind.subtasks and pattern.search(user):
            return subtask
    raise RowReject("unknown_subtask", "the prompt matches none of MMAFFBen's SemEval task prompts")


class MediaCopier:
    """Copies the media a row names into `<corpus>/media/<dataset>/...` (once per file) and describes them."""

    def __init__(self, out: Path, budget: MediaBudget) -> None:
        self.out, self.budget = out, budget
        self.described: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    def add(self, media_dir: Path, dataset: str, ref: str, kind: str) -> tuple[str, dict[str, Any]]:
        if not isinstance(ref, str) or not ref:
            raise RowReject("missing_media", f"{kind} entry {ref!r} is not a path")
        source = Path(ref) if Path(ref).is_absolute() else media_dir / ref
        key = (str(source), kind)
        if key not in self.described:
            if not source.is_file():
                raise RowReject("missing_media", f"{source} does not exist (set --media-dir)")
            # the relative layout is kept; absolute paths go under a folder named by their directory's hash
            inside = ref if not Path(ref).is_absolute() and ".." not in Path(ref).parts else None
            if inside is None:
                inside = f"_external/{hashlib.sha256(str(source.parent).encode()).hexdigest()[:12]}/{source.name}"
            relative = f"media/{dataset}/{inside}"
            target = self.out / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            info = describe(str(target), kind, self.budget)
            if "error" in info:
                target.unlink()
                raise RowReject(info["error"], info["detail"])
            self.described[key] = (relative, info)
        return self.described[key]


def make_record(
    row: dict[str, Any],
    index: int,
    path: Path,
    kind: MmaffbenFile,
    split: str,
    spec: DatasetSpec,
    media: MediaCopier,
    media_dir: Path,
) -> dict[str, Any]:
    system, user, answer, text = _conversation(row)
    images, videos = list(row.get("images") or []), list(row.get("videos") or [])
    parts = _user_parts(user, images, videos)
    subtask_name = _subtask_of(kind, user)
    subtask: Subtask = spec.subtasks[subtask_name]
    template = load_template(subtask.template, DEFAULT_STYLE)
    space = subtask.label_space(spec.subtasks)
    parsed = template.parse(answer.strip(), subtask, spec.subtasks)
    if parsed.status == "failed":
        raise RowReject(
            "unparsable_gold", f"{answer.strip()!r} is not a {subtask.target_type} answer of {subtask_name}"
        )
    try:
        check_gold(parsed.value, subtask.target_type, space)
    except RecordError as err:
        raise RowReject(err.reason, str(err)) from None
    described = [media.add(media_dir, spec.key, ref, "image") for ref in images]
    described += [media.add(media_dir, spec.key, ref, "video") for ref in videos]
    source: dict[str, Any] = {
        "file": path.name,
        "line": index,
        "source_id": f"{path.stem}-{index}",
        "prompt": "mmaffben",
    }
    emotion = _EMOTION_E.search(user)
    if subtask.task == "EI" and emotion:
        source["emotion"] = emotion.group(1).lower()
    if parsed.status != "strict":
        source["gold_parse"] = parsed.status
    messages = [
        *([{"role": "system", "content": [{"type": "text", "text": system}]}] if system else []),
        {"role": "user", "content": parts},
        {"role": "assistant", "content": [{"type": "text", "text": answer.strip()}]},
    ]
    record = {
        "id": f"{spec.key}/{kind.subset}/{subtask_name}/{path.stem}-{index}",
        "dataset": spec.key,
        "subset": kind.subset,
        "subtask": subtask_name,
        "task": subtask.task,
        "target_type": subtask.target_type,
        "language": kind.language,
        "modality": spec.modality,
        "split": split,
        "messages": messages,
        "images": [relative for relative, info in described if info["kind"] == "image"],
        "videos": [relative for relative, info in described if info["kind"] == "video"],
        "visual_tokens": sum(info["tokens"] for _, info in described),
        "media": [info for _, info in described],
        "text": text,
        "gold": parsed.value,
        "given": None,
        "label_space": space,
        "template": {"name": template.name, "version": template.version},
        "source": source,
    }
    try:
        validate_record(record)
    except RecordError as err:
        raise RowReject(err.reason, str(err)) from None
    return record


def import_mmaffben(
    files: Sequence[Path], out: Path, media_dir: Path | None = None, budget: MediaBudget | None = None
) -> dict[str, Any]:
    """Import MMAFFBen files into the corpus folder `out` (which must not exist or be empty); the manifest."""
    budget = budget or MediaBudget()  # MMAFFBen's own budgets
    files = sorted({Path(f) for f in files}, key=lambda p: p.name)
    stems = Counter(p.stem for p in files)
    if any(n > 1 for n in stems.values()):
        raise MmaffbenImportError(f"files with the same name given twice: {[s for s, n in stems.items() if n > 1]}")
    kinds = {path: file_kind(path) for path in files}  # every name checked before any work
    if out.exists() and any(out.iterdir()):
        raise MmaffbenImportError(f"--out {out}: exists and is not empty; remove it or choose another folder")
    registry = load_registry()
    out.mkdir(parents=True, exist_ok=True)
    media = MediaCopier(out, budget)
    records: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    rejects: list[dict[str, Any]] = []
    inputs: dict[str, Any] = {}
    for path in files:
        kind, split = kinds[path]
        rows = read_rows(path)
        spec = registry[kind.dataset]
        written = Counter()
        for index, row in enumerate(rows):
            try:
                record = make_record(row, index, path, kind, split, spec, media, media_dir or path.parent)
            except RowReject as reject:
                rejects.append(
                    {"dataset": kind.dataset, "file": path.name, "line": index, "reason": reject.reason,
                     "detail": reject.detail, "excerpt": json.dumps(row, ensure_ascii=False)[:200]}
                )  # fmt: skip
                continue
            records[(split, kind.dataset)].append(record)
            written[record["subtask"]] += 1
        inputs[path.name] = {
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "rows": len(rows),
            "written": dict(sorted(written.items())),
            "rejected": dict(sorted(Counter(r["reason"] for r in rejects if r["file"] == path.name).items())),
        }
    return _write(out, records, rejects, inputs, budget)


def _write(
    out: Path,
    records: dict[tuple[str, str], list[dict[str, Any]]],
    rejects: list[dict[str, Any]],
    inputs: dict[str, Any],
    budget: MediaBudget,
) -> dict[str, Any]:
    counts: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(lambda: defaultdict(Counter)))
    for (split, dataset), rows in sorted(records.items()):
        (out / split).mkdir(exist_ok=True)
        with open(out / split / f"{dataset}.jsonl", "w", encoding="utf-8") as f:
            for record in rows:
                f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                counts[dataset][split][record["subtask"]][record["language"]] += 1
    with open(out / "rejects.jsonl", "w", encoding="utf-8") as f:
        for reject in rejects:
            f.write(json.dumps(reject, ensure_ascii=False, sort_keys=True) + "\n")
    manifest = {
        "corpus": out.name,
        "schema_version": 1,
        "imported_from": "mmaffben",
        "media_budget": dataclasses.asdict(budget),
        "template_style": DEFAULT_STYLE,
        "inputs": inputs,
        "totals": {"records": sum(len(r) for r in records.values()), "rejects": len(rejects)},
        "datasets": {
            dataset: {
                "status": "imported",
                "subtasks": sorted({s for by_split in by_dataset.values() for s in by_split}),
                "splits": sorted(by_dataset),
                "counts": {
                    split: {s: dict(sorted(c.items())) for s, c in sorted(by_split.items())}
                    for split, by_split in sorted(by_dataset.items())
                },
            }  # fmt: skip
            for dataset, by_dataset in sorted(counts.items())
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mmaff import", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("source", choices=["mmaffben"], help="what the files are (mmaffben: its released JSON)")
    parser.add_argument("files", nargs="+", type=Path, help="MMAFFBen JSON files, e.g. MELD_EC_test.json")
    parser.add_argument("--out", type=Path, required=True, help="corpus folder to write (must not exist or be empty)")
    parser.add_argument(
        "--media-dir", type=Path, help="folder the images/videos paths are relative to (default: each file's folder)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        print(f"error: no such file {', '.join(missing)}; give MMAFFBen's released JSON files", file=sys.stderr)
        return 2
    try:
        manifest = import_mmaffben(args.files, args.out, args.media_dir)
    except MmaffbenImportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    totals = manifest["totals"]
    print(f"wrote {args.out} ({totals['records']} records, {totals['rejects']} rejects in rejects.jsonl)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
