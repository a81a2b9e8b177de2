"""Scoring predictions against a built corpus, joined on record ids only (never on row positions).

Reads a predictions JSONL (`{"id", "prediction"}` lines, as `mmaff.eval.predictions` writes them), joins it to the
corpus items of the selected tasks, reports coverage per dataset/subtask/language, parses every reply with the
template family that wrote the training answers (strict / lenient / failed), and scores each task in the
`corrected` mode (mmaff.eval.metrics) and, where MMAFFBen scores it, the `paper_compat` mode (mmaff.eval.paper_compat).

    python -m mmaff.eval.score --predictions P.jsonl --corpus data/mmaffin --out outputs/scores [--group all]
"""

from __future__ import annotations

import functools
import gc
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mmaff.data.answers import Parsed
from mmaff.data.registry import DatasetSpec, load_registry
from mmaff.data.templates import load_template
from mmaff.eval.items import Item, Reply, top_reply
from mmaff.eval.predictions import (
    PredictionFile,
    PredictionFileError,
    corpus_fingerprint,
    read_predictions,
    read_run,
)
from mmaff.eval.tasks import EvalTask

SIM_NOTE = "Sim@k not computed: pass --sim-model PATH (a sentence-transformers model folder)"
NLL_NOTE = (
    "NLL / log-perplexity not computed: pass --label-scores FILE written by `python -m mmaff.likelihood` "
    "(it scores the gold answers of open tasks by default)"
)
NLL_ROWS_NOTE = (
    "NLL / log-perplexity not computed: the label-score file has no gold_likelihood row for these items; rerun "
    "`python -m mmaff.likelihood` with --target-types including open"
)


class ScoringError(ValueError):
    """Predictions that cannot be joined to the corpus as given (names the ids); an unreadable predictions file is a
    `PredictionFileError` (names the file and line)."""


@dataclass
class PredictionMeta:
    """What the prediction rows say about the run besides the replies (rows from `mmaff.eval.generate` carry these)."""

    models: Counter = field(default_factory=Counter)
    backends: Counter = field(default_factory=Counter)
    truncated: set[str] = field(default_factory=set)  # ids whose generation stopped at max_new_tokens
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "models": dict(self.models),
            "backends": dict(self.backends),
            "generation_seconds": round(self.seconds, 3),
        }


def read_replies(path: str | Path, meta: PredictionMeta | None = None) -> dict[str, Reply]:
    """id -> raw prediction (text, or a list of ranked beams) of a predictions file, read strictly
    (`mmaff.eval.predictions.read_predictions`): a bad or unfinished line, a missing key or a duplicate id is an
    error naming the line. `meta`, if given, collects the rows' model, backend, finish reason and timing."""
    file = read_predictions(path, strict=True)
    replies: dict[str, Reply] = {}
    for item_id, row in file.rows.items():
        replies[item_id] = _reply(row["prediction"], file, item_id)
        if meta is not None:
            _collect(meta, row)
    return replies


def _reply(prediction: Any, file: PredictionFile, item_id: str) -> Reply:
    """A prediction as the model wrote it; anything else (null, a number, an object) would be scored as its JSON
    text, so it is an error instead."""
    if isinstance(prediction, str):
        return prediction
    if isinstance(prediction, list) and all(isinstance(beam, str) for beam in prediction):
        return prediction
    raise PredictionFileError(
        f"{file.where(item_id)}: prediction must be a string or a list of strings (beams), got {_json_excerpt(prediction)}"
    )


def _json_excerpt(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _collect(meta: PredictionMeta, row: dict[str, Any]) -> None:
    if "model" in row:
        meta.models[str(row["model"])] += 1
    if "backend" in row:
        meta.backends[str(row["backend"])] += 1
    if row.get("finish") == "length":
        meta.truncated.add(row["id"])
    if isinstance(row.get("seconds"), (int, float)):
        meta.seconds += row["seconds"]


def corpus_items(corpus_root: str | Path, tasks: dict[str, EvalTask]) -> dict[str, Item]:
    """The items of `tasks` from the corpus's split files (JSONL, read directly: only a few fields are needed)."""
    root = Path(corpus_root)
    items: dict[str, Item] = {}
    wanted = {(t.dataset, t.subtask): t for t in tasks.values()}
    spaces: dict[str, Any] = {}  # one label-space object per task, shared by the items whose space equals it
    for split in sorted({t.split for t in tasks.values()}):
        for path in sorted((root / split).glob("*.jsonl")):
            with open(path, "rb") as f:
                for line in f:
                    record = orjson.loads(line)
                    task = wanted.get((record["dataset"], record["subtask"]))
                    if task is None or task.split != split:
                        continue
                    space = record["label_space"]
                    if spaces.get(task.name) == space:
                        space = spaces[task.name]
                    else:
                        spaces[task.name] = space
                    items[record["id"]] = Item(
                        id=record["id"],
                        task=task.name,
                        language=record["language"],
                        gold=record["gold"],
                        emotion=(record.get("source") or {}).get("emotion"),
                        template=record["template"]["name"],
                        target_type=record["target_type"],
                        label_space=space,
                        answer=record["messages"][-1]["content"][0]["text"],
                        subset=record.get("subset") or record["language"],
                    )
    return items


@dataclass
class Coverage:
    """Predicted / expected items per task and language, and the ids that do not belong."""

    expected: Counter = field(default_factory=Counter)
    predicted: Counter = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing and not self.unknown

    def as_dict(self) -> dict[str, Any]:
        cells = {
            f"{task}|{language}": [self.predicted[(task, language)], n]
            for (task, language), n in sorted(self.expected.items())
        }
        return {
            "complete": self.complete,
            "predicted_of_expected": cells,
            "missing": len(self.missing),
            "unknown": len(self.unknown),
            "missing_examples": self.missing[:10],
            "unknown_examples": self.unknown[:10],
        }


def join(predictions: dict[str, Reply], items: dict[str, Item], *, allow_partial: bool = False) -> Coverage:
    """Check that predictions and items match id for id; with `allow_partial`, report instead of failing."""
    coverage = Coverage()
    for item in items.values():
        coverage.expected[(item.task, item.language)] += 1
        if item.id in predictions:
            coverage.predicted[(item.task, item.language)] += 1
        else:
            coverage.missing.append(item.id)
    coverage.unknown = sorted(set(predictions) - set(items))
    coverage.missing.sort()
    if not coverage.complete and not allow_partial:
        raise ScoringError(
            f"predictions do not cover the tasks exactly: {len(coverage.missing)} missing "
            f"(e.g. {coverage.missing[:3]}), {len(coverage.unknown)} unknown (e.g. {coverage.unknown[:3]}); "
            "check the corpus and task selection, or pass --allow-partial to score what is there"
        )
    return coverage


class ReplyParser:
    """Parses replies with the template that wrote each item's training answer."""

    def __init__(self, registry: dict[str, DatasetSpec] | None = None) -> None:
        self.registry = registry or load_registry()

    def parse_text(self, item: Item, reply: str) -> Parsed:
        dataset, subtask_name = item.task.split("/", 1)
        subtasks = self.registry[dataset].subtasks
        style, family = item.template.split("/", 1)
        return load_template(family, style).parse(reply.strip(), subtasks[subtask_name], subtasks)

    def parse(self, item: Item, reply: Reply) -> Parsed:
        """Open-vocabulary items: every beam is parsed (value = ranked list of parsed beams, None where a beam
        failed; status = the best beam's), for Acc@k. Other items: the best beam only."""
        if item.target_type != "open":
            return self.parse_text(item, top_reply(reply))
        beams = [self.parse_text(item, beam) for beam in ([reply] if isinstance(reply, str) else reply)]
        if not beams:
            return Parsed(None, "failed")
        return Parsed([beam.value for beam in beams], beams[0].status)


def parse_all(predictions: dict[str, Reply], items: dict[str, Item]) -> tuple[dict[str, Parsed], dict[str, Any]]:
    """Parsed replies of the covered items, and parse statuses per task and language."""
    parser = ReplyParser()
    parsed: dict[str, Parsed] = {}
    statuses: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for item_id, item in items.items():
        if item_id not in predictions:
            continue
        parsed[item_id] = parser.parse(item, predictions[item_id])
        statuses[(item.task, item.language)][parsed[item_id].status] += 1
    report = {
        f"{task}|{language}": {**dict(counts), "failure_rate": counts["failed"] / sum(counts.values())}
        for (task, language), counts in sorted(statuses.items())
    }
    return parsed, report


# ------------------------------------------------------------------------------------------------- metrics


def train_means(corpus_root: str | Path, tasks: dict[str, EvalTask]) -> dict[str, Any]:
    """Mean train gold per real / ordinal / VAD task (and joint part): the value an unparseable numeric reply is
    imputed to in the corrected mode (eval.md pitfall 3), instead of a silent 0 or 0.5."""
    sums: dict[str, defaultdict] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, Counter] = defaultdict(Counter)
    wanted = {(t.dataset, t.subtask): t.name for t in tasks.values()}

    def add(name: str, key: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            sums[name][key] += value
            counts[name][key] += 1
        elif isinstance(value, dict):
            for k, v in value.items():
                add(name, f"{key}.{k}" if key else k, v)

    for path in sorted((Path(corpus_root) / "train").glob("*.jsonl")):
        with open(path, "rb") as f:
            for line in f:
                record = orjson.loads(line)
                name = wanted.get((record["dataset"], record["subtask"]))
                if name and record["target_type"] in ("real", "ordinal", "vad", "joint"):
                    add(name, "", record["gold"])
    return {name: {k: sums[name][k] / counts[name][k] for k in counts[name]} for name in counts}


def _open_vocabulary(gold: list, ranked: list, languages: list[str]) -> dict:
    """Acc@k per language (normalisation is language-specific, e.g. Spanish gender endings), pooled by count, for
    each k in 1, 3, 5 up to the number of beams generated (greedy decoding gives Acc@1 only)."""
    from mmaff.eval import metrics

    beams = max((len(r) for r in ranked if r), default=1)
    ks = tuple(k for k in (1, 3, 5) if k == 1 or k <= beams)
    by_language: dict[str, list[int]] = defaultdict(list)
    for i, language in enumerate(languages):
        by_language[language].append(i)
    parts = {
        language: metrics.open_vocabulary_at_k(
            [gold[i] for i in rows], [ranked[i] for i in rows], ks=ks, language=language
        )
        for language, rows in sorted(by_language.items())
    }
    n = len(gold)
    names = [f"acc@{k}{match}" for match in ("", "_normalised") for k in ks]
    pooled = {name: sum(part[name] * part["n"] for part in parts.values()) / n for name in names}
    return {
        "n": n,
        **pooled,
        "beams": beams,
        "invalid": sum(p["invalid"] for p in parts.values()),
        "languages": sorted(parts),
    }


def _score_values(
    target_type: str, space: Any, gold: list, pred: list, means: dict[str, float], prefix: str, languages: list[str]
):
    from mmaff.eval import metrics

    if target_type == "single":
        return metrics.single_label(gold, pred, space["labels"])
    if target_type == "multi":
        return metrics.multi_label(gold, pred, space["labels"])
    if target_type == "real":
        return metrics.correlation(gold, pred, impute=means.get(prefix, _midpoint(space)))
    if target_type == "ordinal":
        classes = list(range(int(space["min"]), int(space["max"]) + 1))
        return metrics.ordinal(gold, pred, classes, impute=means.get(prefix, _midpoint(space)))
    if target_type == "vad":
        impute = {d: means.get(f"{prefix}.{d}" if prefix else d, 0.0) for d in space["dims"]}
        return metrics.vad(gold, pred, tuple(space["dims"]), impute=impute)
    if target_type == "open":
        return _open_vocabulary(gold, pred, languages)
    if target_type == "joint":
        return {
            part: _score_values(
                kind,
                space["parts"][part],
                [g[part] for g in gold],
                [None if p is None else p.get(part) for p in pred],
                means,
                part,
                languages,
            )
            for part, kind in space["types"].items()
        }
    raise ValueError(f"no metrics for target type {target_type!r}")


def _midpoint(space: Any) -> float:
    return (float(space["min"]) + float(space["max"])) / 2


def score_corrected(
    task: EvalTask,
    items: list[Item],
    parsed: dict[str, Parsed],
    means: dict[str, Any],
    supplement: Callable[[list[Item]], dict] | None = None,
) -> dict:
    """Pooled, per-language, per-subset (EWECT usual / virus blocks) and (EI) per-emotion figures of one task in the
    corrected mode; EI tasks also get the official SemEval headline (`metrics.semeval_ei_official`). `supplement`
    adds figures computed from other inputs to every block (MASIVE's NLL and Sim@k, `OpenSupplement`)."""

    def block(rows: list[Item]) -> dict:
        gold = [i.gold for i in rows]
        pred = [parsed[i.id].value for i in rows]
        languages = [i.language for i in rows]
        result = _score_values(task.target_type, rows[0].label_space, gold, pred, means, "", languages)
        return result | supplement(rows) if supplement is not None else result

    result: dict[str, Any] = {"n": len(items), "pooled": block(items)}
    if "language" in task.group_by:
        by_language = defaultdict(list)
        for item in items:
            by_language[item.language].append(item)
        result["per_language"] = {lang: block(rows) for lang, rows in sorted(by_language.items())}
        result["language_macro"] = _language_macro(task, result["per_language"])
    if "subset" in task.group_by:
        result["per_subset"] = {subset: block(rows) for subset, rows in _grouped(items, _subset_of).items()}
        result["subset_macro"] = _language_macro(task, result["per_subset"])
    if "emotion" in task.group_by:
        by_emotion = defaultdict(list)
        for item in items:
            by_emotion[item.emotion or "?"].append(item)
        per_emotion = {emotion: block(rows) for emotion, rows in sorted(by_emotion.items())}
        result["per_emotion"] = per_emotion
        from mmaff.eval.metrics import per_group_mean

        result["emotion_mean_pearson"] = per_group_mean(per_emotion, "pearson")
        if task.headline == "emotion_mean":  # SemEval-2018 EI: the official score
            result.update(_ei_official(items, block))
    return result


def _subset_of(item: Item) -> str:
    return item.subset or item.language


def _grouped(items: list[Item], key: Callable[[Item], str]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return dict(sorted(groups.items()))


def _ei_official(items: list[Item], block: Callable[[list[Item]], dict]) -> dict[str, Any]:
    """Every (language x emotion) cell the official scorer reports (one per emotion per language file), and the
    official headline over them."""
    from mmaff.eval.metrics import semeval_ei_official

    cells = _grouped(items, lambda item: f"{item.language}|{item.emotion or '?'}")
    per_cell = {tuple(cell.split("|", 1)): block(rows) for cell, rows in cells.items()}
    return {
        "per_language_emotion": {"|".join(cell): result for cell, result in per_cell.items()},
        "official": semeval_ei_official(per_cell),
    }


def _language_macro(task: EvalTask, per_language: dict[str, dict]) -> dict[str, float | None]:
    """Unweighted mean over languages of each declared metric, and of each supplementary one the results hold
    (None when a language leaves it undefined)."""
    from mmaff.eval.metrics import METRICS, metric_value

    entry = METRICS.get(task.target_type)
    present = [m for m in (entry.supplementary if entry else ()) if any(m in r for r in per_language.values())]
    macro: dict[str, float | None] = {}
    for name in (*task.metrics, *present):
        values = [metric_value(result, name) for result in per_language.values()]
        macro[name] = None if None in values or not values else sum(values) / len(values)
    return macro


def against_chance(target_type: str, space: Any, gold: list, result: dict) -> dict[str, Any]:
    """The chance-comparable headline of one result (`metrics.CHANCE_METRIC`), its chance level and
    (value - chance) / (1 - chance). Joint answers: each part by its own type, and the mean over parts."""
    from mmaff.eval import metrics

    if target_type == "joint":
        parts = {
            part: against_chance(kind, space["parts"][part], [g[part] for g in gold], result[part])
            for part, kind in space["types"].items()
        }
        values = [p["chance_normalised"] for p in parts.values()]
        mean = None if None in values else sum(values) / len(values)
        return {"metric": "mean over parts", "parts": parts, "chance_normalised": mean}
    name = metrics.CHANCE_METRIC[target_type]
    labels = space.get("labels") if isinstance(space, dict) else None
    chance = metrics.chance_level(target_type, labels, gold=gold if target_type == "multi" else None)
    value = metrics.metric_value(result, name)
    return {
        "metric": name,
        "value": value,
        "chance": chance,
        "chance_normalised": metrics.chance_normalised(value, chance),
    }


@dataclass
class OpenSupplement:
    """MASIVE's figures beside Acc@k for the items of one open task: per item the gold answer's NLL and
    log-perplexity (label-score gold rows) and each beam's similarity to the gold (`mmaff.eval.similarity`)."""

    likelihoods: dict[str, dict[str, float]] | None
    similarities: dict[str, list[float]] | None

    def __call__(self, rows: list[Item]) -> dict[str, Any]:
        from mmaff.eval import metrics

        result: dict[str, Any] = {}
        covered = [self.likelihoods[i.id] for i in rows if i.id in (self.likelihoods or {})]
        if covered:
            result |= metrics.gold_likelihood([c["nll"] for c in covered], [c["log_perplexity"] for c in covered])
        if self.similarities is not None:
            result |= metrics.similarity_at_k([self.similarities[i.id] for i in rows])
        return result

    def not_computed(self) -> dict[str, str]:
        notes = {}
        if not self.likelihoods:
            notes["nll"] = NLL_NOTE if self.likelihoods is None else NLL_ROWS_NOTE
        if self.similarities is None:
            notes["sim@k"] = SIM_NOTE
        return notes


def gold_likelihoods(
    name: str, rows: list[Item], label_scores: dict[str, dict[str, float]] | None, allow_partial: bool
) -> dict[str, dict[str, float]] | None:
    """id -> {"nll", "log_perplexity"} of an open task's items from the label scores (None: no file; empty: no
    gold row for them). A row of another kind, or items left out while others are scored, is an error."""
    from mmaff.eval.likelihood import GOLD_KEYS

    if label_scores is None:
        return None
    covered = {i.id: label_scores[i.id] for i in rows if i.id in label_scores}
    wrong = [item_id for item_id, row in covered.items() if sorted(row) != sorted(GOLD_KEYS)]
    if wrong:
        raise ScoringError(
            f"{name}: label-score rows of {wrong[:3]} are not gold_likelihood rows ({', '.join(GOLD_KEYS)})"
        )
    if covered and len(covered) < len(rows) and not allow_partial:
        missing = [i.id for i in rows if i.id not in covered]
        raise ScoringError(
            f"{name}: {len(missing)} items have no gold likelihood (e.g. {missing[:3]}); score them with "
            "`python -m mmaff.likelihood`, or pass --allow-partial"
        )
    return covered


def beam_similarities(
    rows: list[Item], parsed: dict[str, Parsed], texts: dict[str, str], model: Any
) -> dict[str, list[float]]:
    """id -> each beam's similarity to the gold (`ContextualSimilarity.beam_similarities`) for an open task."""
    inputs = []
    for item in rows:
        beams = parsed[item.id].value or []
        inputs.append((texts[item.id], [str(term) for term in item.gold], [_beam_terms(beam) for beam in beams]))
    return dict(zip((i.id for i in rows), model.beam_similarities(inputs)))


def _beam_terms(beam: Any) -> list[str] | None:
    if beam is None:
        return None
    return [beam] if isinstance(beam, str) else [str(term) for term in beam]


def record_texts(corpus_root: str | Path, ids: set[str], splits: set[str]) -> dict[str, str]:
    """id -> the record's text (the masked context of an open item) for `ids`, from the corpus split files."""
    texts: dict[str, str] = {}
    for split in sorted(splits):
        for path in sorted((Path(corpus_root) / split).glob("*.jsonl")):
            with open(path, "rb") as f:
                for line in f:
                    record = orjson.loads(line)
                    if record["id"] in ids:
                        texts[record["id"]] = record["text"]
    return texts


def score_ranking(items: list[Item], label_scores: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Threshold-free multi-label metrics (AP-micro, AUC-micro, LRAP) from per-label likelihood scores."""
    from mmaff.eval.metrics import multilabel_ranking

    labels = items[0].label_space["labels"]
    return multilabel_ranking([i.gold for i in items], [label_scores[i.id] for i in items], labels)


def score_paper(task: EvalTask, items: list[Item], predictions: dict[str, Reply]) -> dict | None:
    if not task.paper_compat:
        return None
    from mmaff.eval.paper_compat import score_paper_compat

    return score_paper_compat(
        task.dataset,
        task.subtask,
        [top_reply(predictions[i.id]) for i in items],
        [i.answer for i in items],
        emotions=[i.emotion for i in items] if "emotion" in task.group_by else None,
        languages=[i.language for i in items] if "language" in task.group_by else None,
        subsets=[_subset_of(i) for i in items] if "subset" in task.group_by else None,
    )


def overall(tasks: dict[str, EvalTask], results: dict[str, dict]) -> dict[str, Any]:
    """Per task group: the mean chance-normalised headline over its tasks (tasks where it is undefined listed)."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in results:
        for group in tasks[name].groups:
            groups[group].append(name)
    summary = {}
    for group, names in sorted(groups.items()):
        values = {n: results[n]["against_chance"]["chance_normalised"] for n in names}
        defined = [v for v in values.values() if v is not None]
        summary[group] = {
            "mean_chance_normalised": sum(defined) / len(defined) if defined else None,
            "tasks": len(names),
            "undefined": sorted(n for n, v in values.items() if v is None),
        }
    return summary


def _count_by_cell(ids: set[str], items: dict[str, Item]) -> dict[str, int]:
    counts = Counter(f"{items[i].task}|{items[i].language}" for i in ids if i in items)
    return dict(sorted(counts.items()))


def _gc_paused(function: Callable[..., Any]) -> Callable[..., Any]:
    """Run `function` with the cyclic garbage collector off. Scoring holds millions of long-lived containers
    (items, gold values, parsed replies) and makes no reference cycles of note, so collections during it only
    re-scan them: about a quarter of the time on 216k items (benchmarks/bench_score.py)."""

    @functools.wraps(function)
    def paused(*args: Any, **kwargs: Any) -> Any:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused


@_gc_paused
def score(
    predictions_path: str | Path,
    corpus_root: str | Path,
    tasks: dict[str, EvalTask],
    *,
    allow_partial: bool = False,
    modes: tuple[str, ...] = ("corrected", "paper_compat"),
    label_scores: dict[str, dict[str, float]] | None = None,
    sim_model: Any = None,
) -> tuple[dict[str, Any], dict[str, tuple[list[Item], list[Any]]]]:
    """metrics.json's content, and per task the scored items with their parsed values (for plots). Open tasks
    (MASIVE) also get the gold answers' NLL / log-perplexity from `label_scores` and, with `sim_model` (a
    `mmaff.eval.similarity.ContextualSimilarity`), Sim@k."""
    meta = PredictionMeta()
    predictions = read_replies(predictions_path, meta)
    items = corpus_items(corpus_root, tasks)
    coverage = join(predictions, items, allow_partial=allow_partial)
    foreign_scores = _foreign_label_scores(label_scores, items, allow_partial)
    parsed, statuses = parse_all(predictions, items)
    means = train_means(corpus_root, tasks)
    by_task: dict[str, list[Item]] = defaultdict(list)
    for item in items.values():
        if item.id in parsed:
            by_task[item.task].append(item)
    results, scored = {}, {}
    for name, task in tasks.items():
        rows = sorted(by_task.get(name, []), key=lambda i: i.id)
        if not rows:
            continue
        entry: dict[str, Any] = {
            "dataset": task.dataset,
            "subtask": task.subtask,
            "modality": task.modality,
            "target_type": task.target_type,
            "primary": task.primary,
        }
        if "corrected" in modes:
            supplement = None
            if task.target_type == "open":
                supplement = _open_supplement(
                    name, task, rows, parsed, corpus_root, label_scores, sim_model, allow_partial
                )
            corrected = entry["corrected"] = score_corrected(task, rows, parsed, means.get(name, {}), supplement)
            if supplement is not None and supplement.not_computed():
                corrected["not_computed"] = supplement.not_computed()
            entry["primary_value"] = _primary_value(task, corrected)
            gold = [i.gold for i in rows]
            entry["against_chance"] = against_chance(
                task.target_type, rows[0].label_space, gold, _headline_result(task, corrected)
            )
            if label_scores is not None and task.target_type == "multi":
                entry["corrected"]["ranking"] = _ranking_or_error(name, rows, label_scores, allow_partial)
        if "paper_compat" in modes and task.paper_compat:
            entry["paper_compat"] = score_paper(task, rows, predictions)
        results[name] = entry
        scored[name] = (rows, [parsed[i.id].value for i in rows])
    run = read_run(predictions_path)
    corpus = corpus_fingerprint(corpus_root)
    report = {
        "predictions": str(predictions_path),
        "corpus": corpus,
        "run": run,  # backend, model, corpus build, split and decoding settings, from mmaff.eval.generate's run file
        "run_matches_corpus": None if run is None else run.get("corpus_sha256") == corpus["corpus_sha256"],
        "rows": meta.as_dict(),
        "modes": [m for m in ("corrected", "paper_compat") if m in modes],
        "coverage": coverage.as_dict(),
        "parse_status": statuses,
        "truncated": _count_by_cell(meta.truncated, items),
        "label_scores": None if label_scores is None else {"rows": len(label_scores), "unknown_ids": foreign_scores},
        "sim_model": None if sim_model is None else sim_model.name,
        "overall": overall(tasks, results) if "corrected" in modes else {},
        "tasks": results,
    }
    return report, scored


def _open_supplement(
    name: str,
    task: EvalTask,
    rows: list[Item],
    parsed: dict[str, Parsed],
    corpus_root: str | Path,
    label_scores: dict[str, dict[str, float]] | None,
    sim_model: Any,
    allow_partial: bool,
) -> OpenSupplement:
    similarities = None
    if sim_model is not None:
        texts = record_texts(corpus_root, {i.id for i in rows}, {task.split})
        similarities = beam_similarities(rows, parsed, texts, sim_model)
    return OpenSupplement(gold_likelihoods(name, rows, label_scores, allow_partial), similarities)


def _primary_value(task: EvalTask, corrected: dict) -> float | None:
    from mmaff.eval.metrics import metric_value

    return metric_value(_headline_result(task, corrected), task.primary)


def _headline_result(task: EvalTask, corrected: dict) -> dict:
    """The result the headline is read from: the pooled one, except that an EI task's Pearson is the official
    mean of per-emotion Pearsons (the pooled Pearson mixes the emotions' scales)."""
    official = corrected.get("official")
    if official is None or task.primary != "pearson":
        return corrected["pooled"]
    return {**corrected["pooled"], "pearson": official["headline"]}


def _foreign_label_scores(label_scores: dict | None, items: dict[str, Item], allow_partial: bool) -> int:
    """Label scores of ids that are not items of the selected tasks: an error (another corpus or split), or with
    `allow_partial` a count in the report. Scores of non-multi-label items (e.g. `--target-types single`) are
    items, and simply unused by the ranking metrics."""
    if label_scores is None:
        return 0
    foreign = sorted(set(label_scores) - set(items))
    if foreign and not allow_partial:
        raise ScoringError(
            f"{len(foreign)} label-score ids are not items of the selected tasks (e.g. {foreign[:3]}); "
            "check the corpus, split and --group, or pass --allow-partial"
        )
    return len(foreign)


def _ranking_or_error(name: str, rows: list[Item], label_scores: dict, allow_partial: bool) -> dict | None:
    covered = [i for i in rows if i.id in label_scores]
    if len(covered) < len(rows) and not allow_partial:
        missing = [i.id for i in rows if i.id not in label_scores]
        raise ScoringError(f"{name}: {len(missing)} items have no label scores (e.g. {missing[:3]})")
    return {**score_ranking(covered, label_scores), "covered": len(covered)} if covered else None


def build_parser() -> Any:
    import argparse

    from mmaff.eval.cli_common import HelpFormatter, add_comma_list

    parser = argparse.ArgumentParser(
        description="Score an id-keyed predictions JSONL against a built corpus.", formatter_class=HelpFormatter
    )
    parser.add_argument("--predictions", required=True, help="predictions file (mmaff.generate's --out)")
    parser.add_argument("--corpus", required=True, help="the built corpus folder the predictions were made on")
    parser.add_argument("--out", required=True, help="folder for metrics.json, results.md, plots/")
    parser.add_argument("--group", default="all", help="task group: all, text, image, video, mmaffben, extensions")
    add_comma_list(parser, "--datasets", "only the tasks of these datasets (a,b or a b; default: all)")
    add_comma_list(parser, "--tasks", "only these tasks, <dataset>/<subtask> (default: all of the group)")
    parser.add_argument("--allow-partial", action="store_true", help="score what is there and report coverage")
    parser.add_argument(
        "--label-scores", help="label-likelihood scores (mmaff.eval.likelihood) for the ranking metrics"
    )
    parser.add_argument(
        "--sim-model",
        metavar="PATH",
        help="a sentence-transformers model folder for MASIVE's Sim@1/3/5 (contextual similarity of predicted and "
        "gold terms; the authors used bert-base-multilingual-uncased: SentenceTransformer(NAME).save(PATH)); "
        "without it Sim@k is not computed and the reports say so",
    )
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return parser


def selected_tasks(group: str, datasets: list[str] | None, names: list[str] | None) -> dict[str, EvalTask]:
    """The tasks of `group`, narrowed to `datasets` / `names`; unknown names or an empty selection are errors."""
    from mmaff.eval.cli_common import CliError, check_known
    from mmaff.eval.tasks import DERIVED_GROUPS, load_tasks

    every = load_tasks()
    groups = set(DERIVED_GROUPS).union(*(t.groups for t in every.values()))
    check_known("group", [group], groups, "groups are all, a modality, or a `groups` entry of eval/tasks/")
    check_known("dataset", datasets, {t.dataset for t in every.values()}, "datasets with eval/tasks/<dataset>/")
    check_known("task", names, every, "tasks are eval/tasks/<dataset>/<subtask>.yaml")
    tasks = {
        name: task
        for name, task in every.items()
        if group in task.groups and (not datasets or task.dataset in datasets) and (not names or name in names)
    }
    if not tasks:
        raise CliError(f"no task in group {group} matches --datasets {datasets} --tasks {names}; widen the selection")
    return tasks


def main(argv: list[str] | None = None) -> None:
    from mmaff.eval.cli_common import scoring_inputs

    args = build_parser().parse_args(argv)
    corpus_root = scoring_inputs(args.predictions, args.label_scores, args.corpus)
    tasks = selected_tasks(args.group, args.datasets, args.tasks)
    label_scores = None
    if args.label_scores:
        from mmaff.eval.likelihood import read_label_scores

        label_scores = read_label_scores(args.label_scores)
    sim_model = None
    if args.sim_model:
        from mmaff.eval.similarity import ContextualSimilarity

        sim_model = ContextualSimilarity(args.sim_model)
    report, scored = score(
        args.predictions,
        corpus_root,
        tasks,
        allow_partial=args.allow_partial,
        label_scores=label_scores,
        sim_model=sim_model,
    )
    if report["run_matches_corpus"] is False:
        print(
            f"warning: {args.predictions} was generated from another build of the corpus "
            f"({report['run']['corpus_path']}, manifest sha256 {report['run']['corpus_sha256'][:12]}) than "
            f"{args.corpus} ({report['corpus']['corpus_sha256'][:12]}); ids matched, but prompts or gold may differ",
            file=sys.stderr,
        )
    from mmaff.eval.report import write_reports

    written = write_reports(Path(args.out), report, scored, tasks, plots=not args.no_plots)
    print(
        f"wrote {', '.join(str(p) for p in written)} ({len(report['tasks'])} tasks; coverage complete: "
        f"{report['coverage']['complete']})"
    )


if __name__ == "__main__":
    from mmaff.eval.cli_common import run_cli

    run_cli(main, extra=(ScoringError,))
