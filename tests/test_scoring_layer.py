"""The scoring layer's structure: one predictions reader (tolerant to resume, strict to score), metrics read back
by the names task files declare, no dataset-specific branches in evaluation code, no registry load at import, and
an import graph without cycles inside `mmaff.eval`."""

from __future__ import annotations

import ast
import dataclasses
import graphlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmaff.data.registry import load_registry
from mmaff.eval import metrics, score
from mmaff.eval.predictions import PredictionFileError, PredictionWriter, read_predictions
from mmaff.eval.tasks import load_tasks

EVAL_DIR = Path(score.__file__).parent
TASKS = load_tasks()


def _lines(path: Path, *rows: dict, tail: bytes = b"") -> Path:
    path.write_bytes(b"".join(json.dumps(row).encode() + b"\n" for row in rows) + tail)
    return path


# ------------------------------------------------------------------------------------------ one reader


def test_tolerant_reader_drops_an_unfinished_last_line_the_strict_reader_names_it(tmp_path) -> None:
    path = _lines(tmp_path / "p.jsonl", {"id": "a", "prediction": "x"}, tail=b'{"id": "b", "predic')
    tolerant = read_predictions(path)
    assert list(tolerant.rows) == ["a"] and tolerant.truncated_tail == b'{"id": "b", "predic'
    with pytest.raises(PredictionFileError, match=r"p\.jsonl:2: corrupt line \(not JSON.*unfinished last line"):
        read_predictions(path, strict=True)
    with pytest.raises(PredictionFileError, match=r"p\.jsonl:2: corrupt line"):
        score.read_replies(path)


def test_both_modes_refuse_duplicates_and_bad_middle_lines_naming_the_line(tmp_path) -> None:
    duplicate = _lines(tmp_path / "d.jsonl", {"id": "a", "prediction": "x"}, {"id": "a", "prediction": "y"})
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(b'{"id": "a", "prediction": "x"}\n{oops\n{"id": "c", "prediction": "z"}\n')
    for strict in (False, True):
        with pytest.raises(PredictionFileError, match=r"d\.jsonl:2: duplicate id 'a' \(first on line 1\)"):
            read_predictions(duplicate, strict=strict)
        with pytest.raises(PredictionFileError, match=r"b\.jsonl:2: corrupt line \(not JSON"):
            read_predictions(bad, strict=strict)


def test_a_missing_file_is_empty_to_resume_and_an_error_to_score(tmp_path) -> None:
    assert read_predictions(tmp_path / "none.jsonl").rows == {}
    with pytest.raises(PredictionFileError, match="none.jsonl: no such predictions file"):
        read_predictions(tmp_path / "none.jsonl", strict=True)


def test_the_scorer_reads_through_the_one_reader_in_strict_mode(tmp_path, monkeypatch) -> None:
    calls = []

    def spy(path, *, strict=False):
        calls.append(strict)
        return read_predictions(path, strict=strict)

    monkeypatch.setattr(score, "read_predictions", spy)
    path = tmp_path / "p.jsonl"
    with PredictionWriter(path) as writer:  # what generate writes is what the scorer reads
        writer.write([{"id": "a", "prediction": "1. joy", "model": "m", "finish": "length"}])
    meta = score.PredictionMeta()
    assert score.read_replies(path, meta) == {"a": "1. joy"} and calls == [True]
    assert meta.models == {"m": 1} and meta.truncated == {"a"}
    assert read_predictions(path, strict=True).where("a") == f"{path}:1"


# ------------------------------------------------------------------------------------- metric registry


def test_every_declared_metric_is_registered_for_its_target_type() -> None:
    for name, task in TASKS.items():
        if task.target_type == "joint":  # scored part by part, each part by its own type
            continue
        declared = metrics.METRICS[task.target_type].metrics
        assert set(task.metrics) <= set(declared) and task.primary in declared, name
    assert all(metric in metrics.METRICS[kind].metrics for kind, metric in metrics.CHANCE_METRIC.items())


def test_the_declared_name_is_the_result_key(sample_corpus, tmp_path) -> None:
    """Scored with gold answers (MASIVE with 5 beams), each task's pooled result holds every metric its file
    declares under that very name, and `metric_value` reads it back as is."""
    rows = []
    for path in sorted((sample_corpus / "test").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            answer = record["messages"][-1]["content"][0]["text"]
            rows.append(
                {"id": record["id"], "prediction": [answer] * 5 if record["target_type"] == "open" else answer}
            )
    report, _ = score.score(_lines(tmp_path / "p.jsonl", *rows), sample_corpus, TASKS, modes=("corrected",))
    for name, entry in report["tasks"].items():
        pooled, task = entry["corrected"]["pooled"], TASKS[name]
        if task.target_type == "joint":  # declares `per_part`: the result is keyed by part
            assert set(pooled) == set(entry["against_chance"]["parts"]), name
            continue
        for metric in task.metrics:
            assert metric in pooled, (name, metric)
            value = pooled[metric]
            assert metrics.metric_value(pooled, metric) == (value if isinstance(value, float | int) else None)
        assert entry["primary_value"] == pooled[task.primary], name
    masive = report["tasks"]["masive/ASI"]["corrected"]["pooled"]
    assert [masive[f"acc@{k}_normalised"] for k in (1, 3, 5)] == [1.0, 1.0, 1.0]


def test_each_target_type_has_one_registered_scoring_function() -> None:
    assert set(metrics.METRICS) == {"single", "multi", "real", "ordinal", "vad", "open"}
    assert metrics.METRICS["multi"].function is metrics.multi_label
    with pytest.raises(ValueError, match="already has multi_label"):
        metrics.declares("multi", "jaccard")(lambda: {})


# ------------------------------------------------------------------------ no dataset-specific branches


def _registry_names() -> set[str]:
    registry = load_registry()
    return set(registry) | {subtask for spec in registry.values() for subtask in spec.subtasks}


def _compared_strings(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants that code compares against (`x == "a"`, `x in ("a", "b")`)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        for operand in [node.left, *node.comparators]:
            elements = operand.elts if isinstance(operand, ast.Tuple | ast.List | ast.Set) else [operand]
            found += [
                (node.lineno, e.value) for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)
            ]
    return found


@pytest.mark.parametrize("path", sorted(EVAL_DIR.glob("*.py")), ids=lambda p: p.name)
def test_evaluation_code_never_branches_on_a_dataset_or_subtask_name(path) -> None:
    names = _registry_names()
    branches = [(line, value) for line, value in _compared_strings(ast.parse(path.read_text())) if value in names]
    assert not branches, f"{path.name}: compares with dataset/subtask names at {branches}"


def test_paper_compat_gets_emotions_from_the_task_grouping(sample_corpus) -> None:
    """EI is scored per emotion because its task groups by emotion; without that grouping the notebook's
    per-emotion scoring has nothing to group by."""
    task = TASKS["semeval2018/EI-reg"]
    items = sorted((i for i in score.corpus_items(sample_corpus, {task.name: task}).values()), key=lambda i: i.id)
    replies = {i.id: i.answer for i in items}
    block = score.score_paper(task, items, replies)
    assert {"pearson_anger", "pearson_mean"} <= set(block["metrics"])
    with pytest.raises(ValueError, match="pass emotions="):
        score.score_paper(dataclasses.replace(task, group_by=("language",)), items, replies)


# ------------------------------------------------------------------------------------------ dead code


def test_dead_code_is_gone() -> None:
    from mmaff.data import media, schema

    assert not hasattr(metrics, "semeval_ec_official") and not hasattr(metrics, "SEMEVAL_EC_LABELS")
    assert not hasattr(schema, "TASKS") and not hasattr(media.VideoInfo, "duration")
    assert score.read_predictions is read_predictions  # the one reader, not a copy of it
    assert score.Item.__module__ == "mmaff.eval.items"


# -------------------------------------------------------------------------------------------- imports

_NO_REGISTRY_AT_IMPORT = """
import mmaff.data.registry as registry

def refuse(*args, **kwargs):
    raise AssertionError("the registry was loaded at import time")

registry.load_registry = refuse
import mmaff.eval.metrics, mmaff.eval.paper_compat, mmaff.eval.score, mmaff.eval.report, mmaff.eval.plots
"""


def test_no_registry_is_loaded_at_import() -> None:
    done = subprocess.run([sys.executable, "-c", _NO_REGISTRY_AT_IMPORT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    from mmaff.eval import paper_compat

    assert paper_compat.SEMEVAL_EC_MAP["neutral"] == 0 and len(paper_compat.SEMEVAL_EC_MAP) == 12  # built on use
    assert paper_compat.PAPER_COMPAT_TASKS[("emotic", "EC")].label_map is paper_compat.EMOTIC_MAP


def _eval_imports(path: Path) -> set[str]:
    """`mmaff.eval` modules imported anywhere in `path`: top level, in functions and under TYPE_CHECKING."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "mmaff.eval":
                found |= {f"mmaff.eval.{alias.name}" for alias in node.names}
            elif node.module.startswith("mmaff.eval."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("mmaff.eval.")}
    return found


def test_the_eval_import_graph_has_no_cycle() -> None:
    graph = {f"mmaff.eval.{p.stem}": _eval_imports(p) for p in EVAL_DIR.glob("*.py") if p.stem != "__init__"}
    graphlib.TopologicalSorter(graph).static_order()  # raises CycleError naming the cycle
    assert "mmaff.eval.score" not in graph["mmaff.eval.report"] and "mmaff.eval.items" in graph["mmaff.eval.report"]
