"""`mmaff push-dataset CORPUS REPO_ID [--private] [--dry-run OUT_DIR] [--token T]`: a built corpus as a Hub dataset.

The upload folder holds parquet shards, one per dataset x subtask x split (`data/<dataset>/<subtask>/<split>-*.parquet`),
so every config is a set of glob patterns over the same files and no record is stored twice: `all`, one per
modality (`text`, `image`, `video`), one per dataset (`meld`) and one per dataset x subtask (`meld.EC`; `datasets`
refuses `/`, `>` and other Windows-unsafe characters in config names, so eval task `meld/EC` is config `meld.EC` and
`semeval2018/V-reg>E-c` is `semeval2018.V-reg_then_E-c`: `hub_config_name`). Images are embedded as `Image()` bytes
(BMP, TIFF and every format but PNG / JPEG / WebP / GIF re-encoded losslessly to PNG); videos are embedded as `Video()`
bytes with their corpus path as name, because `datasets` 5.2.0 resolves a relative video path against the working
directory, not the repository (decoding needs `torchcodec` and FFmpeg; `Video(decode=False)` gives the bytes).
Each row's `corpus` column ({file, line, images, image_originals}: its corpus file and line, its image paths, the
original bytes of a re-encoded image) lets `mmaff.encode.corpus.open_corpus` rebuild the corpus folder byte for byte
from this folder or a snapshot of the repository. Besides the shards: the dataset card (README.md, `mmaff.data.card`),
LICENSE.md, manifest.json and rejects.jsonl.

`--dry-run OUT_DIR` writes exactly that folder; otherwise it is written to a temporary folder and uploaded in one
commit, and `<CORPUS>/hub_push.json` records {"repo_id", "revision", "configs", "task_configs"} for model cards.
The token (`--token`, else HF_TOKEN or the stored login) is checked with `whoami` before any work."""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmaff.data.card import LICENSE_FILE, built_datasets, dataset_card, licence_file
from mmaff.data.registry import load_registry
from mmaff.data.schema import SPLITS
from mmaff.encode.corpus import CORPUS_COLUMN, CorpusError, features, open_corpus
from mmaff.hub.model_card import HubAccessError, check_hub_access, check_no_secrets

if TYPE_CHECKING:
    import datasets

# Image formats every image loader (PIL, transformers, browsers) reads; anything else is re-encoded to PNG.
KEPT_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}
SHARD_ROWS = {"text": 100_000, "image": 2_000, "video": 500}  # rows per parquet shard (~hundreds of MB at most)
PUSH_RECORD = "hub_push.json"
MODALITIES = ("text", "image", "video")


class PushError(ValueError):
    """A mistake the command names in one line (exit status 2)."""


def hub_config_name(task: str) -> str:
    """The config of an eval task key `<dataset>/<subtask>` (`meld/EC` -> `meld.EC`, `>` -> `_then_`)."""
    dataset, _, subtask = task.partition("/")
    return f"{dataset}.{subtask_folder(subtask)}" if subtask else dataset


def subtask_folder(subtask: str) -> str:
    return subtask.replace(">", "_then_")


@functools.cache
def hub_features() -> datasets.Features:
    """The corpus schema with media as embedded `Image()` / `Video()` lists."""
    from datasets import Features, Image, List, Value, Video

    hub = dict(features())
    hub["images"], hub["videos"] = List(Image()), List(Video())
    hub[CORPUS_COLUMN] = {
        "file": Value("string"),
        "line": Value("int64"),
        "images": List(Value("string")),
        "image_originals": List(Value("binary")),
    }
    return Features(hub)


def _image(root: Path, rel: str) -> dict[str, Any]:
    path = root / rel
    if path.suffix.lower() in KEPT_IMAGE_SUFFIXES:
        return {"path": rel, "bytes": path.read_bytes()}
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode not in ("1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        out = io.BytesIO()
        image.save(out, format="PNG", optimize=False)
    return {"path": str(Path(rel).with_suffix(".png").as_posix()), "bytes": out.getvalue()}


def hub_row(root: Path, record: dict[str, Any], file: str, line: int) -> dict[str, Any]:
    """The parquet row of a record at line `line` (0-based) of corpus file `file`: media embedded, and in
    `CORPUS_COLUMN` its place in the corpus folder, its image paths and the original bytes of every re-encoded
    image, so `mmaff.encode.corpus.open_corpus` rebuilds the corpus folder byte for byte."""
    row = dict(record)
    row["images"] = [_image(root, rel) for rel in record["images"]]
    row["videos"] = [{"path": rel, "bytes": (root / rel).read_bytes()} for rel in record["videos"]]
    originals = [
        None if image["path"] == rel else (root / rel).read_bytes()
        for image, rel in zip(row["images"], record["images"])
    ]
    row[CORPUS_COLUMN] = {"file": file, "line": line, "images": record["images"], "image_originals": originals}
    return row


def shard_groups(root: Path, registry) -> dict[tuple[str, str, str], list[tuple[dict[str, Any], str, int]]]:
    """(record, corpus file, line) grouped by (dataset, subtask, split), in file order."""
    groups: dict[tuple[str, str, str], list[tuple[dict[str, Any], str, int]]] = defaultdict(list)
    for split in SPLITS:
        for path in sorted((root / split).glob("*.jsonl")):
            with open(path, encoding="utf-8") as f:
                for line, text in enumerate(f):
                    record = json.loads(text)
                    groups[(record["dataset"], record["subtask"], split)].append(
                        (record, f"{split}/{path.name}", line)
                    )
    return groups


def _chunks(rows: list, size: int) -> Iterator[list]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def write_shards(root: Path, out: Path, registry) -> dict[tuple[str, str], set[str]]:
    """Parquet shards under `out/data/`; returns the splits written per (dataset, subtask)."""
    import datasets

    quiet = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        return _write_shards(root, out, registry)
    finally:
        if not quiet:
            datasets.enable_progress_bars()


def _write_shards(root: Path, out: Path, registry) -> dict[tuple[str, str], set[str]]:
    from datasets import Dataset

    written: dict[tuple[str, str], set[str]] = defaultdict(set)
    for (dataset, subtask, split), records in sorted(shard_groups(root, registry).items()):
        chunks = list(_chunks(records, SHARD_ROWS[registry[dataset].modality]))
        folder = out / "data" / dataset / subtask_folder(subtask)
        folder.mkdir(parents=True, exist_ok=True)
        for index, chunk in enumerate(chunks):
            rows = [hub_row(root, record, file, line) for record, file, line in chunk]
            shard = Dataset.from_list(rows, features=hub_features())
            shard.to_parquet(str(folder / f"{split}-{index:05d}-of-{len(chunks):05d}.parquet"))
        written[(dataset, subtask)].add(split)
    return written


def hub_configs(written: dict[tuple[str, str], set[str]], registry) -> list[dict[str, Any]]:
    """`configs:` entries: all, per modality, per dataset, per dataset x subtask; each with the splits it has."""

    def config(name: str, members: list[tuple[str, str]], pattern) -> dict[str, Any]:
        data_files = []
        for split in SPLITS:
            paths = sorted({pattern(d, s, split) for d, s in members if split in written[(d, s)]})
            if paths:
                data_files.append({"split": split, "path": paths if len(paths) > 1 else paths[0]})
        return {"config_name": name, "data_files": data_files}

    members = sorted(written)
    configs = [config("all", members, lambda d, s, split: f"data/*/*/{split}-*.parquet")]
    by_dataset = lambda d, s, split: f"data/{d}/*/{split}-*.parquet"  # noqa: E731
    for modality in MODALITIES:
        chosen = [m for m in members if registry[m[0]].modality == modality]
        if chosen:
            configs.append(config(modality, chosen, by_dataset))
    for dataset in sorted({d for d, _ in members}):
        configs.append(config(dataset, [m for m in members if m[0] == dataset], by_dataset))
    for dataset, subtask in members:
        configs.append(
            config(
                hub_config_name(f"{dataset}/{subtask}"),
                [(dataset, subtask)],
                lambda d, s, split: f"data/{d}/{subtask_folder(s)}/{split}-*.parquet",
            )
        )
    return configs


def _loading_note(repo_id: str) -> str:
    return (
        f'Load a config with `datasets.load_dataset("{repo_id}", "image")` (or `"all"`, `"text"`, `"video"`, a dataset '
        'such as `"meld"`, a subtask such as `"meld.EC"`). Images decode to PIL images; videos are `Video()` features '
        "that decode with `torchcodec` (+ FFmpeg shared libraries); without it, "
        '`ds.cast_column("videos", datasets.List(datasets.Video(decode=False)))` gives each clip\'s bytes and name. '
        "`gold`, `given`, `label_space` and `source` vary in shape between tasks and use the `Json` feature."
    )


def _config_table(configs: list[dict[str, Any]], written, rows_of) -> list[str]:
    lines = ["## Configs", "", "| config | splits |", "|---|---|"]
    for entry in configs:
        lines.append(f"| `{entry['config_name']}` | {', '.join(f['split'] for f in entry['data_files'])} |")
    return [*lines, ""]


def write_hub_folder(corpus_path: str, out: Path, repo_id: str) -> list[dict[str, Any]]:
    """Write the upload folder of `corpus_path` to `out` (empty or absent); returns the card's configs."""
    corpus = open_corpus(corpus_path)
    registry = load_registry()
    unknown = [k for k in built_datasets(corpus.manifest) if k not in registry]
    if unknown:
        raise PushError(f"{corpus.root}/manifest.json: datasets {unknown} are not in data_builders/registry.yaml")
    out.mkdir(parents=True, exist_ok=True)
    written = write_shards(corpus.root, out, registry)
    configs = hub_configs(written, registry)
    card = dataset_card(
        corpus.manifest,
        registry,
        configs=configs,
        media_note="embedded media: `Image()` (bytes + name; BMP/TIFF re-encoded to PNG) and `Video()` (bytes + the clip's corpus path)",
        loading=_loading_note(repo_id),
        extra_sections=_config_table(configs, written, None),
        repo_id=repo_id,
    )
    card.save(out / "README.md")
    (out / LICENSE_FILE).write_text(licence_file(corpus.manifest, registry), encoding="utf-8")
    from mmaff.data.stage import MEDIA_DIGESTS

    for name in ("manifest.json", "rejects.jsonl", MEDIA_DIGESTS):
        if (corpus.root / name).is_file():
            (out / name).write_bytes((corpus.root / name).read_bytes())
    return configs


def folder_bytes(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def push(token: str | None, folder: Path, repo_id: str, corpus_manifest: dict[str, Any]) -> str:
    """Upload the folder to the (checked, existing) dataset repository in one commit; returns the commit sha."""
    from huggingface_hub import HfApi, get_token

    token = token or get_token()
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    check_no_secrets(folder, files, [token])
    api = HfApi(token=token)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="dataset",
        commit_message=f"mmaff: {corpus_manifest['corpus']} (git {corpus_manifest.get('git', {}).get('commit')})",
    )
    return commit.oid


def record_push(corpus_root: Path, repo_id: str, revision: str, configs: list[dict[str, Any]]) -> Path:
    task_configs = {
        name.replace(".", "/", 1).replace("_then_", ">"): name
        for name in (c["config_name"] for c in configs)
        if "." in name
    }
    record = {
        "repo_id": repo_id,
        "revision": revision,
        "configs": [c["config_name"] for c in configs],
        "task_configs": task_configs,
    }
    path = corpus_root / PUSH_RECORD
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mmaff push-dataset",
        description="Publish a built corpus as a Hugging Face Hub dataset (parquet, media embedded, configs per "
        "modality, dataset and subtask, dataset card with licences and citations).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("corpus", help="built corpus folder (manifest.json, <split>/*.jsonl, media/)")
    parser.add_argument("repo_id", help="Hub dataset repository, <org>/<name>")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--dry-run", metavar="OUT_DIR", help="write the upload folder here and upload nothing")
    parser.add_argument("--token", default=None, help="Hub write token (default: HF_TOKEN or the stored login)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
            raise PushError(f"REPO_ID {args.repo_id!r}: expected <org>/<name>")
        if not (Path(args.corpus) / "manifest.json").is_file():
            raise PushError(f"CORPUS {args.corpus}: no manifest.json; build it with `mmaff build` or check the path")
        if args.dry_run:
            out = Path(args.dry_run)
            if out.exists() and any(out.iterdir()):
                raise PushError(f"--dry-run {out}: exists and is not empty; remove it or name another folder")
            configs = write_hub_folder(args.corpus, out, args.repo_id)
            files, size = folder_bytes(out)
            print(f"dry run: {out} holds the upload ({files} files, {size:,} bytes, {len(configs)} configs)")
            return 0
        token = args.token or os.environ.get("HF_TOKEN")
        repo_id = check_hub_access(args.repo_id, token=token, private=args.private, repo_type="dataset")
        with tempfile.TemporaryDirectory(prefix="mmaff-push-") as tmp:
            folder = Path(tmp) / "upload"
            configs = write_hub_folder(args.corpus, folder, args.repo_id)
            files, size = folder_bytes(folder)
            revision = push(token, folder, repo_id, open_corpus(args.corpus).manifest)
        record = record_push(Path(args.corpus), repo_id, revision, configs)
        print(f"pushed {files} files ({size:,} bytes) to datasets/{args.repo_id} @ {revision}; recorded in {record}")
        return 0
    except (PushError, CorpusError, HubAccessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # the Hub refused the upload: one line, never the token
        from huggingface_hub.errors import HfHubHTTPError

        if not isinstance(err, HfHubHTTPError):
            raise
        print(
            f"error: datasets/{args.repo_id}: the Hub refused the upload: {str(err).splitlines()[0]}", file=sys.stderr
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
