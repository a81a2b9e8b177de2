"""The zero-shot protocol of arXiv 2604.12633 as data: a model trained on the synthetic corpus (label set
`synthetic11`) is scored on GoEmotions and SemEval-2018 E-c in that 11-label space, through the label mappings
written out in `data_builders/registry.yaml` (`label_maps:`, each with its source). Gold and predictions are both
mapped: a prediction in the source label set (an English specialist's) goes through the same map; one already in
the target set (the synthetic-trained model's) is kept. Only target labels some source label maps to are scored.
Neutral is the empty set (the registry's comment says why).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mmaff.data.registry import RegistryError, load_registry
from mmaff.paths import REGISTRY_PATH

# the zero-shot tasks: corpus task -> the label map its gold and predictions go through
ZERO_SHOT_TASKS = {"goemotions/EC": "goemotions28_to_synthetic11", "semeval2018/E-c": "semeval_ec11_to_synthetic11"}


@dataclass(frozen=True)
class LabelMap:
    name: str
    source_set: str
    target_set: str
    mapping: dict[str, str | None]  # source label -> target label, None = no counterpart (dropped)
    source: str

    @property
    def scored_labels(self) -> tuple[str, ...]:
        """Target labels in the target set's order that some source label maps to (the scored space)."""
        targets = {t for t in self.mapping.values() if t is not None}
        return tuple(label for label in _label_set(self.target_set) if label in targets)

    def labels(self, labels: Iterable[str]) -> list[str]:
        """A label list in either space as the sorted scored-target list (source labels mapped, target labels
        kept, anything else dropped)."""
        scored = set(self.scored_labels)
        mapped = {self.mapping.get(label, label if label in scored else None) for label in labels}
        return [label for label in self.scored_labels if label in mapped]

    def scores(self, scores: Mapping[str, float]) -> dict[str, float]:
        """Per-label scores in either space, on the scored targets: a target's score is the highest of its source
        labels' (a source-space model), or its own (a target-space model)."""
        mapped: dict[str, float] = {}
        for label, value in scores.items():
            target = self.mapping.get(label, label if label in self.scored_labels else None)
            if target is not None:
                mapped[target] = max(value, mapped.get(target, value))
        return {label: mapped[label] for label in self.scored_labels if label in mapped}


def _label_set(name: str) -> tuple[str, ...]:
    return _raw_registry()["label_sets"][name]["labels"].values()


@functools.cache
def _raw_registry(path: Path = REGISTRY_PATH) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def load_label_maps(path: Path = REGISTRY_PATH) -> dict[str, LabelMap]:
    """The registry's `label_maps:`, checked: every source label mapped exactly, every target in the target set."""
    raw = _raw_registry(path)
    sets = {name: tuple(spec["labels"].values()) for name, spec in raw["label_sets"].items()}
    maps = {}
    for name, spec in raw.get("label_maps", {}).items():
        source_labels, target_labels = sets.get(spec["from"]), sets.get(spec["to"])
        if source_labels is None or target_labels is None:
            raise RegistryError(f"{path}: label_maps.{name}: unknown label set {spec['from']!r} or {spec['to']!r}")
        if sorted(spec["map"]) != sorted(source_labels):
            raise RegistryError(f"{path}: label_maps.{name}: map must list every label of {spec['from']} once")
        if bad := sorted({t for t in spec["map"].values() if t is not None} - set(target_labels)):
            raise RegistryError(f"{path}: label_maps.{name}: {bad} are not labels of {spec['to']}")
        maps[name] = LabelMap(name, spec["from"], spec["to"], dict(spec["map"]), spec["source"].strip())
    return maps


def map_task_rows(
    task: str, gold: list[list[str]], predictions: list[list[str] | None]
) -> tuple[list[list[str]], list[list[str] | None], tuple[str, ...]]:
    """A zero-shot task's gold and parsed predictions in the mapped space, and the labels scored."""
    label_map = load_label_maps()[ZERO_SHOT_TASKS[task]]
    mapped_predictions = [None if p is None else label_map.labels(p) for p in predictions]
    return [label_map.labels(g) for g in gold], mapped_predictions, label_map.scored_labels


def score_mapped(task: str, gold: list[list[str]], predictions: list[list[str] | None], scores=None) -> dict:
    """The corrected multi-label figures (Jaccard, F1) and, given per-label scores, AP-micro / AUC-micro / LRAP of
    a zero-shot task in the mapped space, with the one scorer's metric functions."""
    from mmaff.eval.metrics import multi_label, multilabel_ranking

    mapped_gold, mapped_predictions, labels = map_task_rows(task, gold, predictions)
    result = {"labels": list(labels), **multi_label(mapped_gold, mapped_predictions, list(labels))}
    if scores is not None:
        label_map = load_label_maps()[ZERO_SHOT_TASKS[task]]
        mapped_scores = [None if s is None else label_map.scores(s) for s in scores]
        result["ranking"] = multilabel_ranking(mapped_gold, mapped_scores, list(labels))
    return result


def check_registry_tasks() -> None:
    """Every zero-shot task's label map goes from that task's label set (the registry stays the one source)."""
    registry, maps = load_registry(), load_label_maps()
    for task, map_name in ZERO_SHOT_TASKS.items():
        dataset, subtask = task.split("/")
        label_set = registry[dataset].subtasks[subtask].label_set
        if label_set is None or label_set.name != maps[map_name].source_set:
            raise RegistryError(f"label_maps.{map_name}: maps {maps[map_name].source_set}, {task} uses {label_set}")


# ---------------------------------------------------------------------------------------------------------- CLI
# python -m mmaff.baselines.zero_shot --corpus C --predictions P.jsonl [--label-scores S.jsonl] --out DIR

# (metrics.json key, results.md column): the corrected multi-label figures, then the ranking ones (label scores)
REPORTED = (
    ("micro_f1", "F1-micro"),
    ("macro_f1", "F1-macro"),
    ("jaccard", "Jaccard"),
    ("ranking.ap_micro", "AP-micro"),
    ("ranking.auc_micro", "AUC-micro"),
    ("ranking.lrap", "LRAP"),
)
PREDICTION_SPACES = ("target", "source")


def target_subtask(label_set: str) -> tuple[Any, dict[str, Any]]:
    """The registry subtask trained on `label_set` (synthetic_emotions/EC for synthetic11) and its siblings: its
    template parses the replies of a model trained on it."""
    for spec in load_registry().values():
        for subtask in spec.subtasks.values():
            if subtask.label_set is not None and subtask.label_set.name == label_set:
                return subtask, spec.subtasks
    raise RegistryError(f"no registry subtask is trained on label set {label_set!r}")


def parse_replies(items: dict[str, Any], replies: dict[str, Any], space: str) -> dict[str, Any]:
    """id -> `Parsed` label list. `target`: parsed as the target-set subtask's template writes answers (the
    synthetic-trained model's replies, in the items' template style); `source`: as `mmaff.score` parses them
    (a model answering in the task's own label set)."""
    from mmaff.data.templates import load_template
    from mmaff.eval.items import top_reply
    from mmaff.eval.score import ReplyParser

    if space == "source":
        parser = ReplyParser()
        return {item_id: parser.parse(item, replies[item_id]) for item_id, item in items.items()}
    maps = load_label_maps()
    parsed = {}
    for item_id, item in items.items():
        subtask, subtasks = target_subtask(maps[ZERO_SHOT_TASKS[item.task]].target_set)
        template = load_template(subtask.template, item.template.split("/", 1)[0])
        parsed[item_id] = template.parse(top_reply(replies[item_id]).strip(), subtask, subtasks)
    return parsed


def checked_label_scores(path: str, items: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The label scores of exactly the items (the strict join of `mmaff.score`), each covering every scored label
    once mapped: an id too many or too few, or a label left unscored, is an error naming the file."""
    from mmaff.eval.cli_common import CliError
    from mmaff.eval.likelihood import read_label_scores
    from mmaff.eval.score import ScoringError

    scores = read_label_scores(path)
    foreign, missing = sorted(set(scores) - set(items)), sorted(set(items) - set(scores))
    if foreign or missing:
        raise ScoringError(
            f"--label-scores {path}: {len(missing)} items have no label scores (e.g. {missing[:3]}), "
            f"{len(foreign)} ids are not items of the tasks (e.g. {foreign[:3]}); score the same test records"
        )
    maps = load_label_maps()
    for item_id in sorted(items):
        label_map = maps[ZERO_SHOT_TASKS[items[item_id].task]]
        if unscored := sorted(set(label_map.scored_labels) - set(label_map.scores(scores[item_id]))):
            raise CliError(
                f"--label-scores {path}: id {item_id!r} scores none of {unscored} (nor a {label_map.source_set} "
                f"label mapped to them); give scores over {label_map.target_set} or {label_map.source_set}"
            )
    return scores


def score_task(task: str, rows: list[Any], parsed: dict[str, Any], scores: dict | None) -> dict[str, Any]:
    """`score_mapped` over all rows of a task and per language."""

    def block(group: list[Any]) -> dict[str, Any]:
        gold, predictions = [i.gold for i in group], [parsed[i.id].value for i in group]
        return score_mapped(task, gold, predictions, None if scores is None else [scores[i.id] for i in group])

    languages = sorted({i.language for i in rows})
    per_language = {lang: block([i for i in rows if i.language == lang]) for lang in languages}
    return {"n": len(rows), "label_map": ZERO_SHOT_TASKS[task], "pooled": block(rows), "per_language": per_language}


def score_zero_shot(
    corpus_root: Path, predictions: str, tasks: list[str], label_scores: str | None, space: str
) -> dict[str, Any]:
    """metrics.json's content: the predictions joined on ids to the tasks' test items, parsed, mapped and scored."""
    from collections import Counter

    from mmaff.eval.predictions import corpus_fingerprint, read_run
    from mmaff.eval.score import ScoringError, corpus_items, join, read_replies
    from mmaff.eval.tasks import load_tasks

    eval_tasks = {name: task for name, task in load_tasks().items() if name in tasks}
    replies = read_replies(predictions)
    items = corpus_items(corpus_root, eval_tasks)
    coverage = join(replies, items, allow_partial=True)
    if not coverage.complete:
        raise ScoringError(
            f"--predictions {predictions}: {len(coverage.missing)} test items of {', '.join(tasks)} have no prediction "
            f"(e.g. {coverage.missing[:3]}), {len(coverage.unknown)} ids are not such items (e.g. "
            f"{coverage.unknown[:3]}); predict exactly those records (`mmaff generate --split test --tasks ...`)"
        )
    scores = None if label_scores is None else checked_label_scores(label_scores, items)
    parsed = parse_replies(items, replies, space)
    statuses: dict[str, Counter] = {}
    for item_id, item in sorted(items.items()):
        statuses.setdefault(f"{item.task}|{item.language}", Counter())[parsed[item_id].status] += 1
    results = {}
    for task in tasks:
        rows = sorted((i for i in items.values() if i.task == task), key=lambda i: i.id)
        if rows:
            results[task] = score_task(task, rows, parsed, scores)
    return {
        "predictions": predictions,
        "label_scores": label_scores,
        "prediction_space": space,
        "corpus": corpus_fingerprint(corpus_root),
        "run": read_run(predictions),
        "coverage": coverage.as_dict(),
        "parse_status": {cell: dict(counts) for cell, counts in statuses.items()},
        "tasks": results,
    }


def results_markdown(report: dict[str, Any]) -> str:
    """One table (task x language, pooled first) and, per label map, the mapping and neutral handling."""
    from mmaff.eval.metrics import metric_value

    def cells(result: dict[str, Any]) -> str:
        values = [metric_value(result, key) for key, _ in REPORTED]
        return " | ".join("–" if v is None else f"{v:.4f}" for v in values)

    space = "synthetic11 labels" if report["prediction_space"] == "target" else "each task's own labels"
    lines = [
        "# Zero-shot scores in the mapped label space (arXiv 2604.12633 protocol)",
        "",
        f"Predictions `{report['predictions']}` (parsed as {space}); label scores `{report['label_scores']}`.",
        "",
        f"| task | language | n | {' | '.join(title for _, title in REPORTED)} | invalid |",
        f"|---|---|---|{'---|' * len(REPORTED)}---|",
    ]
    for task, result in report["tasks"].items():
        blocks = [("all", result["pooled"]), *result["per_language"].items()]
        lines += [f"| {task} | {lang} | {r['n']} | {cells(r)} | {r['invalid']} |" for lang, r in blocks]
    lines += ["", "## Label mapping", ""]
    maps = load_label_maps()
    for task, result in report["tasks"].items():
        label_map = maps[result["label_map"]]
        written = ", ".join(f"{s} -> {t or '(dropped)'}" for s, t in label_map.mapping.items())
        lines += [
            f"**{task}**: `{label_map.name}` ({label_map.source_set} -> {label_map.target_set}), scored labels: "
            f"{', '.join(label_map.scored_labels)}. Source: {label_map.source}",
            "",
            f"Map: {written}.",
            "",
        ]
    lines.append(
        "Gold and predictions both go through the map (a prediction already in the target set is kept); target "
        "labels no source label maps to are not scored. Neutral is the empty set: a neutral gold or reply "
        "(`0. neutral`) maps to no label, and empty vs empty scores Jaccard 1; LRAP leaves out rows with no gold "
        "label. Label scores over source labels give each target the highest of its sources' scores."
    )
    return "\n".join(lines) + "\n"


def build_parser() -> Any:
    import argparse

    from mmaff.eval.cli_common import HelpFormatter, add_comma_list

    parser = argparse.ArgumentParser(
        description="Score GoEmotions / SemEval-2018 E-c test records in the synthetic 11-label space (zero-shot).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--corpus", default="data/mmaffin", help="a built corpus holding the tasks' test records")
    parser.add_argument("--predictions", required=True, help="predictions JSONL (`python -m mmaff.generate`)")
    parser.add_argument("--label-scores", help="label scores (JSONL as `python -m mmaff.likelihood` writes)")
    parser.add_argument("--out", required=True, help="folder for metrics.json and results.md")
    add_comma_list(parser, "--tasks", f"tasks to score (default: {','.join(ZERO_SHOT_TASKS)})", ZERO_SHOT_TASKS)
    parser.add_argument(
        "--prediction-space",
        choices=PREDICTION_SPACES,
        default="target",
        help="target: replies name synthetic11 labels (a synthetic-trained model); source: the task's own labels",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    import json

    from mmaff.eval.cli_common import scoring_inputs

    args = build_parser().parse_args(argv)
    corpus_root = scoring_inputs(args.predictions, args.label_scores, args.corpus)
    tasks = args.tasks or list(ZERO_SHOT_TASKS)
    report = score_zero_shot(corpus_root, args.predictions, tasks, args.label_scores, args.prediction_space)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "results.md").write_text(results_markdown(report), encoding="utf-8")
    print(f"wrote {out / 'metrics.json'}, {out / 'results.md'} ({len(report['tasks'])} tasks)")


if __name__ == "__main__":
    from mmaff.eval.cli_common import run_cli
    from mmaff.eval.score import ScoringError

    run_cli(main, extra=(ScoringError, RegistryError))
