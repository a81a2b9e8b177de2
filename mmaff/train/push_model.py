"""`mmaff push-model OUTPUT_DIR REPO_ID [--private] [--token T] [--revision BRANCH] [--dataset-id ORG/NAME]`:
push a finished run (a LoRA adapter folder, its `merged/` folder, or a full model) with its model card.

Before any upload: the folder must hold whole weights (`mmaff.train.checkpoints.weights_problem`: a run killed while
saving is refused) with their config and a model card; the token (`--token`, else HF_TOKEN or the stored login)
must be valid and allowed to write the repository (created if new). The card is pointed at the corpus's Hub
dataset when `--dataset-id` is given (or the card names none and `<corpus>/hub_push.json` does not help). What
is uploaded: `mmaff.hub.model_card.files_to_upload` (no `checkpoint-*`, optimizer states, logs, `merged/` inside an
adapter folder, or `training_args.bin`), refused when any file holds the token."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mmaff.hub.model_card import (
    HubAccessError,
    SecretInUpload,
    check_hub_access,
    files_to_upload,
    hub_dataset,
    name_dataset,
    push_folder,
)

ADAPTER_CONFIG = "adapter_config.json"


class PushModelError(ValueError):
    """A mistake the command names in one line (exit status 2)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="mmaff push-model",
        description="Push a finished training run (adapter, merged or full model) with its model card to the Hub.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("output_dir", help="the run's folder (output_dir), its merged/ folder, or a full model")
    parser.add_argument("repo_id", help="model repository, <org>/<name> (or <name> in your namespace)")
    parser.add_argument("--private", action="store_true", help="create the repository private (if it is new)")
    parser.add_argument("--token", help="Hub write token (default: HF_TOKEN or the stored `hf auth login`)")
    parser.add_argument("--revision", help="branch to commit to (created if missing; default: main)")
    parser.add_argument(
        "--dataset-id",
        help="Hub id of the training corpus for the card's `datasets` (default: what the card already names)",
    )
    return parser.parse_args(argv)


def folder_problem(folder: Path) -> str | None:
    """Why `folder` is not a pushable finished run, or None."""
    from mmaff.train.checkpoints import weights_problem

    if not folder.is_dir():
        return "not a folder"
    if problem := weights_problem(folder):
        return problem
    if not (folder / ADAPTER_CONFIG).is_file() and not (folder / "config.json").is_file():
        return "no config.json next to the weights"
    if not (folder / "README.md").is_file():
        return "no model card README.md (training writes it; give the run's output_dir or its merged/ folder)"
    return None


def update_card(folder: Path, dataset_id: str | None) -> None:
    """Name the corpus's Hub dataset in the card (`--dataset-id`), keeping the rest."""
    from huggingface_hub import ModelCard

    if not dataset_id:
        return
    card_path = folder / "README.md"
    card = ModelCard.load(card_path)
    name_dataset(card, hub_dataset(None, dataset_id))
    card.save(card_path)


def push_model(args: argparse.Namespace) -> str:
    folder = Path(args.output_dir)
    if problem := folder_problem(folder):
        raise PushModelError(f"{args.output_dir}: {problem}; push a finished run's folder")
    try:
        repo = check_hub_access(args.repo_id, token=args.token, private=args.private or None, revision=args.revision)
    except HubAccessError as error:
        raise PushModelError(f"{args.repo_id}: {error}") from None
    update_card(folder, args.dataset_id)
    files = files_to_upload(folder)
    try:
        url = push_folder(folder, repo, token=args.token, revision=args.revision)
    except SecretInUpload as error:
        raise PushModelError(str(error)) from None
    print(f"pushed {len(files)} files of {folder} to {repo}: {url}")
    return url


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        push_model(args)
    except PushModelError as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
