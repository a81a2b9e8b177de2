"""Model card for a trained checkpoint and the push to the Hugging Face Hub.

Secrets never leave the machine: the card's command line, recipe and reports go through `mmaff.redact`, the push
leaves out what may hold the hub token (`training_args.bin` pickles the TrainingArguments, `hub_token` included)
and refuses to upload a folder in which any file still holds it."""

from __future__ import annotations

import json
import mmap
import os
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from mmaff.redact import MIN_SECRET_LENGTH, redact_command, redact_config, redact_yaml_text

# Never uploaded: checkpoints and optimizer states (large, not the model), TensorBoard logs, temporary folders, and
# transformers' `training_args.bin` (a pickle of the TrainingArguments, the hub token in clear).
UPLOAD_IGNORE = [
    "checkpoint-*",
    "checkpoint-*/**",
    "runs/**",
    "*.tmp/**",
    "optimizer.pt",
    "rng_state*",
    "training_args.bin",
    "**/training_args.bin",
]


class SecretInUpload(RuntimeError):
    """A file that would be uploaded holds a secret (the push is refused)."""


def model_card(
    *,
    base_model: str,
    corpus: str,
    corpus_manifest: dict[str, Any],
    recipe: str | None,
    method: str,
    command: list[str] | None = None,
    results: dict[str, Any] | None = None,
    data_report: dict[str, Any] | None = None,
    secrets: Sequence[str | None] = (),
) -> str:
    """README.md with Hub metadata (base model, datasets, tags) and how the model was made; the command line and
    the recipe with their secrets (by name, plus the literal `secrets`, e.g. the hub token) redacted."""
    header = {
        "base_model": base_model,
        "library_name": "peft" if method == "lora" else "transformers",
        "pipeline_tag": "image-text-to-text",
        "tags": ["mmaff", "affective-analysis", "emotion", "sentiment", "qwen2.5-vl", method, "sft", "trl"],
        "datasets": [corpus] if corpus.count("/") == 1 and not Path(corpus).exists() else [],
    }
    totals = corpus_manifest.get("totals", {}).get("records", {})
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False, allow_unicode=True).strip(),
        "---",
        "",
        f"# {Path(base_model).name} fine-tuned for affective analysis ({method})",
        "",
        f"Supervised fine-tuning of `{base_model}` on the `{corpus_manifest.get('corpus', 'mmaffin')}` instruction "
        f"corpus (`{corpus}`: {totals} records per split; git {corpus_manifest.get('git', {}).get('commit', '?')}), "
        "with the mmaff recipes: assistant-only loss, per-sample mRoPE in padding-free rows, frozen vision tower.",
        "",
        "## Reproduce",
        "",
        "```bash",
        shlex.join(redact_command(command or sys.argv, secrets)),
        "```",
    ]
    if recipe:
        text = redact_yaml_text(Path(recipe).read_text(encoding="utf-8").strip(), secrets)
        lines += ["", f"Recipe `{recipe}`:", "", "```yaml", text, "```"]
    mixture = redact_config(corpus_manifest.get("mixture", {}), secrets)
    lines += ["", "## Data", "", "```json", json.dumps(mixture, indent=1), "```"]
    if data_report:
        summary = redact_config({k: v for k, v in data_report.items() if k != "dropped_samples"}, secrets)
        lines += ["", "Samples kept and dropped by the token cutoff:", "", "```json", json.dumps(summary), "```"]
    if results:
        shown = json.dumps(redact_config(results, secrets), indent=1)
        lines += ["", "## Training results", "", "```json", shown, "```"]
    return "\n".join(lines) + "\n"


def files_to_upload(folder: Path) -> list[str]:
    """The folder's files (relative POSIX paths, sorted) that `push_folder` uploads."""
    from huggingface_hub.utils import filter_repo_objects

    paths = sorted(
        (Path(root) / name).relative_to(folder).as_posix() for root, _, names in os.walk(folder) for name in names
    )
    return list(filter_repo_objects(paths, ignore_patterns=UPLOAD_IGNORE))


def _holds(path: Path, needles: list[bytes]) -> bool:
    """Whether the file contains one of `needles` (safetensors: only the JSON header, the rest is tensor data)."""
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb") as f:
        if path.suffix == ".safetensors" and size >= 8:
            header_length = int.from_bytes(f.read(8), "little")
            header = f.read(min(header_length, size))
            return any(needle in header for needle in needles)
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return any(data.find(needle) >= 0 for needle in needles)


def check_no_secrets(folder: Path, files: Iterable[str], secrets: Iterable[str | None]) -> None:
    """Refuse (`SecretInUpload`, naming the files, never the secret) when a file to upload holds a secret."""
    needles = sorted({s.encode("utf-8") for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
    leaking = [rel for rel in files if needles and _holds(folder / rel, needles)]
    if leaking:
        raise SecretInUpload(f"{folder}: not uploaded, these files hold the hub token or another secret: {leaking}")


def push_folder(folder: Path, repo_id: str, *, private: bool | None = None, token: str | None = None) -> str:
    """Upload a trained model folder (without checkpoints, optimizer states, logs and `training_args.bin`) to a
    model repository, after checking that no uploaded file holds the token (given, or the stored login)."""
    from huggingface_hub import HfApi, get_token

    folder = Path(folder)
    check_no_secrets(folder, files_to_upload(folder), [token, get_token()])
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        ignore_patterns=UPLOAD_IGNORE,
        commit_message="mmaff: upload fine-tuned model",
    )
    return str(getattr(commit, "commit_url", commit))
