"""Chained two-step evaluation (mmaff.eval.chained): first step generated, parsed, given to the second step."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from mmaff.data.registry import load_registry
from mmaff.eval.chained import (
    BROKEN_CHAIN_REPLY,
    ChainError,
    PromptRewriter,
    build_chains,
    first_path,
    main,
    run_chained,
    score_chained,
    user_text,
    write_comparison,
)
from mmaff.eval.generate import Prediction
from mmaff.eval.predictions import PredictionWriter, read_predictions
from mmaff.eval.tasks import load_tasks


class FakeBackend:
    """Answers each record with `answer(record)`; remembers the ids it was asked."""

    name = "fake"
    model_name = "fake-model"
    decoding: dict[str, Any] = {}

    def __init__(self, answer: Callable[[dict[str, Any]], str]) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def predict(self, records: Sequence[dict[str, Any]]) -> Iterator[list[Prediction]]:
        for record in records:
            self.asked.append(record["id"])
            yield [Prediction(record["id"], self.answer(record), 0.0)]


def gold_answer(record: dict[str, Any]) -> str:
    return record["messages"][-1]["content"][0]["text"]


def is_first_step(record: dict[str, Any]) -> bool:
    return ">" not in record["subtask"]


@pytest.fixture(scope="module")
def chains(test_records):
    return build_chains(test_records)


@pytest.fixture(scope="module")
def corpus_by_id(test_records):
    return {r["id"]: r for r in test_records}


def two_step_tasks(chains) -> dict:
    names = {f"{c.record['dataset']}/{c.record['subtask']}" for c in chains}
    return {name: task for name, task in load_tasks().items() if name in names}


def test_chains_pair_each_two_step_record_with_its_corpus_first_step(chains, corpus_by_id):
    two_step = [r for r in corpus_by_id.values() if r.get("given")]
    assert len(two_step) >= 2 and [c.id for c in chains] == [r["id"] for r in two_step]
    for chain in chains:
        assert chain.first is corpus_by_id[chain.first["id"]]
        assert chain.first["subtask"] == chain.given.name == chain.record["subtask"].split(">")[0]
        assert chain.first["source"]["source_id"] == chain.record["source"]["source_id"]


def test_synthesized_first_step_equals_the_corpus_record(chains):
    rewriter = PromptRewriter(load_registry())
    for chain in chains:
        made = rewriter.first_step(chain.record, chain.given, chain.first["id"])
        for key in ("id", "subtask", "task", "gold", "messages", "label_space", "template", "target_type"):
            assert made[key] == chain.first[key], key
    # a split without the single-task records: the chains are synthesized, with the same prompts
    alone = build_chains([c.record for c in chains])
    assert [user_text(c.first) for c in alone] == [user_text(c.first) for c in chains]


def test_given_is_rerendered_with_the_parsed_value(chains):
    rewriter = PromptRewriter(load_registry())
    chain = next(c for c in chains if c.given.task == "SI")
    rewritten = rewriter.with_given(chain.record, {"SI": 0.125})
    assert "0.125" in user_text(rewritten) and str(chain.record["given"]["SI"]) not in user_text(rewritten)
    assert rewritten["given"] == {"SI": 0.125} and chain.record["given"] != rewritten["given"]
    assert user_text(rewritten).replace("0.125", str(chain.record["given"]["SI"])) == user_text(chain.record)


def test_unparsable_first_step_breaks_the_chain_and_scores_as_failed(chains, sample_corpus, tmp_path):
    backend = FakeBackend(lambda r: "no idea" if is_first_step(r) else gold_answer(r))
    out = tmp_path / "chained.jsonl"
    report = run_chained(chains, backend, out)
    assert report.broken == report.chains == len(chains) and report.asked == 0
    rows = read_predictions(out, strict=True).rows
    assert set(rows) == {c.id for c in chains}  # never dropped
    assert all(r["prediction"] == BROKEN_CHAIN_REPLY and r["first_step"]["status"] == "failed" for r in rows.values())
    assert all(is_first_step({"subtask": i.split("/")[2]}) for i in backend.asked)  # no second step asked
    metrics = json.loads(
        score_chained(out, sample_corpus, chains, tmp_path / "scored", allow_partial=False).read_text()
    )
    for name in two_step_tasks(chains):
        failed = sum(v["failed"] for k, v in metrics["parse_status"].items() if k.startswith(name + "|"))
        assert failed == sum(1 for c in chains if c.id.startswith(name.replace("/", "/en/", 1)))
        assert metrics["chained"][name]["failed"] == metrics["chained"][name]["chains"] > 0


def _oracle_backend(corpus_by_id: dict[str, dict]) -> Callable[[dict[str, Any]], str]:
    """First steps: V-reg right, E-c wrong ("3. anger"); second steps right only when the given is the gold."""

    def answer(record: dict[str, Any]) -> str:
        if is_first_step(record):
            return gold_answer(record) if record["subtask"] == "V-reg" else "3. anger"
        gold_given = corpus_by_id[record["id"]]["given"]
        return (
            gold_answer(record)
            if record["given"] == gold_given
            else "0.0"
            if record["target_type"] == "real"
            else "2. sadness"
        )

    return answer


def test_oracle_is_at_least_chained(chains, corpus_by_id, sample_corpus, tmp_path):
    answer = _oracle_backend(corpus_by_id)
    chained_out = tmp_path / "chained.jsonl"
    run_chained(chains, FakeBackend(answer), chained_out)
    oracle_out = tmp_path / "oracle.jsonl"
    with PredictionWriter(oracle_out) as writer:
        writer.write({"id": c.id, "prediction": answer(c.record)} for c in chains)
    from mmaff.eval.score import score

    tasks = two_step_tasks(chains)
    oracle, _ = score(oracle_out, sample_corpus, tasks, modes=("corrected",))
    metrics_path = score_chained(chained_out, sample_corpus, chains, tmp_path / "chained", allow_partial=False)
    chained = json.loads(metrics_path.read_text())
    rows = read_predictions(chained_out).rows
    for name in tasks:
        assert oracle["tasks"][name]["primary_value"] >= chained["tasks"][name]["primary_value"]
    # E-c first steps were wrong: E-c>V-reg is strictly worse chained; V-reg first steps were right: equal
    assert (
        oracle["tasks"]["semeval2018/E-c>V-reg"]["primary_value"]
        > chained["tasks"]["semeval2018/E-c>V-reg"]["primary_value"]
    )
    assert (
        oracle["tasks"]["semeval2018/V-reg>E-c"]["primary_value"]
        == chained["tasks"]["semeval2018/V-reg>E-c"]["primary_value"]
    )
    ec_chain = next(r for i, r in rows.items() if "E-c>V-reg" in i)
    assert ec_chain["first_step"] == {"reply": "3. anger", "parsed": ["anger"], "status": "strict"}

    (tmp_path / "oracle").mkdir()
    (tmp_path / "oracle" / "metrics.json").write_text(json.dumps(oracle))
    table = write_comparison(
        tmp_path / "oracle/metrics.json", metrics_path, tmp_path / "oracle/metrics.json", tmp_path / "t.md"
    )
    assert "| semeval2018/E-c>V-reg |" in table and "(semeval2018/V-reg)" in table
    assert (tmp_path / "t.md").read_text() == table


def test_a_killed_run_resumes_without_asking_again(chains, corpus_by_id, tmp_path):
    out = tmp_path / "chained.jsonl"
    first = FakeBackend(_oracle_backend(corpus_by_id))
    run_chained(chains, first, out)
    lines = out.read_bytes().splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:-1]) + lines[-1][:10])  # killed mid-write of the last row
    again = FakeBackend(_oracle_backend(corpus_by_id))
    report = run_chained(chains, again, out)
    assert (
        report.skipped == len(chains) - 1
        and len(again.asked) == 1
        and not is_first_step({"subtask": again.asked[0].split("/")[2]})
    )
    assert read_predictions(out, strict=True).ids == {c.id for c in chains}
    assert len(read_predictions(first_path(out)).ids) == len({c.first["id"] for c in chains})


def test_chained_run_on_the_tiny_model(tiny_model_dir, sample_corpus, chains, tmp_path):
    out = tmp_path / "chained" / "predictions.jsonl"
    argv = ["--backend", "hf", "--model", str(tiny_model_dir), "--corpus", str(sample_corpus), "--split", "test"]
    argv += [
        "--out",
        str(out),
        "--datasets",
        "semeval2018",
        "--max-new-tokens",
        "8",
        "--score-out",
        str(tmp_path / "s"),
    ]
    report = main(argv)
    assert report.chains == len(chains) and report.asked + report.broken == len(chains)
    rows = read_predictions(out, strict=True).rows
    assert set(rows) == {c.id for c in chains}
    for row in rows.values():
        assert set(row["first_step"]) == {"reply", "parsed", "status"} and isinstance(row["first_step"]["reply"], str)
        assert row["model"] == str(tiny_model_dir)
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["coverage"]["complete"]
    assert (out.with_name("predictions.run.json")).exists() and first_path(out).with_name(
        "predictions.first.run.json"
    ).exists()


class GoldFirstSteps:
    """A real backend for the second steps, the gold answer for first steps (the tiny model's replies are empty)."""

    def __init__(self, backend: Any) -> None:
        self.backend, self.name, self.model_name, self.decoding = backend, backend.name, backend.model_name, {}
        self.second_prompts: list[str] = []

    def predict(self, records: Sequence[dict[str, Any]]) -> Iterator[list[Prediction]]:
        firsts = [r for r in records if is_first_step(r)]
        if firsts:
            yield [Prediction(r["id"], gold_answer(r), 0.0) for r in firsts]
        seconds = [r for r in records if not is_first_step(r)]
        self.second_prompts += [user_text(r) for r in seconds]
        if seconds:
            yield from self.backend.predict(seconds)


def test_second_steps_run_on_the_tiny_model_with_the_parsed_given(tiny_model_dir, corpus, chains, tmp_path):
    from mmaff.eval.generate import HFGenerator, task_decodings

    decodings = task_decodings(max_new_tokens=4)
    hf = HFGenerator(tiny_model_dir, corpus.root, corpus.budget, batch_size=2, device="cpu", decodings=decodings)
    backend = GoldFirstSteps(hf)
    out = tmp_path / "chained.jsonl"
    report = run_chained(chains, backend, out)
    assert report.asked == len(chains) and report.broken == 0
    assert sorted(backend.second_prompts) == sorted(user_text(c.record) for c in chains)  # gold parsed = gold given
    rows = read_predictions(out, strict=True).rows
    for chain in chains:
        row = rows[chain.id]
        assert row["backend"] == "hf" and "prompt_tokens" in row and isinstance(row["prediction"], str)
        assert row["first_step"]["status"] == "strict"
        assert row["first_step"]["parsed"] == chain.record["given"][chain.given.task]


def test_report_puts_every_column_over_the_chained_items(chains, test_records, sample_corpus, tmp_path):
    """An ordinary run right only on the source rows of one chain per task, a chained run of those chains: the
    report's oracle and single figures are over those rows (single 1.0), not over whole tasks (lower)."""
    from mmaff.eval.score import score

    chosen = [next(c for c in chains if c.record["subtask"] == name) for name in ("V-reg>E-c", "E-c>V-reg")]
    rows = {c.record["source"]["source_id"] for c in chosen}
    semeval = [r for r in test_records if r["dataset"] == "semeval2018"]
    ordinary = tmp_path / "run" / "predictions.jsonl"
    with PredictionWriter(ordinary) as writer:
        writer.write(
            {"id": r["id"], "prediction": gold_answer(r) if r["source"]["source_id"] in rows else ""} for r in semeval
        )
    tasks = {name: task for name, task in load_tasks().items() if name.startswith("semeval2018/")}
    run, _ = score(ordinary, sample_corpus, tasks, modes=("corrected",))
    (tmp_path / "run" / "metrics.json").write_text(json.dumps(run))
    whole = {name: entry["primary_value"] for name, entry in run["tasks"].items()}

    chained_out = tmp_path / "chained.jsonl"
    run_chained(chosen, FakeBackend(gold_answer), chained_out)
    chained = score_chained(chained_out, sample_corpus, chosen, tmp_path / "chained", allow_partial=True)
    metrics = tmp_path / "run" / "metrics.json"
    table = write_comparison(metrics, chained, metrics)
    same = json.loads(chained.read_text())["tasks"]["semeval2018/V-reg>E-c"]["primary_value"]  # gold in both runs
    assert f"| semeval2018/V-reg>E-c | {same:.4f} | {same:.4f} | 1.0000 (semeval2018/E-c) | 1 | 0/1 | 0/1 |" in table
    assert whole["semeval2018/E-c"] < 1.0  # the whole task: its other rows were answered wrong

    elsewhere = tmp_path / "elsewhere.json"  # a metrics.json whose predictions file is gone
    elsewhere.write_text(json.dumps({**run, "predictions": str(tmp_path / "gone.jsonl")}))
    with pytest.raises(ChainError, match=r"elsewhere.json: its predictions file .*gone.jsonl is not there"):
        write_comparison(elsewhere, chained, metrics)
