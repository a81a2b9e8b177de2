"""Tokens and keys given on the command line or in a recipe never reach the model card, a run file, a log or an
upload (issue #10, security)."""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import sys
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub.utils import filter_repo_objects

from mmaff.hub.model_card import SecretInUpload, model_card, push_folder
from mmaff.redact import REDACTED, redact_command, redact_config, redact_text, redact_yaml_text

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_argvTOKEN0123456789"  # on the command line
RECIPE_TOKEN = "hf_recipeTOKEN9876543210"  # in the recipe YAML
NESTED_SECRET = "nested-S3CRET-value"
SECRETS = (TOKEN, RECIPE_TOKEN, NESTED_SECRET)


def _assert_clean(data: bytes | str, where: str) -> None:
    data = data if isinstance(data, bytes) else data.encode()
    for secret in SECRETS:
        assert secret.encode() not in data, f"{secret} in {where}"


# --------------------------------------------------------------------------------------------- the redaction


def test_command_lines_are_redacted_by_name_in_every_form() -> None:
    argv = ["train.py", "--hub_token", TOKEN, "--hub-token=abc-def", "--api_key", "k1", "--client-secret", "s1"]
    argv += ["--password=p1", "HF_TOKEN=t1", "--base-url", "https://user:pw1@api.example.com/v1"]
    argv += ["--max_new_tokens", "64", "--tokenizer_name", "qwen", "--api-key-env", "OPENAI_API_KEY", "--lr", "1"]
    assert redact_command(argv) == [
        "train.py", "--hub_token", REDACTED, f"--hub-token={REDACTED}", "--api_key", REDACTED,
        "--client-secret", REDACTED, f"--password={REDACTED}", f"HF_TOKEN={REDACTED}",
        "--base-url", f"https://{REDACTED}@api.example.com/v1",
        "--max_new_tokens", "64", "--tokenizer_name", "qwen", "--api-key-env", "OPENAI_API_KEY", "--lr", "1",
    ]  # fmt: skip
    # a variable name is kept, a key pasted where the variable name goes is not
    assert redact_command(["--api-key-env", "sk-abc123456"]) == ["--api-key-env", REDACTED]
    assert redact_command(["--note", f"was {TOKEN}"], secrets=[TOKEN]) == ["--note", f"was {REDACTED}"]


def test_configs_and_texts_are_redacted_at_any_depth() -> None:
    config = {"hub_token": TOKEN, "lr": 1, "auth": {"api_key": "k", "items": [{"Password": "p"}]}, "none_token": None}
    assert redact_config(config) == {
        "hub_token": REDACTED,
        "lr": 1,
        "auth": {"api_key": REDACTED, "items": [{"Password": REDACTED}]},
        "none_token": None,
    }
    recipe = f"# a comment\nlr: 1\nhub_token: {RECIPE_TOKEN}  # mine\nhub:\n  auth: {{secret: '{NESTED_SECRET}'}}\n"
    redacted = redact_yaml_text(recipe)
    assert redacted.startswith("# a comment\nlr: 1\n") and "# mine" in redacted
    _assert_clean(redacted, "recipe")
    text = f"Incorrect API key: sk-zzzz9999. Authorization: Bearer {TOKEN}; see https://u:p4ss@h/x"
    assert (
        redact_text(text)
        == f"Incorrect API key: {REDACTED}. Authorization: Bearer {REDACTED}; see https://{REDACTED}@h/x"
    )


# ------------------------------------------------------------------------------------------- card and upload


def _recipe(tmp_path: Path, nested: bool = True) -> Path:
    """The smoke recipe plus a hub token (and, for the card alone, a nested secret the parser would refuse)."""
    recipe = tmp_path / "recipe.yaml"
    text = (ROOT / "recipes" / "smoke" / "config_lora.yaml").read_text() + f"hub_token: {RECIPE_TOKEN}\n"
    recipe.write_text(text + (f"extra:\n  nested: {{client_secret: {NESTED_SECRET}}}\n" if nested else ""))
    return recipe


def test_the_model_card_holds_no_token_from_the_command_or_the_recipe(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["recipes/sft_7b.py", "--config", "r.yaml", "--hub_token", TOKEN])
    card = model_card(
        base_model="Qwen/Qwen2.5-VL-7B-Instruct",
        corpus="org/mmaffin",
        corpus_manifest={"corpus": "mmaffin", "mixture": {"meld": {"weight": 1.0}}},
        recipe=str(_recipe(tmp_path)),
        method="lora",
        results={"global_step": 7},
    )
    _assert_clean(card, "model card")
    assert f"--hub_token '{REDACTED}'" in card and f"hub_token: {REDACTED}" in card and "lora_r: 8" in card


class FakeHub:
    """`huggingface_hub.HfApi` stand-in that keeps the bytes of every file an upload would send."""

    uploaded: dict[str, bytes] = {}
    created: list[str] = []

    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def create_repo(self, repo_id: str, **kwargs: Any) -> None:
        FakeHub.created.append(repo_id)

    def upload_folder(self, *, folder_path: str, ignore_patterns: list[str], **kwargs: Any) -> str:
        root = Path(folder_path)
        files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        for rel in filter_repo_objects(files, ignore_patterns=ignore_patterns):
            FakeHub.uploaded[rel] = (root / rel).read_bytes()
        return "https://hf.co/org/m/commit/1"


@pytest.fixture
def fake_hub(monkeypatch) -> type[FakeHub]:
    FakeHub.uploaded, FakeHub.created = {}, []
    monkeypatch.setattr("huggingface_hub.HfApi", FakeHub)
    return FakeHub


def test_the_push_leaves_out_training_args_and_refuses_a_folder_holding_the_token(tmp_path, fake_hub) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "README.md").write_text("card")
    (folder / "config.json").write_text("{}")
    # what transformers' Trainer saves next to the weights: the pickled TrainingArguments, hub_token included
    (folder / "training_args.bin").write_bytes(pickle.dumps(argparse.Namespace(hub_token=TOKEN, lr=1.0)))
    assert push_folder(folder, "org/m", token=TOKEN) == "https://hf.co/org/m/commit/1"
    assert sorted(fake_hub.uploaded) == ["README.md", "config.json"]

    (folder / "notes.txt").write_text(f"pushed with {TOKEN}\n")
    fake_hub.uploaded, fake_hub.created = {}, []
    with pytest.raises(SecretInUpload, match="notes.txt") as refused:
        push_folder(folder, "org/m", token=TOKEN)
    assert TOKEN not in str(refused.value) and fake_hub.uploaded == {} and fake_hub.created == []


@pytest.mark.slow
def test_a_real_training_run_uploads_and_logs_no_token(
    tmp_path, monkeypatch, tiny_model_dir, sample_corpus, caplog, capfd
) -> None:
    """Full fine-tuning of the tiny model in this process, pushed after every save and at the end to the loopback
    Hub (`hub_strategy: every_save`): the token given on the command line and the one in the recipe are in no
    uploaded byte, no log line and no file of the output folder but the pickled training arguments (which are not
    uploaded)."""
    from huggingface_hub import constants

    from mmaff.testing.hub_server import FakeHub
    from mmaff.train.sft import main

    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))
    caplog.set_level(logging.INFO)
    out = tmp_path / "out"
    argv = [
        "recipes/sft_7b.py",
        "--config",
        str(_recipe(tmp_path, nested=False)),
        "--model_name_or_path",
        str(tiny_model_dir),
    ]
    argv += ["--corpus", str(sample_corpus), "--output_dir", str(out), "--use_peft", "false", "--merge_lora", "false"]
    argv += ["--max_steps", "2", "--save_steps", "1", "--hub_token", TOKEN, "--push_to_hub", "true"]
    argv += ["--hub_model_id", "org/m", "--hub_strategy", "every_save"]
    monkeypatch.setattr(sys, "argv", argv)
    with FakeHub(tokens={TOKEN}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.url)
        main()
    uploaded = {rel: data for commit in hub.commits for rel, data in commit["files"].items()}
    assert {"README.md", "model.safetensors", "trainer_state.json"} <= set(hub.commits[-1]["files"])
    assert len(hub.commits) >= 2  # a save during training, and the end
    assert TOKEN.encode() in (out / "training_args.bin").read_bytes()
    assert not [rel for rel in uploaded if rel.endswith("training_args.bin")]
    for rel, data in uploaded.items():
        _assert_clean(data, f"uploaded {rel}")
    assert f"--hub_token '{REDACTED}'" in uploaded["README.md"].decode()
    captured = capfd.readouterr()
    _assert_clean(caplog.text + captured.out + captured.err, "logs")
    for path in sorted(p for p in out.rglob("*") if p.is_file() and p.name != "training_args.bin"):
        _assert_clean(path.read_bytes(), str(path.relative_to(out)))
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 2
