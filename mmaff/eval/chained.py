"""Chained two-step evaluation (arXiv 2305.17422): the model answers the first step, and its own answer, not the
gold, is given in the second step's prompt.

A two-step record (e.g. ``semeval2018/en/V-reg>E-c/<id>``) shows the gold of its `given` subtask in the prompt.
For each one:

1. the first step is the single-task record of the same source row (``semeval2018/en/V-reg/<id>``) when the
   corpus split holds it, else that record synthesized with the builder's template code;
2. its reply is parsed with the first task's template (`Template.parse`);
3. the two-step prompt is re-rendered with the parsed value in place of the gold `given` (the builder's
   `RecordMaker._prompt`, checked to reproduce the corpus prompt from the gold first);
4. the second step is generated. A first step that fails to parse breaks the chain: the second step is not asked
   and its prediction is the empty reply, which scoring counts as a failed parse (never dropped).

Files: ``<out>`` holds one row per two-step record, keyed by its id (so `mmaff.score` scores it like any
prediction of that task), with ``first_step`` (reply, parsed value, parse status); ``<out stem>.first.jsonl``
holds the first-step replies. Both are `PredictionWriter` files with run files: a killed run resumes.

    python -m mmaff.eval.chained --backend hf --model M --corpus data/mmaffin --split test --out chained.jsonl \
        [--score-out DIR]
    python -m mmaff.eval.chained --report oracle/metrics.json chained/metrics.json single/metrics.json \
        [--report-out table.md]

Oracle is an ordinary run's metrics (the two-step tasks with the gold given), single the same or another
ordinary run (the asked subtask alone), chained the metrics written by ``--score-out``. The table is like for like:
oracle and single are re-scored from their runs' predictions files on the chained items (single: the asked
subtask's records of the same source rows), each figure naming how many of the items its run lacks.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmaff.data.answers import Parsed, render_answer
from mmaff.data.records import RecordMaker
from mmaff.data.registry import DatasetSpec, Subtask, load_registry
from mmaff.data.schema import Example
from mmaff.data.templates import load_template
from mmaff.eval.generate import Backend, Prediction, prediction_row
from mmaff.eval.items import top_reply
from mmaff.eval.predictions import PredictionWriter, read_predictions, write_run

BROKEN_CHAIN_REPLY = ""  # what a broken chain's second step "answers": scoring parses it as failed
_SOURCE_KEYS = frozenset({"file", "line", "source_id", "derived"})  # the rest of `source` is facet + meta


class ChainError(ValueError):
    """A two-step record whose chain cannot be built as the corpus builder would (names the record)."""


@dataclass
class Chain:
    """One two-step record and the first-step record whose answer it is given."""

    record: dict[str, Any]
    first: dict[str, Any]
    spec: DatasetSpec
    given: Subtask  # the first step's subtask

    @property
    def id(self) -> str:
        return self.record["id"]


# ------------------------------------------------------------------------------------------ building chains


def style_of(record: Mapping[str, Any]) -> str:
    return record["template"]["name"].split("/", 1)[0]


def first_step_id(record: Mapping[str, Any], given: str) -> str:
    """The id of the single-task record of the same source row: the subtask segment of the id swapped."""
    prefix = f"{record['dataset']}/{record['subset']}/"
    rest = record["id"][len(prefix) :]
    subtask, _, tail = rest.partition("/")
    if not record["id"].startswith(prefix) or subtask != record["subtask"]:
        raise ChainError(f"{record['id']}: not a <dataset>/<subset>/<subtask>/... id")
    return f"{prefix}{given}/{tail}"


def _example(record: Mapping[str, Any], subtask: str, given: dict[str, Any] | None) -> Example:
    """The builder's view of a record (what its prompt is rendered from), for `subtask` with `given`."""
    source = record.get("source") or {}
    return Example(
        source_id=source.get("source_id", record["id"]),
        subtask=subtask,
        language=record["language"],
        gold=None,
        file="",
        line=0,
        text=record["text"],
        facet={k: v for k, v in source.items() if k not in _SOURCE_KEYS},
        given=given,
    )


class PromptRewriter:
    """Re-renders record prompts with the builder's `RecordMaker`, one maker per dataset and template style."""

    def __init__(self, registry: Mapping[str, DatasetSpec]) -> None:
        self.registry = registry
        self._makers: dict[tuple[str, str], RecordMaker] = {}

    def maker(self, dataset: str, style: str) -> RecordMaker:
        key = (dataset, style)
        if key not in self._makers:
            self._makers[key] = RecordMaker(self.registry[dataset], style)
        return self._makers[key]

    def prompt(self, record: Mapping[str, Any], subtask: str, given: dict[str, Any] | None, style: str) -> str:
        maker = self.maker(record["dataset"], style)
        return maker._prompt(_example(record, subtask, given), maker.parts[subtask])

    def with_given(self, record: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """The two-step record with `given` shown in its prompt instead of the gold."""
        style = style_of(record)
        if self.prompt(record, record["subtask"], record["given"], style) != user_text(record):
            raise ChainError(f"{record['id']}: the builder's template code does not reproduce its prompt")
        rewritten = copy.deepcopy(record)
        rewritten["given"] = given
        set_user_text(rewritten, self.prompt(record, record["subtask"], given, style))
        return rewritten

    def first_step(self, record: dict[str, Any], given: Subtask, first_id: str) -> dict[str, Any]:
        """The single-task record of `given` for the row of `record`, synthesized (it is not in the corpus)."""
        maker = self.maker(record["dataset"], style_of(record))
        parts = maker.parts[given.name]
        synthesized = copy.deepcopy(record)
        synthesized.update(
            id=first_id,
            subtask=given.name,
            task=given.task,
            target_type=given.target_type,
            gold=record["given"][given.task],
            given=None,
            label_space=parts.space,
            template=parts.template_ref,
        )
        system = [copy.deepcopy(m) for m in parts.system]
        synthesized["messages"] = [*system, *(m for m in synthesized["messages"] if m["role"] != "system")]
        set_user_text(synthesized, self.prompt(record, given.name, None, style_of(record)))
        answer = render_answer(synthesized["gold"], parts.answer_spec, parts.space)
        synthesized["messages"][-1] = {"role": "assistant", "content": [{"type": "text", "text": answer}]}
        return synthesized


def _user_text_part(record: Mapping[str, Any]) -> dict[str, Any]:
    user = [m for m in record["messages"] if m["role"] == "user"][-1]
    return [part for part in user["content"] if part["type"] == "text"][-1]


def user_text(record: Mapping[str, Any]) -> str:
    return _user_text_part(record)["text"]


def set_user_text(record: dict[str, Any], text: str) -> None:
    _user_text_part(record)["text"] = text


def build_chains(
    records: Sequence[dict[str, Any]],
    registry: Mapping[str, DatasetSpec] | None = None,
    rewriter: PromptRewriter | None = None,
) -> list[Chain]:
    """The chains of the two-step records among `records`, in record order; each first step is the corpus record
    of `records` with its id, or synthesized."""
    registry = registry if registry is not None else load_registry()
    rewriter = rewriter or PromptRewriter(registry)
    by_id = {r["id"]: r for r in records}
    chains = []
    for record in records:
        spec = registry[record["dataset"]]
        subtask = spec.subtasks[record["subtask"]]
        if not subtask.given:
            continue
        given = spec.subtasks[subtask.given]
        first_id = first_step_id(record, given.name)
        first = by_id.get(first_id) or rewriter.first_step(record, given, first_id)
        chains.append(Chain(record, first, spec, given))
    return chains


# ------------------------------------------------------------------------------------------------ running


def parse_first_step(chain: Chain, reply: Any) -> Parsed:
    """The first step's reply parsed with the template that wrote the first step's answers."""
    template = load_template(chain.first["template"]["name"].split("/", 1)[1], style_of(chain.first))
    return template.parse(top_reply(reply).strip(), chain.given, chain.spec.subtasks)


def first_path(out: str | Path) -> Path:
    """``chained.jsonl`` -> ``chained.first.jsonl``: the first-step replies of a chained run."""
    out = Path(out)
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.first.jsonl")


def _first_step_fields(reply: Any, parsed: Parsed) -> dict[str, Any]:
    return {"first_step": {"reply": reply, "parsed": parsed.value, "status": parsed.status}}


def run_first_steps(chains: Sequence[Chain], backend: Backend, path: Path) -> dict[str, Any]:
    """Generate the first steps not yet in `path` (shared first steps once); returns first-step id -> reply."""
    firsts = list({c.first["id"]: c.first for c in chains}.values())
    with PredictionWriter(path) as writer:
        todo = [r for r in firsts if r["id"] not in writer.done]
        for batch in backend.predict(todo):
            writer.write(prediction_row(p, backend) for p in batch)
    return {item_id: row["prediction"] for item_id, row in read_predictions(path).rows.items()}


@dataclass
class ChainedReport:
    chains: int
    skipped: int  # already in the output file
    asked: int  # second steps generated
    broken: int  # first steps that failed to parse (second step not asked)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run_chained(
    chains: Sequence[Chain], backend: Backend, out: str | Path, rewriter: PromptRewriter | None = None
) -> ChainedReport:
    """Both steps of every chain not yet in `out`, written as they finish (resumable)."""
    rewriter = rewriter or PromptRewriter(load_registry())
    replies = run_first_steps(chains, backend, first_path(out))
    with PredictionWriter(out) as writer:
        todo = [c for c in chains if c.id not in writer.done]
        second, fields, broken = [], {}, []
        for chain in todo:
            reply = replies[chain.first["id"]]
            parsed = parse_first_step(chain, reply)
            fields[chain.id] = _first_step_fields(reply, parsed)
            if parsed.status == "failed":
                broken.append(chain)
            else:
                second.append(rewriter.with_given(chain.record, {chain.given.task: parsed.value}))
        writer.write(_broken_row(c, backend, fields[c.id]) for c in broken)
        for batch in backend.predict(second):
            writer.write({**prediction_row(p, backend), **fields[p.id]} for p in batch)
    return ChainedReport(len(chains), len(chains) - len(todo), len(second), len(broken))


def _broken_row(chain: Chain, backend: Backend, fields: dict[str, Any]) -> dict[str, Any]:
    empty = Prediction(chain.id, BROKEN_CHAIN_REPLY, 0.0, {"finish": "broken_chain"})
    return {**prediction_row(empty, backend), **fields}


def first_step_counts(out: str | Path, chains: Sequence[Chain]) -> dict[str, dict[str, int]]:
    """Per two-step task: chains in `out` and their first steps' parse statuses."""
    rows = read_predictions(out).rows
    counts: dict[str, Counter] = defaultdict(Counter)
    for chain in chains:
        row = rows.get(chain.id)
        if row is not None:
            task = f"{chain.record['dataset']}/{chain.record['subtask']}"
            counts[task]["chains"] += 1
            counts[task][row["first_step"]["status"]] += 1
    return {
        task: {"chains": c["chains"], **{s: c[s] for s in ("strict", "lenient", "failed")}}
        for task, c in counts.items()
    }


def score_chained(
    out: str | Path, corpus_root: str | Path, chains: Sequence[Chain], score_out: str | Path, *, allow_partial: bool
) -> Path:
    """Score `out` on its two-step tasks (mmaff.eval.score) into `score_out`/metrics.json, with ``chained``: the
    first-step parse statuses per task."""
    from mmaff.eval.report import write_reports
    from mmaff.eval.score import score
    from mmaff.eval.tasks import load_tasks

    names = {f"{c.record['dataset']}/{c.record['subtask']}" for c in chains}
    tasks = {name: task for name, task in load_tasks().items() if name in names}
    report, scored = score(out, corpus_root, tasks, allow_partial=allow_partial, modes=("corrected",))
    report["chained"] = first_step_counts(out, chains)
    write_reports(Path(score_out), report, scored, tasks, plots=False)
    return Path(score_out) / "metrics.json"


# -------------------------------------------------------------------------------------------- the table


def with_subtask(item_id: str, subtask: str) -> str:
    """``<dataset>/<subset>/<subtask>/<rest>`` with another subtask: the record of the same source row."""
    dataset, subset, _, rest = item_id.split("/", 3)
    return f"{dataset}/{subset}/{subtask}/{rest}"


def task_of(item_id: str) -> str:
    dataset, _, subtask, _ = item_id.split("/", 3)
    return f"{dataset}/{subtask}"


@dataclass
class Compared:
    """A scored run (its metrics.json content) and, per task, how many of the chained items it holds."""

    metrics: Mapping[str, Any]
    held: Mapping[str, int]


def rescored_on(metrics: Mapping[str, Any], source: Path, ids: Mapping[str, set[str]]) -> Compared:
    """The run of `metrics` (read from `source`) re-scored, corrected mode, on `ids` (task -> item ids) only, from
    its predictions file and corpus; so that every column of the table is over the same source rows."""
    from mmaff.eval.score import score
    from mmaff.eval.tasks import load_tasks

    predictions, corpus = Path(metrics["predictions"]), Path(metrics["corpus"]["corpus_path"])
    for what, path in (("predictions file", predictions), ("corpus", corpus)):
        if not path.exists():
            raise ChainError(f"{source}: its {what} {path} is not there (the report re-scores the chained items)")
    rows = read_predictions(predictions, strict=True).rows
    held = {task: sorted(i for i in wanted if i in rows) for task, wanted in ids.items()}
    tasks = {name: task for name, task in load_tasks().items() if held.get(name)}
    report: dict[str, Any] = {"tasks": {}, "parse_status": {}}
    if tasks:
        with tempfile.TemporaryDirectory() as tmp:
            subset = Path(tmp) / "predictions.jsonl"
            with PredictionWriter(subset) as writer:
                writer.write(rows[i] for task in tasks for i in held[task])
            report, _ = score(subset, corpus, tasks, allow_partial=True, modes=("corrected",))
    return Compared(report, {task: len(found) for task, found in held.items()})


def _failed(metrics: Mapping[str, Any], task: str) -> tuple[int, int]:
    """(failed, replies) of a task's parse statuses, summed over languages."""
    failed = total = 0
    for cell, counts in metrics.get("parse_status", {}).items():
        if cell.split("|", 1)[0] == task:
            failed += counts.get("failed", 0)
            total += sum(v for k, v in counts.items() if k in ("strict", "lenient", "failed"))
    return failed, total


def _value(metrics: Mapping[str, Any], task: str) -> float | None:
    return (metrics.get("tasks", {}).get(task) or {}).get("primary_value")


def _shown(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def comparison_rows(
    oracle: Compared,
    chained: Mapping[str, Any],
    single: Compared,
    registry: Mapping[str, DatasetSpec] | None = None,
) -> list[dict[str, Any]]:
    """Per two-step task of the chained metrics, over its chained items: the primary metric with the gold given
    (oracle), with the model's own first step (chained) and of the asked subtask alone on the same source rows
    (single), with how many of the items each run holds, plus parse failures."""
    registry = registry if registry is not None else load_registry()
    rows = []
    for task in sorted(chained.get("tasks", {})):
        dataset, subtask = task.split("/", 1)
        asked = f"{dataset}/{registry[dataset].subtasks[subtask].asks}"
        first = chained.get("chained", {}).get(task, {})
        second_failed, second_total = _failed(chained, task)
        rows.append(
            {
                "task": task,
                "items": first.get("chains", second_total),
                "metric": chained["tasks"][task].get("primary", ""),
                "oracle": _value(oracle.metrics, task),
                "oracle_items": oracle.held.get(task, 0),
                "chained": _value(chained, task),
                "single": _value(single.metrics, asked),
                "single_items": single.held.get(asked, 0),
                "single_task": asked,
                "first_step_failed": f"{first.get('failed', 0)}/{first.get('chains', 0)}",
                "second_step_failed": f"{second_failed}/{second_total}",
            }
        )
    return rows


def _over(value: float | None, held: int, items: int) -> str:
    """A figure, naming how many of the items it covers when a run lacks some."""
    return _shown(value) + ("" if held == items else f" ({held} of {items} items)")


def comparison_table(rows: Sequence[Mapping[str, Any]]) -> str:
    header = (
        "| task | oracle (gold given) | chained | single | items | first-step parse failures | "
        "second-step parse failures |"
    )
    lines = [header, "|---|---|---|---|---:|---|---|"]
    for row in rows:
        oracle = _over(row["oracle"], row["oracle_items"], row["items"])
        single = _over(row["single"], row["single_items"], row["items"])
        lines.append(
            f"| {row['task']} | {oracle} | {_shown(row['chained'])} | {single} ({row['single_task']}) | "
            f"{row['items']} | {row['first_step_failed']} | {row['second_step_failed']} |"
        )
    note = (
        "Primary metric of each task over the chained items (single: the asked subtask's records of the same "
        "source rows); second-step failures include the broken chains (first step unparsed)."
    )
    return "\n".join([*lines, "", note]) + "\n"


def write_comparison(oracle: Path, chained: Path, single: Path, out: Path | None = None) -> str:
    """The table of three metrics.json files (printed, and written to `out` when given). Oracle and single are
    re-scored from their predictions on the chained run's items (single: the asked subtask of the same rows)."""
    oracle_metrics, chained_metrics, single_metrics = (
        json.loads(Path(p).read_text(encoding="utf-8")) for p in (oracle, chained, single)
    )
    registry = load_registry()
    two_step: dict[str, set[str]] = defaultdict(set)
    for item_id in read_predictions(chained_metrics["predictions"], strict=True).ids:
        two_step[task_of(item_id)].add(item_id)
    asked: dict[str, set[str]] = defaultdict(set)
    for task, ids in two_step.items():
        dataset, subtask = task.split("/", 1)
        name = registry[dataset].subtasks[subtask].asks
        asked[f"{dataset}/{name}"] |= {with_subtask(i, name) for i in ids}
    rows = comparison_rows(
        rescored_on(oracle_metrics, oracle, two_step),
        chained_metrics,
        rescored_on(single_metrics, single, asked),
        registry,
    )
    table = comparison_table(rows)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table, encoding="utf-8")
    return table


# ------------------------------------------------------------------------------------------- command line


def _own_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--report", nargs=3, type=Path, metavar=("ORACLE", "CHAINED", "SINGLE"))
    parser.add_argument("--report-out", type=Path)
    parser.add_argument("--score-out", type=Path, help="score the chained predictions into this folder")
    return parser.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> ChainedReport | str:

    from mmaff.eval import generate
    from mmaff.eval.cli_common import open_selection

    argv = list(sys.argv[1:] if argv is None else argv)
    own, rest = _own_args(argv)
    if own.report:
        table = write_comparison(*own.report, own.report_out)
        print(table, end="")
        return table
    args = generate._parse_args(rest)
    corpus, records = open_selection(args, model_is_path=args.backend != "openai")  # a server's model: a name
    registry = load_registry()
    rewriter = PromptRewriter(registry)
    chains = build_chains(records, registry, rewriter)
    backend = generate._backend(args, corpus.root, corpus.budget)
    for path, steps in (
        (first_path(args.out), [c.first for c in chains]),
        (Path(args.out), [c.record for c in chains]),
    ):
        run = generate.run_description(args, backend, corpus.root, argv, "mmaff.eval.chained", records=steps)
        write_run(path, run)
    report = run_chained(chains, backend, args.out, rewriter)
    print(json.dumps(report.as_dict()))
    if own.score_out:
        written = score_chained(args.out, corpus.root, chains, own.score_out, allow_partial=args.limit is not None)
        print(f"wrote {written}")
    return report


if __name__ == "__main__":
    from mmaff.eval.cli_common import run_cli
    from mmaff.eval.generate import APIError

    run_cli(main, extra=(APIError, ChainError))
