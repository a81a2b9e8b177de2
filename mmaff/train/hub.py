"""Model card for a trained checkpoint and the push to the Hugging Face Hub."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml


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
) -> str:
    """README.md with Hub metadata (base model, datasets, tags) and how the model was made."""
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
        shlex.join(command or sys.argv),
        "```",
    ]
    if recipe:
        lines += ["", f"Recipe `{recipe}`:", "", "```yaml", Path(recipe).read_text(encoding="utf-8").strip(), "```"]
    lines += ["", "## Data", "", "```json", json.dumps(corpus_manifest.get("mixture", {}), indent=1), "```"]
    if data_report:
        summary = {k: v for k, v in data_report.items() if k != "dropped_samples"}
        lines += ["", "Samples kept and dropped by the token cutoff:", "", "```json", json.dumps(summary), "```"]
    if results:
        lines += ["", "## Training results", "", "```json", json.dumps(results, indent=1), "```"]
    return "\n".join(lines) + "\n"


def push_folder(folder: Path, repo_id: str, *, private: bool | None = None, token: str | None = None) -> str:
    """Upload a trained model folder (without checkpoints and optimizer states) to a model repository."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**", "*.tmp/**", "optimizer.pt", "rng_state*"],
        commit_message="mmaff: upload fine-tuned model",
    )
    return str(getattr(commit, "commit_url", commit))
