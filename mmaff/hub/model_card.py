"""Model card for a trained checkpoint, and its pushes to the Hugging Face Hub.

The card is `huggingface_hub.ModelCard` / `ModelCardData` (no hand-written YAML): base model, the corpus's Hub dataset
id (from `<corpus>/hub_push.json`, written by `mmaff push-dataset`, or given), a licence inherited from the base
model and the corpus, the recipe and command, and eval results added later by `mmaff report --model-card`.

Secrets never leave the machine: the card's command line, recipe and reports go through `mmaff.redact`, the push
leaves out what may hold the hub token (`training_args.bin` pickles the TrainingArguments, `hub_token` included)
and refuses to upload a folder in which any file still holds it. A push first checks the token and the write
access to the repository (`check_hub_access`), so a training run fails at start-up, not after training."""

from __future__ import annotations

import json
import mmap
import os
import re
import shlex
import shutil
import sys
from collections.abc import Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmaff.redact import MIN_SECRET_LENGTH, redact_command, redact_config, redact_text, redact_yaml_text

if TYPE_CHECKING:
    from huggingface_hub import EvalResult, ModelCard

HUB_PUSH_RECORD = "hub_push.json"  # written into the corpus folder by `mmaff push-dataset`
STAGING = "_hub_push"  # inside output_dir: what a background checkpoint push is sending (hard links)
CHECKPOINT_STRATEGIES = {"checkpoint": "last-checkpoint", "all_checkpoints": None}  # None: the checkpoint's own name
# Never uploaded: checkpoints and optimizer states (large, not the model), TensorBoard logs, temporary folders, a
# merged copy inside an adapter folder (pushed on its own), and transformers' `training_args.bin` (a pickle of the
# TrainingArguments, the hub token in clear).
UPLOAD_IGNORE = [
    "checkpoint-*",
    "checkpoint-*/**",
    "runs/**",
    "merged/**",
    f"{STAGING}/**",
    "*.tmp/**",
    "optimizer.pt",
    "rng_state*",
    "training_args.bin",
    "**/training_args.bin",
]
# Resume state of a checkpoint: uploaded under `last-checkpoint/` (hub_strategy checkpoint), not as the model.
RESUME_STATE = ["trainer_state.json", "scheduler.pt", "scaler.pt", "latest", "zero_to_fp32.py", "global_step*/**"]
SOURCE_LICENCES = "mixed-source-licences"  # the corpus's `license_name` (mmaff.data.card)
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")


class SecretInUpload(RuntimeError):
    """A file that would be uploaded holds a secret (the push is refused)."""


class HubAccessError(RuntimeError):
    """The Hub cannot be written to with this token (offline, no token, invalid, read-only, no access)."""


@dataclass(frozen=True)
class HubDataset:
    """The corpus as a Hub dataset: its id, the commit it was pushed as (None: unknown) and its configs (None:
    unknown; else the names `load_dataset(repo_id, config)` takes)."""

    repo_id: str
    revision: str | None = None
    configs: tuple[str, ...] | None = None


def is_hub_id(name: str | None) -> bool:
    """`org/name` that is not a local path."""
    return bool(name) and bool(_HUB_ID.fullmatch(str(name))) and not Path(str(name)).exists()


def hub_dataset(corpus: str | Path | None, dataset_id: str | None = None) -> HubDataset | None:
    """The corpus's Hub dataset: `dataset_id` if given, else the push recorded in `<corpus>/hub_push.json`, else
    `corpus` itself when it is a Hub id; None when it was never pushed (a card then names no dataset)."""
    record = Path(str(corpus)) / HUB_PUSH_RECORD if corpus else None
    pushed = None
    if record is not None and record.is_file():
        data = json.loads(record.read_text(encoding="utf-8"))
        configs = data.get("configs")
        pushed = HubDataset(data["repo_id"], data.get("revision") or None, tuple(configs) if configs else None)
    if dataset_id:
        return pushed if pushed and pushed.repo_id == dataset_id else HubDataset(dataset_id)
    if pushed:
        return pushed
    return HubDataset(str(corpus)) if is_hub_id(str(corpus)) else None


# ------------------------------------------------------------------------------------------------------ card


def base_model_license(base_model: str) -> str | None:
    """The base model's licence from its card: a local folder's README.md, the Hub cache, or (online) the Hub;
    `license_name` when the licence is `other`. None when no card says."""
    from huggingface_hub import ModelCard, hf_hub_download, is_offline_mode, try_to_load_from_cache

    card_path: str | None = None
    if Path(base_model).is_dir():
        local = Path(base_model) / "README.md"
        card_path = str(local) if local.is_file() else None
    elif is_hub_id(base_model):
        cached = try_to_load_from_cache(base_model, "README.md")
        card_path = cached if isinstance(cached, str) else None
        if card_path is None and not is_offline_mode():
            try:
                card_path = hf_hub_download(base_model, "README.md")
            except Exception:  # no card, gated, no network: the licence stays unknown
                card_path = None
    if card_path is None:
        return None
    data = ModelCard.load(card_path, ignore_metadata_errors=True).data
    if data.license == "other" and data.get("license_name"):
        return str(data.get("license_name"))
    return data.license


def _license_text(base_model: str, base_license: str | None, dataset: HubDataset | None) -> list[str]:
    base = f"`{base_license}` (from its model card)" if base_license else "not found in its card (check it)"
    where = f"[LICENSE.md]({licence_link(dataset)}) of the dataset `{dataset.repo_id}`" if dataset else ""
    return [
        "## Licence",
        "",
        "`license: other`: these weights derive from the base model and from the training data, and both bind:",
        "",
        f"- base model `{base_model}`: {base}",
        "- training data: the mmaff corpus keeps each source's own licence, several of them research-only or "
        f"non-commercial; see {where if dataset else 'the `README.md` of the corpus folder'} for the table.",
    ]


def card_data(
    *,
    base_model: str,
    method: str,
    dataset: HubDataset | None,
    base_license: str | None,
    merged: bool = False,
    eval_results: list[EvalResult] | None = None,
    model_name: str | None = None,
) -> Any:
    """The card's metadata (`ModelCardData`); no `datasets` key when the corpus has no Hub id (never `[]`)."""
    from huggingface_hub import ModelCardData

    slug = re.sub(r"[^a-z0-9.-]+", "-", (base_license or "").lower()).strip("-")
    return ModelCardData(
        base_model=base_model if is_hub_id(base_model) else None,
        datasets=[dataset.repo_id] if dataset else None,
        license="other",
        license_name=f"{slug}-and-{SOURCE_LICENCES}" if slug else SOURCE_LICENCES,
        license_link=licence_link(dataset) if dataset else None,
        library_name="peft" if method == "lora" and not merged else "transformers",
        pipeline_tag="image-text-to-text",
        tags=["mmaff", "affective-analysis", "emotion", "sentiment", "qwen2.5-vl", method, "sft", "trl"],
        eval_results=eval_results or None,
        model_name=model_name,
    )


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
    dataset_id: str | None = None,
    merged: bool = False,
) -> str:
    """README.md (`ModelCard`): Hub metadata and how the model was made; the command line and the recipe with their
    secrets (by name, plus the literal `secrets`, e.g. the hub token) redacted."""
    from huggingface_hub import ModelCard

    dataset = hub_dataset(corpus, dataset_id)
    base_license = base_model_license(base_model)
    data = card_data(base_model=base_model, method=method, dataset=dataset, base_license=base_license, merged=merged)
    totals = corpus_manifest.get("totals", {}).get("records", {})
    corpus_name = dataset.repo_id if dataset else corpus
    lines = [
        f"# {Path(base_model).name} fine-tuned for affective analysis ({method}{', merged' if merged else ''})",
        "",
        f"Supervised fine-tuning of `{base_model}` on the `{corpus_manifest.get('corpus', 'mmaffin')}` instruction "
        f"corpus (`{corpus_name}`: {totals} records per split; git {corpus_manifest.get('git', {}).get('commit', '?')}), "
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
    lines += ["", *_license_text(base_model, base_license, dataset)]
    body = "\n".join(lines)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n"))


def licence_link(dataset: HubDataset) -> str:
    """The LICENSE.md that `mmaff push-dataset` uploads with the corpus (per-source licences), at the pushed commit
    when known."""
    return f"https://huggingface.co/datasets/{dataset.repo_id}/blob/{dataset.revision or 'main'}/LICENSE.md"


def name_dataset(card: ModelCard, dataset: HubDataset) -> None:
    """Point a card at the corpus's Hub dataset (its `datasets` and licence link)."""
    card.data.datasets = [dataset.repo_id]
    card.data.license_link = licence_link(dataset)


# ----------------------------------------------------------------------------------------------------- pushes


def check_hub_access(
    repo_id: str,
    *,
    token: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    repo_type: str = "model",
) -> str:
    """The repository id (namespace resolved) after checking that the Hub is reachable, the token (given, or the
    stored login) is valid and may write, and the repository exists or was created (and the branch `revision`);
    `HubAccessError` naming the fix otherwise. Works like the HF Trainer's start-up `create_repo`, but before any
    work and with a message that says what to do."""
    from huggingface_hub import HfApi, is_offline_mode
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError

    if is_offline_mode():
        raise HubAccessError("HF_HUB_OFFLINE is set, so nothing can be pushed: unset it, or turn the push off")
    api = HfApi(token=token)
    try:
        user = api.whoami()
    except LocalTokenNotFoundError:
        raise HubAccessError(
            "no hub token: pass one (hub_token / --token), set HF_TOKEN or run `hf auth login`"
        ) from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status == 401:
            raise HubAccessError("the hub token is not valid (401): give a valid write token") from None
        raise HubAccessError(f"the Hub refused whoami: {redact_text(str(error), [token])}") from None
    except OSError as error:  # connection refused, DNS, timeout
        raise HubAccessError(
            f"cannot reach the Hub ({type(error).__name__}): check the network or HF_ENDPOINT"
        ) from None
    role = (user.get("auth") or {}).get("accessToken", {}).get("role")
    if role == "read":
        raise HubAccessError(f"the hub token of {user.get('name')} is read-only: give a token with write access")
    try:
        repo = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True).repo_id
        if revision:
            api.create_branch(repo, branch=revision, repo_type=repo_type, exist_ok=True)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        raise HubAccessError(
            f"cannot write to {repo_type} repo {repo_id} as {user.get('name')} (HTTP {status}): check the repo id and the "
            "token's write access to it"
        ) from None
    return repo


def files_to_upload(folder: Path, ignore: Sequence[str] = UPLOAD_IGNORE) -> list[str]:
    """The folder's files (relative POSIX paths, sorted) that `push_folder` uploads."""
    from huggingface_hub.utils import filter_repo_objects

    paths = sorted(
        (Path(root) / name).relative_to(folder).as_posix() for root, _, names in os.walk(folder) for name in names
    )
    return list(filter_repo_objects(paths, ignore_patterns=list(ignore)))


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


def push_folder(
    folder: Path,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "mmaff: upload fine-tuned model",
) -> str:
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
        commit_message=commit_message,
        **({"revision": revision} if revision else {}),
    )
    return str(getattr(commit, "commit_url", commit))


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)  # the bytes stay when the checkpoint is rotated away mid-upload
    except OSError:
        shutil.copy2(source, target)


def stage_checkpoint(checkpoint: Path, staging: Path, strategy: str) -> list[str]:
    """Lay out in `staging` (hard links) what a save under `hub_strategy` sends, as the HF Trainer does: the model
    files at the root, and with `checkpoint` / `all_checkpoints` the whole checkpoint (optimizer and scheduler
    states included, for a resume) under `last-checkpoint/` / `checkpoint-N/`; never `training_args.bin`."""
    shutil.rmtree(staging, ignore_errors=True)
    staged = []
    for rel in files_to_upload(checkpoint, [*UPLOAD_IGNORE, *RESUME_STATE, "scheduler.pt", "README.md"]):
        _link(checkpoint / rel, staging / rel)
        staged.append(rel)
    if strategy in CHECKPOINT_STRATEGIES:
        folder = CHECKPOINT_STRATEGIES[strategy] or checkpoint.name
        for rel in files_to_upload(checkpoint, ["training_args.bin", "**/training_args.bin"]):
            _link(checkpoint / rel, staging / folder / rel)
            staged.append(f"{folder}/{rel}")
    return staged


def push_checkpoint_async(
    checkpoint: Path, staging: Path, repo_id: str, *, strategy: str, token: str | None, revision: str | None
) -> Future:
    """Stage a saved checkpoint (`stage_checkpoint`), scan it for the token, and commit it in the background
    (`HfApi.upload_folder(run_as_future=True)`, as the HF Trainer does), so training goes on meanwhile."""
    from huggingface_hub import HfApi, get_token

    files = stage_checkpoint(checkpoint, staging, strategy)
    check_no_secrets(staging, files, [token, get_token()])
    return HfApi(token=token).upload_folder(
        repo_id=repo_id,
        folder_path=str(staging),
        repo_type="model",
        commit_message=f"Training in progress, {checkpoint.name}",
        run_as_future=True,
        **({"revision": revision} if revision else {}),
    )
