"""The evaluation command lines cannot silently do nothing: every mistake a user can fix is one ``error:`` line on
stderr with exit status 2 (no traceback); `--datasets a,b` works in generate / likelihood / score; every flag has
help text; the vLLM backend gets the task's decoding and the engine flags (against a fake `vllm` module)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from mmaff.eval import generate as gen
from mmaff.eval import likelihood, score
from mmaff.eval.cli_common import CliError, comma_list, selected_records
from mmaff.eval.tasks import Decoding, record_task

ROOT = Path(__file__).resolve().parents[1]


def run_cli(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess, *expected: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--datasets", "masive,no_such_set"], ["unknown dataset no_such_set", "known:"]),
        (["--tasks", "masive/nope"], ["unknown task masive/nope", "eval/tasks"]),
        (["--limit", "0"], ["no records", "widen the selection"]),
        (["--split", "tset"], ["--split tset", "test"]),
    ],
)
def test_generate_selection_errors_are_one_line(sample_corpus, tmp_path, extra, expected) -> None:
    args = ["--backend", "openai", "--model", "served", "--corpus", str(sample_corpus)]
    result = run_cli("mmaff.generate", *args, "--out", str(tmp_path / "p.jsonl"), *extra)
    assert_one_line_error(result, *expected)
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--concurrency", "0"], ["--concurrency 0: out of range"]),
        (["--timeout", "0"], ["--timeout 0.0: out of range"]),
        (["--base-url", "localhost:8000/v1"], ["--base-url localhost:8000/v1", "http(s)://host"]),
        (["--base-url", "ftp://u:pw-secret@h/v1"], ["--base-url ftp://h/v1", "http(s)://host"]),
        (["--extra-body", "{top_k: 1}"], ["--extra-body", "not JSON"]),
        (["--extra-body", "[1]"], ["--extra-body", "a JSON object is needed"]),
    ],
)
def test_openai_backend_flag_errors_are_one_line(sample_corpus, tmp_path, extra, expected) -> None:
    args = ["--backend", "openai", "--model", "served", "--corpus", str(sample_corpus)]
    result = run_cli("mmaff.generate", *args, "--out", str(tmp_path / "p.jsonl"), *extra)
    line = assert_one_line_error(result, *expected)
    assert "pw-secret" not in line and not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize("module", ["mmaff.generate", "mmaff.likelihood"])
def test_a_missing_model_folder_is_one_line(module, sample_corpus, tmp_path) -> None:
    result = run_cli(module, "--model", "outputs/no-such-run/merged", "--corpus", str(sample_corpus), "--out", "x")
    assert_one_line_error(result, "--model outputs/no-such-run/merged: no such folder", "make tiny-model")


@pytest.mark.parametrize("corpus", ["data/mmafin", "./mmaffin", "mmaffin"])
def test_a_misspelt_corpus_path_is_not_tried_as_a_hub_id(corpus, tmp_path) -> None:
    result = run_cli("mmaff.generate", "--backend", "openai", "--model", "m", "--corpus", corpus, "--out", "x")
    assert_one_line_error(result, f"corpus {corpus}: no such folder", "make build-mmaffin")


def test_offline_hub_makes_any_missing_corpus_local(tmp_path) -> None:
    result = run_cli(
        "mmaff.generate", "--backend", "openai", "--model", "m", "--corpus", "org/name", "--out", "x",
        env={"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert_one_line_error(result, "corpus org/name: no such folder")


def test_looks_local_keeps_hub_ids(monkeypatch) -> None:
    from mmaff.encode.corpus import looks_local

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert not looks_local("someorg/mmaffin")
    assert looks_local("data/mmafin") and looks_local("./x/y") and looks_local("a/b/c") and looks_local("mmaffin")


def test_score_errors_are_one_line(sample_corpus, tmp_path) -> None:
    base = ["--corpus", str(sample_corpus), "--out", str(tmp_path / "s")]
    missing = run_cli("mmaff.score", "--predictions", str(tmp_path / "nope.jsonl"), *base)
    assert_one_line_error(missing, "nope.jsonl: no such file", "mmaff.generate")
    predictions = tmp_path / "p.jsonl"
    predictions.write_text("")
    group = run_cli("mmaff.score", "--predictions", str(predictions), *base, "--group", "vidoe")
    assert_one_line_error(group, "unknown group vidoe", "video")
    dataset = run_cli("mmaff.score", "--predictions", str(predictions), *base, "--datasets", "meld,xxx")
    assert_one_line_error(dataset, "unknown dataset xxx")
    empty = run_cli("mmaff.score", "--predictions", str(predictions), *base, "--group", "image", "--datasets", "meld")
    assert_one_line_error(empty, "no task in group image")
    corpus = run_cli("mmaff.score", "--predictions", str(predictions), "--corpus", "data/mmafin", "--out", "x")
    assert_one_line_error(corpus, "corpus data/mmafin: no such folder")


def test_report_missing_metrics_is_one_line(tmp_path) -> None:
    result = run_cli("mmaff.report", "--metrics", str(tmp_path / "metrics.json"))
    assert_one_line_error(result, "metrics.json: no such file", "mmaff.score")


# ------------------------------------------------------------------------------------------------ selections


@pytest.mark.parametrize("parser", [gen.build_parser(), likelihood.build_parser(), score.build_parser()])
def test_datasets_take_commas_and_spaces(parser: argparse.ArgumentParser) -> None:
    required = {"--model": "m", "--out": "o", "--predictions": "p", "--corpus": "c"}
    known = {opt for action in parser._actions for opt in action.option_strings}
    argv = [x for flag, value in required.items() if flag in known for x in (flag, value)]
    args = parser.parse_args([*argv, "--datasets", "masive,meld", "xed", "--tasks", "meld/ERC"])
    assert args.datasets == ["masive", "meld", "xed"] and args.tasks == ["meld/ERC"]
    assert comma_list(["a,,b", " c "]) == ["a", "b", "c"]


def test_selected_records_follow_datasets_tasks_and_limit(corpus) -> None:
    records = selected_records(corpus, "test", datasets=["masive", "meld"], limit=2)
    assert {r["dataset"] for r in records} == {"masive", "meld"}
    assert all(sum(r["dataset"] == d for r in records) <= 2 for d in ("masive", "meld"))
    task = record_task(records[0])
    only = selected_records(corpus, "test", tasks=[task])
    assert only and {record_task(r) for r in only} == {task}
    with pytest.raises(CliError, match="unknown dataset nope"):
        selected_records(corpus, "test", datasets=["nope"])


def test_likelihood_target_types_take_commas() -> None:
    args = likelihood._parse_args(["--model", "m", "--out", "o", "--target-types", "multi,single"])
    assert args.target_types == ["multi", "single"]
    assert likelihood._parse_args(["--model", "m", "--out", "o"]).target_types == ["multi", "open"]
    with pytest.raises(SystemExit):
        likelihood._parse_args(["--model", "m", "--out", "o", "--target-types", "multi,bogus"])


# --------------------------------------------------------------------------------------------------- help


@pytest.mark.parametrize("parser", [gen.build_parser(), likelihood.build_parser(), score.build_parser()])
def test_every_flag_has_help_and_shows_its_default(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
    text = parser.format_help()
    for action in parser._actions:
        if action.default not in (None, False, argparse.SUPPRESS) and not action.required:
            assert f"default: {action.default}" in " ".join(text.split()), action.option_strings


def test_report_flags_have_help(capsys) -> None:
    from mmaff.eval.report import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert "--metrics METRICS" in shown and "metrics.json written by mmaff.eval.score" in shown


# ----------------------------------------------------------------------------------------------- progress


class ListBackend:
    name, model_name, decoding = "fake", "fake", {}

    def predict(self, records):
        for record in records:
            yield [gen.Prediction(record["id"], "1. joy", 0.0)]


def test_generate_advances_one_bar_per_item_and_only_where_asked(tmp_path, monkeypatch) -> None:
    bars: list[dict[str, Any]] = []

    class Bar:
        def __init__(self, total: int, desc: str, enabled: bool) -> None:
            self.state = {"total": total, "enabled": enabled, "done": 0}
            bars.append(self.state)

        def __enter__(self):
            return self

        def __exit__(self, *exc: Any) -> None:
            return None

        def update(self, n: int) -> None:
            self.state["done"] += n

    monkeypatch.setattr(gen, "progress_bar", lambda total, desc, enabled=True: Bar(total, desc, enabled))
    records = [{"id": f"r{i}", "dataset": "d", "subtask": "s"} for i in range(3)]
    with gen.PredictionWriter(tmp_path / "p.jsonl") as writer:
        gen.generate(records, ListBackend(), writer, progress=False)
    assert bars == [{"total": 3, "enabled": False, "done": 3}]


def test_progress_bar_shows_rate_and_eta_on_a_terminal_and_is_off_on_other_ranks(monkeypatch) -> None:
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert gen.progress_bar(10, "hf", enabled=False).disable
    bar = gen.progress_bar(10, "hf", enabled=True)
    bar.update(4)
    shown, disabled = str(bar), bar.disable
    bar.close()
    assert not disabled and "4/10" in shown and "item/s" in shown and "<" in shown  # elapsed<ETA, rate


# -------------------------------------------------------------------------------------------------- vLLM


@pytest.fixture
def fake_vllm(monkeypatch, tiny_model_dir):
    """A `vllm` module recording the engine kwargs and the calls; beams hold the prompt's tokens, as vLLM's do."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    calls: dict[str, Any] = {"generate": [], "beam_search": []}

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class BeamSearchParams(SamplingParams):
        pass

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            calls["engine"] = kwargs

        def generate(self, requests, params, use_tqdm=True):
            calls["generate"].append((requests, params, use_tqdm))
            reply = types.SimpleNamespace(text=" 1. joy ", finish_reason="stop")
            return [types.SimpleNamespace(outputs=[reply], prompt_token_ids=[1, 2]) for _ in requests]

        def beam_search(self, requests, params):
            calls["beam_search"].append((requests, params))
            outputs = []
            for request in requests:
                prompt = tokenizer(request["prompt"], add_special_tokens=False)["input_ids"]
                beams = [types.SimpleNamespace(tokens=prompt + tokenizer(f"beam {k}")["input_ids"]) for k in range(5)]
                outputs.append(types.SimpleNamespace(sequences=beams))
            return outputs

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams
    module.sampling_params = types.SimpleNamespace(BeamSearchParams=BeamSearchParams)
    monkeypatch.setitem(sys.modules, "vllm", module)
    return calls


def test_vllm_flags_reach_the_engine(fake_vllm, corpus, tiny_model_dir) -> None:
    argv = ["--backend", "vllm", "--model", str(tiny_model_dir), "--out", "o", "--tensor-parallel-size", "2"]
    args = gen._parse_args([*argv, "--gpu-memory-utilization", "0.5", "--max-model-len", "8192"])
    backend = gen._backend(args, corpus.root, corpus.budget)
    engine = fake_vllm["engine"]
    assert isinstance(backend, gen.VLLMGenerator)
    assert engine["model"] == str(tiny_model_dir) and engine["tensor_parallel_size"] == 2
    assert engine["gpu_memory_utilization"] == 0.5 and engine["max_model_len"] == 8192
    assert engine["mm_processor_kwargs"]["max_pixels"] == corpus.budget.image_max_pixels
    defaults = gen.vllm_engine_kwargs("m", corpus.budget)
    assert "max_model_len" not in defaults and defaults["tensor_parallel_size"] == 1


def test_vllm_uses_each_tasks_decoding_and_beam_search(fake_vllm, corpus, test_records, tiny_model_dir) -> None:
    text = [r for r in test_records if r["modality"] == "text"]
    beam_task, greedy_task = sorted({record_task(r) for r in text})[:2]
    records = [r for r in text if record_task(r) == beam_task][:3] + [
        r for r in text if record_task(r) == greedy_task
    ][:3]
    decodings = {beam_task: Decoding(7, num_beams=5, num_return_sequences=3), greedy_task: Decoding(11)}
    backend = gen.VLLMGenerator(tiny_model_dir, corpus.root, corpus.budget, decodings=decodings)
    predictions = {p.id: p for batch in backend.predict(records) for p in batch}
    assert set(predictions) == {r["id"] for r in records}
    for record in records:
        got = predictions[record["id"]].text
        if record_task(record) == beam_task:
            assert got == ["beam 0", "beam 1", "beam 2"]  # the reply only, ranked, the prompt cut off
        else:
            assert got == "1. joy"
    ((_, params, use_tqdm),) = fake_vllm["generate"]
    assert use_tqdm and all(p.kwargs == {"temperature": 0.0, "max_tokens": 11, "n": 1} for p in params)
    ((_, beam_params),) = fake_vllm["beam_search"]
    assert beam_params.kwargs == {"beam_width": 5, "max_tokens": 7}
    assert backend.decoding_for(beam_task) == decodings[beam_task].as_dict()
