"""Checkpoints on the Hub (issue 13): a tiny training run pushing under `hub_strategy: checkpoint` to a loopback Hub,
its model card through `mmaff report --model-card` (ModelCard round trip, eval results on configs of the dataset
card, no secret), `mmaff push-model`, and a run that cannot push failing before any training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard, constants
from huggingface_hub.repocard_data import model_index_to_eval_results

from mmaff.testing.hub_server import FakeHub

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_cliTOKEN0123456789abcdef"  # given on the command line only
REVISION = "0123456789abcdef0123456789abcdef01234567"  # the dataset commit push-dataset recorded


def _contract_configs(corpus: Path) -> dict[str, set[str]]:
    """config -> splits, by the shared contract: `all`, per modality, per dataset, per dataset/subtask (named by
    push-dataset's `hub_config_name`), each with the corpus splits it has rows for."""
    from mmaff.data.registry import load_registry
    from mmaff.hub.push_dataset import hub_config_name

    registry = load_registry()
    configs: dict[str, set[str]] = {}
    for path in sorted(corpus.glob("*/*.jsonl")):
        split = path.parent.name
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            dataset, subtask = record["dataset"], record["subtask"]
            for name in ("all", registry[dataset].modality, dataset, hub_config_name(f"{dataset}/{subtask}")):
                configs.setdefault(name, set()).add(split)
    return configs


@pytest.fixture
def hub(monkeypatch):
    """The loopback Hub, as the endpoint of every `HfApi` made in this process; no stored login is read."""
    with FakeHub(tokens={TOKEN}) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", "/nonexistent/token")
        monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", "/nonexistent/stored_tokens")
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


@pytest.fixture
def pushed_corpus(sample_corpus, tmp_path) -> Path:
    """The bundled corpus as if `mmaff push-dataset` had pushed it (its `hub_push.json`)."""
    corpus = tmp_path / "mmaffin"
    shutil.copytree(sample_corpus, corpus)
    configs = sorted(_contract_configs(corpus))
    record = {"repo_id": "org/mmaffin", "revision": REVISION, "configs": configs}
    (corpus / "hub_push.json").write_text(json.dumps(record))
    return corpus


def _train(tiny_model_dir: Path, corpus: Path, out: Path, *extra: str) -> list[str]:
    argv = ["recipes/sft_7b.py", "--config", str(ROOT / "recipes" / "smoke" / "config_lora.yaml")]
    argv += ["--model_name_or_path", str(tiny_model_dir), "--corpus", str(corpus), "--output_dir", str(out)]
    argv += ["--max_steps", "2", "--save_steps", "1", "--global_batch_size", "2", "--max_length", "384", *extra]
    return argv


def _score_gold(corpus: Path, out: Path, *, chained: bool) -> Path:
    """metrics.json of gold answers on every test task (joint ones included), or, `chained`, on the two-step tasks
    with the `chained` block that `mmaff chained --score-out` adds."""
    from mmaff.eval.report import write_reports
    from mmaff.eval.score import score
    from mmaff.eval.tasks import load_tasks

    records = [
        json.loads(line) for p in sorted((corpus / "test").glob("*.jsonl")) for line in p.read_text().splitlines()
    ]
    tasks = {name: t for name, t in load_tasks().items() if not chained or ">" in name}
    rows = [r for r in records if f"{r['dataset']}/{r['subtask']}" in tasks]
    predictions = out / "predictions.jsonl"
    out.mkdir(parents=True)
    predictions.write_text(
        "".join(
            json.dumps({"id": r["id"], "prediction": r["messages"][-1]["content"][0]["text"]}) + "\n" for r in rows
        )
    )
    present = {f"{r['dataset']}/{r['subtask']}" for r in rows}
    report, scored = score(predictions, corpus, {n: t for n, t in tasks.items() if n in present})
    if chained:
        report["chained"] = {n: {"chains": 2, "strict": 2, "lenient": 0, "failed": 0} for n in present}
    write_reports(out, report, scored, tasks, plots=False)
    return out / "metrics.json"


@pytest.mark.slow
def test_a_trained_and_reported_card_round_trips_and_pushes(
    hub, pushed_corpus, tiny_model_dir, tmp_path, monkeypatch, capfd
) -> None:
    from mmaff.eval.report import main as report_main
    from mmaff.train.push_model import main as push_model
    from mmaff.train.sft import main as train

    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    out = tmp_path / "run"
    extra = ["--push_to_hub", "true", "--hub_strategy", "checkpoint", "--hub_model_id", "tester/tiny-affect"]
    argv = _train(tiny_model_dir, pushed_corpus, out, *extra, "--hub_token", TOKEN)
    monkeypatch.setattr(sys, "argv", argv)
    train(argv[1:])

    # hub_strategy checkpoint: background commits of the saved checkpoints, the model files at the root and the
    # checkpoint (optimizer included, for a resume) under last-checkpoint/, then the final model with its card
    assert hub.repos["model/tester/tiny-affect"]["private"] is False
    messages = [c["header"]["summary"] for c in hub.commits]
    assert messages[-1] == "End of training" and "Training in progress, checkpoint-1" in messages
    first = hub.commits[messages.index("Training in progress, checkpoint-1")]["files"]
    assert {"adapter_model.safetensors", "adapter_config.json", "last-checkpoint/optimizer.pt"} <= set(first)
    assert "last-checkpoint/trainer_state.json" in first and "trainer_state.json" not in first
    final = hub.commits[-1]["files"]
    assert {"README.md", "model.safetensors", "config.json"} <= set(final)  # merge_lora: the merged model
    assert (out / "training_args.bin").is_file()
    for commit in hub.commits:
        assert not [p for p in commit["files"] if p.endswith("training_args.bin")], commit["header"]
        assert all(TOKEN.encode() not in data for data in commit["files"].values())
    assert not (out / "_hub_push").exists()

    # eval results of an ordinary and a chained run into the adapter's card
    metrics = _score_gold(pushed_corpus, tmp_path / "eval", chained=False)
    chained = _score_gold(pushed_corpus, tmp_path / "eval-chained", chained=True)
    card_path = out / "README.md"
    report_main(["--metrics", str(metrics), str(chained), "--model-card", str(card_path)])

    text = card_path.read_text(encoding="utf-8")
    assert TOKEN not in text and "<redacted>" in text
    card = ModelCard.load(card_path)
    assert ModelCard(str(card)).data.to_dict() == card.data.to_dict()  # round trip
    data = card.data
    assert data.datasets == ["org/mmaffin"] and data.license == "other" and data.library_name == "peft"
    assert data.base_model is None  # a local base folder is no Hub id; the text names it
    assert data.license_link == f"https://huggingface.co/datasets/org/mmaffin/blob/{REVISION}/LICENSE.md"
    assert data.license_name == "mixed-source-licences" and "## Licence" in card.text  # the base's is unknown
    _, results = model_index_to_eval_results(data.to_dict()["model-index"])
    configs = _contract_configs(pushed_corpus)
    for result in results:
        assert result.dataset_type == "org/mmaffin" and result.dataset_revision == REVISION
        assert result.dataset_config in configs and result.dataset_split in configs[result.dataset_config]
    tasks = json.loads(metrics.read_text())["tasks"]
    joint = [r for r in results if r.task_name.startswith("meld/EC+SP")]
    assert {r.metric_name for r in joint} == {"EC accuracy (corrected mode)", "SP accuracy (corrected mode)"}
    assert {r.dataset_config for r in results} >= {"meld.EC+SP", "semeval2018.V-reg_then_E-c"}
    assert len({r.task_name.split(" ")[0] for r in results}) == len(tasks)
    two_step = [r for r in results if "chained" in r.metric_name]  # beside the oracle figure of the same config
    assert {r.dataset_config for r in two_step} == {"semeval2018.V-reg_then_E-c", "semeval2018.E-c_then_V-reg"}

    # push-model of the adapter folder: card and weights, not training_args.bin, merged/ or checkpoints
    capfd.readouterr()
    assert push_model([str(out), "tester/tiny-adapter", "--token", TOKEN, "--private"]) == 0
    sent = hub.commits[-1]
    assert hub.repos["model/tester/tiny-adapter"]["private"] is True
    assert {"README.md", "adapter_model.safetensors", "adapter_config.json", "trainer_state.json"} <= set(
        sent["files"]
    )
    assert not [
        p for p in sent["files"] if p.startswith(("merged/", "checkpoint-", "_hub_push")) or "training_args" in p
    ]
    assert ModelCard(sent["files"]["README.md"].decode()).data.eval_results  # the card as reported
    assert TOKEN not in capfd.readouterr().out


def test_push_model_refuses_an_incomplete_folder_and_a_bad_token(hub, tiny_model_dir, tmp_path, capsys) -> None:
    from mmaff.train.push_model import main as push_model

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "README.md").write_text("---\nlicense: other\n---\n\n# tiny\n")
    assert push_model([str(folder), "tester/tiny", "--token", "hf_wrong_token_123"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: tester/tiny: the hub token is not valid (401)")
    assert hub.commits == [] and "hf_wrong" not in error

    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a save cut short
    assert push_model([str(folder), "tester/tiny", "--token", TOKEN]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: {folder}: model.safetensors is") and "truncated" in error
    assert hub.commits == [] and hub.repos == {}

    shutil.copy2(tiny_model_dir / "model.safetensors", weights)
    assert push_model([str(folder), "tester/tiny", "--token", TOKEN, "--dataset-id", "org/mmaffin"]) == 0
    files = hub.commits[-1]["files"]
    assert {"README.md", "model.safetensors", "config.json", "tokenizer.json"} <= set(files)
    assert ModelCard(files["README.md"].decode()).data.datasets == ["org/mmaffin"]


@pytest.mark.parametrize("offline", [False, True], ids=["bad-token", "offline"])
def test_a_run_that_cannot_push_fails_before_any_work(offline, tiny_model_dir, sample_corpus, tmp_path) -> None:
    out = tmp_path / "run"
    argv = _train(tiny_model_dir, sample_corpus, out, "--push_to_hub", "true", "--hub_token", "hf_wrong_token_123")
    with FakeHub(tokens={TOKEN}) as server:
        env = {**os.environ, "HF_ENDPOINT": server.url, "HF_HUB_OFFLINE": "1" if offline else "0", "HF_TOKEN": ""}
        done = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    expected = "HF_HUB_OFFLINE is set" if offline else "the hub token is not valid (401)"
    assert last.startswith(f"error: push_to_hub: {expected}") and "Traceback" not in done.stderr
    assert "hf_wrong" not in done.stderr + done.stdout
    assert not out.exists() and "Counting tokens" not in done.stderr  # nothing loaded, nothing trained
    assert not [r for r in server.requests if r[0] != "GET"]  # no repo created, nothing committed
    assert (("GET", "/api/whoami-v2") in server.requests) is not offline


def test_the_card_inherits_the_base_licence_and_names_no_unknown_dataset(tiny_model_dir, sample_corpus, tmp_path):
    from mmaff.hub.model_card import model_card

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    (base / "README.md").write_text("---\nlicense: apache-2.0\n---\n\n# base\n")
    manifest = json.loads((sample_corpus / "manifest.json").read_text())
    kwargs = dict(base_model=str(base), corpus_manifest=manifest, recipe=None, method="full", command=["x"])
    card = ModelCard(model_card(corpus=str(sample_corpus), **kwargs))  # never pushed: no `datasets: []`
    assert "datasets" not in card.data.to_dict() and card.data.license == "other"
    assert (
        card.data.license_name == "apache-2.0-and-mixed-source-licences" and card.data.library_name == "transformers"
    )
    assert f"base model `{base}`: `apache-2.0`" in card.text
    card = ModelCard(model_card(corpus="org/mmaffin", **kwargs))  # a Hub corpus names itself
    assert card.data.datasets == ["org/mmaffin"] and card.data.license_link.endswith("/blob/main/LICENSE.md")
