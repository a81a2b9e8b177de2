"""Task files that are read: defaults per target type in one place, includes, overrides only, loader errors that
name the file and key; generation takes each record's decoding from its task and records it per task."""

from __future__ import annotations

import json
import shutil
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import LoopbackJSONServer

from mmaff.data.registry import load_registry
from mmaff.data.schema import TARGET_TYPES
from mmaff.encode.corpus import read_records
from mmaff.eval.generate import OpenAIChatGenerator, task_decodings
from mmaff.eval.predictions import PredictionFileError, check_run, read_run, write_run
from mmaff.eval.tasks import (
    DEFAULTS_FILE,
    EVERY,
    Decoding,
    TaskError,
    load_defaults,
    load_tasks,
    record_task,
    task_files,
    tasks_in_group,
)
from mmaff.paths import TASKS_DIR

REGISTRY = load_registry()


# ------------------------------------------------------------------------------------------------- defaults


def test_the_defaults_hold_every_target_type_and_decoding_comes_from_them() -> None:
    defaults = load_defaults()
    assert set(defaults) == {EVERY, *TARGET_TYPES}
    tasks = load_tasks()
    for task in tasks.values():
        section = defaults[task.target_type]
        if "generation" not in (yaml.safe_load(task.path.read_text()) or {}):
            assert task.generation.max_new_tokens == section["generation"]["max_new_tokens"], task.name
    assert tasks["meld/SP"].generation == Decoding(max_new_tokens=16)
    assert tasks["emotic/VAD"].generation == Decoding(max_new_tokens=40)
    assert tasks["masive/ASI"].generation == Decoding(max_new_tokens=24, num_beams=5, num_return_sequences=5)
    assert tasks["semeval2018/E-c"].primary == "jaccard" and tasks["xed/EC"].primary == "macro_f1"


def test_task_files_hold_only_what_differs_from_the_defaults() -> None:
    defaults = load_defaults()
    for path in task_files():
        task = load_tasks()[f"{path.parent.name}/{path.stem}"]
        base = {**defaults[EVERY], **defaults[task.target_type]}
        base["generation"] = {**defaults[EVERY]["generation"], **defaults[task.target_type]["generation"]}
        own = yaml.safe_load(path.read_text()) or {}
        for key, value in own.items():
            if key == "generation":
                assert all(base["generation"].get(k) != v for k, v in value.items()), (path, key)
            else:
                assert base.get(key) != value, f"{path}: {key} repeats the default"


def test_the_mmaffben_list_is_stated_once_in_the_task_files() -> None:
    from mmaff.eval.paper_compat import PAPER_COMPAT_TASKS

    paper = set(tasks_in_group("mmaffben"))
    assert paper == {f"{d}/{s}" for d, s in PAPER_COMPAT_TASKS}  # the notebook's parsers cover exactly those
    assert len({name.split("/")[0] for name in paper}) == 11  # MMAFFBen's 14 datasets, SemEval en/ar/es as one
    for path in TASKS_DIR.rglob("*.yaml"):
        text = path.read_text()
        assert "paper_compat" not in text.replace("paper_compat block", ""), path  # derived from the group
        assert ("mmaffben" in text) == (f"{path.parent.name}/{path.stem}" in paper) or path.name == DEFAULTS_FILE


# ----------------------------------------------------------------------------------- includes and errors


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    shutil.copy(TASKS_DIR / DEFAULTS_FILE, tmp_path / DEFAULTS_FILE)
    (tmp_path / "meld").mkdir()
    return tmp_path


def test_includes_layer_between_the_defaults_and_the_task(task_root: Path) -> None:
    (task_root / "_shared.yaml").write_text(
        "group_by: [language]\ngeneration: {max_new_tokens: 30}\nprimary: accuracy\n"
    )
    (task_root / "meld" / "_more.yaml").write_text("include: ../_shared.yaml\ngeneration: {num_beams: 2}\n")
    (task_root / "meld" / "SP.yaml").write_text("include: [_more.yaml]\nprimary: micro_f1\ngroups: [mmaffben]\n")
    task = load_tasks(task_root, registry=REGISTRY)["meld/SP"]
    assert task.generation == Decoding(max_new_tokens=30, num_beams=2)
    assert task.primary == "micro_f1" and task.group_by == ("language",)  # the task's own key wins
    assert task.metrics == ("accuracy", "macro_f1", "micro_f1") and task.split == "test"  # the defaults
    assert task.groups == ("all", "video", "mmaffben") and task.paper_compat
    assert set(load_tasks(task_root, registry=REGISTRY)) == {"meld/SP"}  # fragments are not tasks

    (task_root / "_shared.yaml").write_text("include: meld/_more.yaml\n")
    with pytest.raises(TaskError, match="include cycle"):
        load_tasks(task_root, registry=REGISTRY)
    (task_root / "meld" / "SP.yaml").write_text("include: _nowhere.yaml\n")
    with pytest.raises(TaskError, match=r"SP.yaml: include _nowhere.yaml: no such file"):
        load_tasks(task_root, registry=REGISTRY)


@pytest.mark.parametrize(
    ("where", "text", "message"),
    [
        ("meld/SP.yaml", "primery: accuracy\n", r"meld/SP.yaml: unknown key primery"),
        ("meld/SP.yaml", "generation: {max_tokens: 8}\n", r"meld/SP.yaml: unknown key generation.max_tokens"),
        (
            "meld/SP.yaml",
            "generation: {num_beams: 2, num_return_sequences: 3}\n",
            r"SP.yaml: generation: .*> num_beams",
        ),
        (
            "meld/SP.yaml",
            "generation: {max_new_tokens: 0}\n",
            r"SP.yaml: generation: max_new_tokens must be a positive integer",
        ),
        ("meld/SP.yaml", "groups: [all, mmaffben]\n", r"SP.yaml: groups: \['all'\] are derived"),
        ("meld/XX.yaml", "", r"meld/XX.yaml: meld/XX is not a registry subtask"),
        ("meld/SP.yaml", "- a list\n", r"SP.yaml: the file must be a mapping"),
    ],
)
def test_loader_errors_name_the_file_and_the_key(task_root: Path, where: str, text: str, message: str) -> None:
    (task_root / where).write_text(text)
    with pytest.raises(TaskError, match=message):
        load_tasks(task_root, registry=REGISTRY)


def test_an_unknown_key_in_the_defaults_is_an_error(task_root: Path) -> None:
    defaults = task_root / DEFAULTS_FILE
    defaults.write_text(defaults.read_text().replace("  primary: macro_f1\n", "  primary: macro_f1\n  beams: 2\n", 1))
    with pytest.raises(TaskError, match=r"_defaults.yaml: unknown key single.beams"):
        load_defaults(task_root)
    defaults.write_text("every: {}\nsingel: {}\n")
    with pytest.raises(TaskError, match=r"_defaults.yaml: unknown key singel"):
        load_defaults(task_root)


# ------------------------------------------------------------------------------------------- run overrides


def test_run_overrides_apply_to_every_task() -> None:
    plain = task_decodings()
    assert plain["masive/ASI"] == Decoding(24, 5, 5) and plain["meld/SP"] == Decoding(16)
    greedy = task_decodings(num_beams=1)  # fewer beams than returned: that many returned
    assert greedy["masive/ASI"] == Decoding(24) and greedy["meld/SP"] == Decoding(16)
    short = task_decodings(max_new_tokens=4, num_beams=3)
    assert short["masive/ASI"] == Decoding(4, 3, 3) and short["meld/SP"] == Decoding(4, 3, 1)
    with pytest.raises(ValueError, match="num_return_sequences 5 > num_beams 2"):
        task_decodings(num_beams=2, num_return_sequences=5)


def test_a_resume_may_cover_other_tasks_but_never_another_decoding_of_a_task(sample_corpus, tmp_path) -> None:
    from mmaff.eval.predictions import corpus_fingerprint

    out = tmp_path / "p.jsonl"
    run = {"backend": "hf", "model": "m", **corpus_fingerprint(sample_corpus), "split": "test"}
    meld = {"meld/SP": Decoding(16).as_dict()}
    masive = {"masive/ASI": Decoding(24, 5, 5).as_dict()}
    write_run(out, {**run, "decoding": {"dtype": "float32", "tasks": meld}})
    write_run(out, {**run, "decoding": {"dtype": "float32", "tasks": masive}})  # other datasets: a resume
    assert read_run(out)["decoding"]["tasks"] == {**masive, **meld}
    with pytest.raises(PredictionFileError, match=r"decoding of masive/ASI: .*'num_beams': 5.* -> .*'num_beams': 1"):
        check_run(out, {**run, "decoding": {"dtype": "float32", "tasks": {"masive/ASI": Decoding(24).as_dict()}}})
    with pytest.raises(PredictionFileError, match=r"decoding: \{'dtype': 'float32'\} -> \{'dtype': 'bfloat16'\}"):
        check_run(out, {**run, "decoding": {"dtype": "bfloat16", "tasks": meld}})


# ------------------------------------------------------------------------------------------- HF generation


def _generate(tiny_model_dir: Path, sample_corpus: Path, out: Path, *extra: str) -> None:
    from mmaff.eval.generate import main

    argv = ["--backend", "hf", "--model", str(tiny_model_dir), "--corpus", str(sample_corpus), "--out", str(out)]
    main([*argv, "--datasets", "masive", "meld", "--limit", "2", "--decoder", "pyav", *extra])


def _rows(path: Path) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in map(json.loads, path.read_text().splitlines())}


def test_generate_takes_each_tasks_decoding_and_records_it(tiny_model_dir, sample_corpus, tmp_path) -> None:
    out = tmp_path / "predictions.jsonl"
    _generate(tiny_model_dir, sample_corpus, out)
    run = read_run(out)
    tasks = run["decoding"]["tasks"]
    assert tasks["masive/ASI"] == {"max_new_tokens": 24, "num_beams": 5, "num_return_sequences": 5, "do_sample": False}
    rows = _rows(out)
    records = read_records(sample_corpus, "test", datasets=["masive", "meld"], limit=2)
    assert set(rows) == {r["id"] for r in records}
    assert set(tasks) == {record_task(r) for r in records}  # the tasks of this run's records
    for name in set(tasks) - {"masive/ASI"}:
        assert tasks[name] == load_tasks()[name].generation.as_dict() and tasks[name]["num_beams"] == 1
    assert run["decoding_overrides"] == {}
    masive = [rows[r["id"]] for r in records if r["dataset"] == "masive"]
    assert masive and all(isinstance(r["prediction"], list) and len(r["prediction"]) == 5 for r in masive)
    assert all(r["max_new_tokens"] == 24 for r in masive)
    others = [rows[r["id"]] for r in records if r["dataset"] != "masive"]
    assert others and all(isinstance(r["prediction"], str) for r in others)

    with pytest.raises(PredictionFileError, match=r"decoding of masive/ASI"):  # another decoding: refused
        _generate(tiny_model_dir, sample_corpus, out, "--num-beams", "1")

    greedy = tmp_path / "greedy.jsonl"
    _generate(tiny_model_dir, sample_corpus, greedy, "--num-beams", "1", "--max-new-tokens", "4")
    run = read_run(greedy)
    assert run["decoding_overrides"] == {"max_new_tokens": 4, "num_beams": 1}
    assert {json.dumps(d, sort_keys=True) for d in run["decoding"]["tasks"].values()} == {
        json.dumps(Decoding(4).as_dict(), sort_keys=True)
    }
    assert all(isinstance(r["prediction"], str) and r["max_new_tokens"] == 4 for r in _rows(greedy).values())


# ------------------------------------------------------------------------------------------ OpenAI backend


class BeamServer(LoopbackJSONServer):
    """Answers with `n` choices (in reverse index order, to check the client ranks them) and keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        super().__init__()

    def respond(self, handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        self.requests.append(payload)
        n = payload.get("n", 1)
        choices = [
            {"index": i, "message": {"role": "assistant", "content": f" beam {i} "}, "finish_reason": "stop"}
            for i in reversed(range(n))
        ]
        self.send(handler, 200, {"choices": choices, "usage": {"prompt_tokens": 3}})


@pytest.mark.parametrize("beam_search", ["none", "vllm"])
def test_the_openai_backend_asks_for_beams_only_where_the_server_has_them(corpus, test_records, beam_search) -> None:
    masive = next(r for r in test_records if r["dataset"] == "masive")
    meld = next(r for r in test_records if r["dataset"] == "meld" and r["subtask"] == "SP")
    server = BeamServer()
    try:
        client = OpenAIChatGenerator(
            server.base_url,
            "m",
            corpus_root=corpus.root,
            budget=corpus.budget,
            decoder="pyav",
            beam_search=beam_search,
        )
        beams, plain = client.request(masive), client.request(meld)
    finally:
        server.close()
    masive_request, meld_request = server.requests
    assert meld_request["max_tokens"] == 16 and "n" not in meld_request and plain.text == "beam 0"
    assert masive_request["max_tokens"] == 24
    recorded = client.decoding_for("masive/ASI")
    if beam_search == "vllm":
        assert masive_request["use_beam_search"] is True and masive_request["n"] == 5
        assert beams.text == [f"beam {i}" for i in range(5)]  # ranked by the server's index
        assert recorded == Decoding(24, 5, 5).as_dict()
    else:
        assert "use_beam_search" not in masive_request and "n" not in masive_request and beams.text == "beam 0"
        assert {k: recorded[k] for k in ("num_beams", "num_return_sequences")} == {
            "num_beams": 1,
            "num_return_sequences": 1,
        }
        assert "asks for 5 beams" in recorded["note"]
    assert client.decoding_for("meld/SP") == Decoding(16).as_dict()
