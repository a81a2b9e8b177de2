"""The synthetic corpus pipeline: recipe -> plan -> prompts -> generation -> parse -> per-sample filters -> dedup ->
optional judge -> kept corpus, rejections, report and plots.

Every planned sample ends as kept or as exactly one rejection (stage + reason). Stages, in order: requested,
returned (the server answered; a 400 / 422 refusal stops here), parsed (a JSON object with a non-empty "text"),
one per filter of `mmaff.synth.filters.per_sample_filters` (language, script, length, leakage), dedup, judge
(when the recipe enables it) = kept.

Output folder (`--out`):
    synthetic_emotions/<recipe name>.jsonl   kept samples, the `synthetic_emotions` builder's input format
    rejections.jsonl                         one row per rejected sample: id, language, stage, reason
    generation_report.json / .md, plots/     see `mmaff.synth.report`
    cache/generations.jsonl, cache/judgments.jsonl   the server's answers (append-only, resumable)
Everything but the cache is written in plan order from the cache, so two runs with the same recipe and server
answers give byte-identical files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmaff.data.registry import load_registry
from mmaff.eval.openai_backend import OpenAIChatGenerator
from mmaff.synth import filters, prompts
from mmaff.synth.generate import STRUCTURED, TEXT_SCHEMA, answer_all, structured_arguments
from mmaff.synth.plan import PlannedSample, PlanRules, plan_corpus

DATASET = "synthetic_emotions"  # the builder whose input format the kept file is in, and whose label set it uses
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"emotions": {"type": "array", "items": {"type": "string"}}},
    "required": ["emotions"],
    "additionalProperties": False,
}
RECIPE_KEYS = ("name", "seed", "languages", "samples_per_language", "plan", "generation", "judge", "filters")
GENERATION_KEYS = ("model", "base_url", "temperature", "top_p", "max_tokens", "structured", "concurrency")
JUDGE_KEYS = ("enabled", "model", "rule", "temperature", "max_tokens")
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the file and the key."""


@dataclass(frozen=True)
class Generation:
    model: str = "Qwen/Qwen2.5-72B-Instruct"
    base_url: str = "http://localhost:8000/v1"
    temperature: float = 0.9
    top_p: float = 0.95
    max_tokens: int = 400
    structured: str = "none"
    concurrency: int = 16


@dataclass(frozen=True)
class Judge:
    enabled: bool = False
    model: str | None = None  # None: the generation model
    rule: str = "superset"
    temperature: float = 0.0
    max_tokens: int = 100


@dataclass(frozen=True)
class Recipe:
    name: str
    seed: int
    counts: dict[str, int]
    plan: PlanRules
    generation: Generation
    judge: Judge
    filters: filters.FilterRules
    labels: tuple[str, ...]
    source: str = field(default="", compare=False)


def _section(raw: Any, keys: Sequence[str], cls: type, where: str) -> Any:
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise RecipeError(f"{where}: must be a mapping")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(keys)})")
    return cls(**raw)


def load_recipe(path: Path) -> Recipe:
    """The recipe YAML, validated; RecipeError (one line naming the file and key) when it cannot run."""
    where = str(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise RecipeError(f"{where}: cannot read the recipe: {str(err).splitlines()[0]}") from None
    if not isinstance(raw, Mapping):
        raise RecipeError(f"{where}: needs a mapping with keys {', '.join(RECIPE_KEYS)}")
    unknown = sorted(set(raw) - set(RECIPE_KEYS))
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(RECIPE_KEYS)})")
    spec = load_registry()[DATASET]
    labels = spec.subtasks["EC"].label_set.labels
    counts = _counts(raw, spec.languages, where)
    profiles = prompts.load_profiles()
    try:
        generation = _section(raw.get("generation"), GENERATION_KEYS, Generation, f"{where}: generation")
        judge = _section(raw.get("judge"), JUDGE_KEYS, Judge, f"{where}: judge")
        if generation.structured not in STRUCTURED:
            raise ValueError(f"generation: structured must be one of {', '.join(STRUCTURED)}")
        filters.check_judge_rule(judge.rule)
        plan = PlanRules.from_mapping(raw.get("plan"), labels, list(profiles["text_types"]), profiles["length_bands"])
        rules = filters.FilterRules.from_mapping(raw.get("filters"))
    except (TypeError, ValueError) as err:
        raise RecipeError(f"{where}: {err}") from None
    name, seed = raw.get("name"), raw.get("seed")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise RecipeError(f"{where}: name must be a file-safe string, got {name!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise RecipeError(f"{where}: seed must be an integer, got {seed!r}")
    return Recipe(name, seed, counts, plan, generation, judge, rules, labels, where)


def _counts(raw: Mapping[str, Any], known: Sequence[str], where: str) -> dict[str, int]:
    """Language -> planned samples: `languages` (a list, or "all") x `samples_per_language` (a number, or a
    mapping per language)."""
    languages = raw.get("languages", "all")
    languages = list(filters.LANGUAGES) if languages == "all" else languages
    if not isinstance(languages, list) or not languages:
        raise RecipeError(f"{where}: languages must be a list of ISO 639-1 codes or 'all'")
    bad = [lang for lang in languages if lang not in known or lang not in filters.LANGUAGES]
    if bad or len(set(languages)) != len(languages):
        raise RecipeError(f"{where}: languages: {bad or 'repeated'}; choose from {' '.join(filters.LANGUAGES)}")
    per = raw.get("samples_per_language")
    counts = {lang: per.get(lang, 0) if isinstance(per, Mapping) else per for lang in languages}
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts.values()):
        raise RecipeError(f"{where}: samples_per_language must be an integer >= 0 (or one per language)")
    return counts


# ------------------------------------------------------------------------------------------------ stages
@dataclass
class Outcome:
    """Where one planned sample ended: kept (stage "kept") or rejected at a stage, with its reason."""

    sample: PlannedSample
    stage: str = "kept"
    reason: str = ""
    text: str = ""
    judged: list[str] | None = None
    tokens_in: int = 0
    tokens_out: int = 0


def parse_generation(answer: str) -> tuple[str | None, str]:
    """(text, "") from a generation answer, or (None, reason)."""
    body = answer.strip()
    fenced = _FENCE.match(body)
    body = fenced.group(1) if fenced else body
    if not body:
        return None, "empty answer"
    try:
        data = json.loads(body)
    except ValueError:
        return None, f"not JSON: {body[:60]!r}"
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return None, 'JSON without a string "text"'
    text = " ".join(data["text"].split())
    return (text, "") if text else (None, 'empty "text"')


def parse_judgment(answer: str, labels: Sequence[str]) -> list[str] | None:
    """The judge's emotions (label-set names, label-set order), or None when the answer is not usable."""
    body = answer.strip()
    fenced = _FENCE.match(body)
    try:
        data = json.loads(fenced.group(1) if fenced else body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("emotions"), list):
        return None
    named = {str(e).strip().casefold() for e in data["emotions"]}
    return [label for label in labels if label.casefold() in named]


def _add_tokens(outcome: Outcome, row: Mapping[str, Any]) -> None:
    outcome.tokens_in += row.get("prompt_tokens") or 0
    outcome.tokens_out += row.get("completion_tokens") or 0


def _sampling(recipe: Recipe, sample: PlannedSample) -> dict[str, Any]:
    g = recipe.generation
    options = {"temperature": g.temperature, "top_p": g.top_p, "max_tokens": g.max_tokens, "seed": sample.seed}
    return {**options, **structured_arguments(g.structured, TEXT_SCHEMA, "synthetic_text")}


def _backend(model: str, base_url: str, concurrency: int, api_key: str | None) -> OpenAIChatGenerator:
    return OpenAIChatGenerator(base_url, model, api_key, concurrency=concurrency, decodings={})


def generate_stage(
    recipe: Recipe, samples: Sequence[PlannedSample], out: Path, backend: OpenAIChatGenerator
) -> list[Outcome]:
    requests = [{"id": s.id, "messages": prompts.generation_messages(s), **_sampling(recipe, s)} for s in samples]
    answers = answer_all(backend, requests, out / "cache" / "generations.jsonl")
    outcomes = []
    for sample in samples:
        outcome, row = Outcome(sample), answers[sample.id]
        _add_tokens(outcome, row)
        if row["refused"]:
            outcome.stage, outcome.reason = "returned", f"refused: {row['refused']}"
        else:
            text, reason = parse_generation(row["text"])
            outcome.stage, outcome.reason, outcome.text = ("kept", "", text) if text else ("parsed", reason, "")
        outcomes.append(outcome)
    return outcomes


def filter_stage(recipe: Recipe, outcomes: Sequence[Outcome]) -> None:
    """Each surviving sample through the per-sample filters in order, then dedup over the survivors."""
    survivors = []
    for outcome in outcomes:
        if outcome.stage != "kept":
            continue
        candidate = filters.Candidate(
            outcome.sample.id, outcome.sample.language, outcome.text, outcome.sample.emotions
        )
        for name, check in filters.per_sample_filters():
            reason = check(candidate, recipe.filters)
            if reason is not None:
                outcome.stage, outcome.reason = name, reason
                break
        else:
            survivors.append((outcome, candidate))
    dropped = filters.near_duplicates([c for _, c in survivors], recipe.filters)
    for outcome, candidate in survivors:
        if candidate.id in dropped:
            outcome.stage, outcome.reason = "dedup", dropped[candidate.id]


def judge_stage(recipe: Recipe, outcomes: Sequence[Outcome], out: Path, backend: OpenAIChatGenerator) -> None:
    todo = [o for o in outcomes if o.stage == "kept"]
    g, j = recipe.generation, recipe.judge
    options = {"temperature": j.temperature, "max_tokens": j.max_tokens}
    structured = structured_arguments(g.structured, JUDGE_SCHEMA, "emotions")
    requests = [
        {
            "id": o.sample.id,
            "messages": prompts.judge_messages(o.sample.language, o.text, list(recipe.labels)),
            **options,
            **structured,
        }
        for o in todo
    ]
    answers = answer_all(backend, requests, out / "cache" / "judgments.jsonl")
    for outcome in todo:
        row = answers[outcome.sample.id]
        _add_tokens(outcome, row)
        judged = None if row["refused"] else parse_judgment(row["text"], recipe.labels)
        if judged is None:
            outcome.stage, outcome.reason = (
                "judge",
                f"judge answer not usable: {(row['refused'] or row['text'])[:60]!r}",
            )
            continue
        outcome.judged = judged
        if not filters.judge_agrees(outcome.sample.emotions, judged, j.rule):
            outcome.stage, outcome.reason = (
                "judge",
                f"judge {judged} vs planned {list(outcome.sample.emotions)} ({j.rule})",
            )


def stages(recipe: Recipe) -> list[str]:
    """The report's stage names, in order."""
    named = [name for name, _ in filters.per_sample_filters()]
    return ["requested", "returned", "parsed", *named, "dedup", *(["judge"] if recipe.judge.enabled else [])]


# ------------------------------------------------------------------------------------------------ outputs
def kept_row(recipe: Recipe, outcome: Outcome, meta: Mapping[str, Any]) -> dict[str, Any]:
    """One kept sample in the synthetic_emotions input format (extra keys under "meta", which it ignores)."""
    s = outcome.sample
    return {
        "id": s.id,
        "text": outcome.text,
        "language": s.language,
        "labels": list(s.emotions),
        "meta": {
            **meta,
            "text_type": s.text_type,
            "length_band": s.length_band,
            "setting": s.setting,
            "judged": outcome.judged,
        },
    }


def _write_jsonl(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    tmp.replace(path)


def run(
    recipe: Recipe,
    out: Path,
    *,
    base_url: str | None = None,
    model: str | None = None,
    concurrency: int | None = None,
    api_key: str | None = None,
    plots: bool = True,
) -> dict[str, Any]:
    """The whole pipeline; returns the report (also written under `out`)."""
    from mmaff.synth import report

    g = recipe.generation
    base_url, model, concurrency = base_url or g.base_url, model or g.model, concurrency or g.concurrency
    samples = plan_corpus(recipe.counts, recipe.seed, recipe.plan, recipe.labels, prompts.load_profiles()["languages"])
    outcomes = generate_stage(recipe, samples, out, _backend(model, base_url, concurrency, api_key))
    filter_stage(recipe, outcomes)
    if recipe.judge.enabled:
        judge_stage(recipe, outcomes, out, _backend(recipe.judge.model or model, base_url, concurrency, api_key))
    meta = {**prompts.versions(), "recipe": recipe.name, "seed": recipe.seed, "model": model}
    kept = [kept_row(recipe, o, meta) for o in outcomes if o.stage == "kept"]
    _write_jsonl(out / DATASET / f"{recipe.name}.jsonl", kept)
    rejected = [
        {"id": o.sample.id, "language": o.sample.language, "stage": o.stage, "reason": o.reason}
        for o in outcomes
        if o.stage != "kept"
    ]
    _write_jsonl(out / "rejections.jsonl", rejected)
    summary = report.build_report(recipe, outcomes, stages(recipe), {**meta, "judge_rule": recipe.judge.rule})
    report.write_report(summary, out, plots=plots)
    return summary
