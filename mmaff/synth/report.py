"""generation_report.json / .md of a synthetic run: the funnel (samples left after each stage, per language),
rejection reasons, label cardinality and co-occurrence of the kept set against the plan, judge agreement per
language and label, tokens per kept sample, and a few kept samples per language. No timings: the same run gives
the same bytes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

EXAMPLES_PER_LANGUAGE = 3


def funnel(outcomes: Sequence[Any], stages: Sequence[str]) -> dict[str, int]:
    """Samples left after each stage (requested = all planned); the last stage's figure is the kept count."""
    rejected_at = Counter(o.stage for o in outcomes)
    left, counts = len(outcomes), {}
    for stage in stages:
        left -= rejected_at.get(stage, 0)
        counts[stage] = left
    return counts


def cardinality(label_sets: Sequence[Sequence[str]]) -> dict[str, float]:
    counts = Counter(len(labels) for labels in label_sets)
    total = len(label_sets) or 1
    return {str(k): round(counts.get(k, 0) / total, 4) for k in range(4)}


def cooccurrence(label_sets: Sequence[Sequence[str]], labels: Sequence[str]) -> list[list[int]]:
    """Symmetric counts; the diagonal holds how often each label occurs."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = [[0] * len(labels) for _ in labels]
    for chosen in label_sets:
        for label in chosen:
            matrix[index[label]][index[label]] += 1
        for a, b in combinations(chosen, 2):
            matrix[index[a]][index[b]] += 1
            matrix[index[b]][index[a]] += 1
    return matrix


def _rate(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def judge_agreement(outcomes: Sequence[Any], labels: Sequence[str], languages: Sequence[str]) -> dict[str, Any]:
    """Of the samples the judge labelled: share kept by the rule per language; per label, the share of samples
    planned with it where the judge found it (recall) and of those the judge gave it that were planned with it."""
    judged = [o for o in outcomes if o.judged is not None]
    by_language = {}
    for lang in languages:
        mine = [o for o in judged if o.sample.language == lang]
        by_language[lang] = {"judged": len(mine), "agree": _rate(sum(o.stage == "kept" for o in mine), len(mine))}
    by_label = {}
    for label in labels:
        planned = [o for o in judged if label in o.sample.emotions]
        given = [o for o in judged if label in o.judged]
        by_label[label] = {
            "planned": len(planned),
            "found_when_planned": _rate(sum(label in o.judged for o in planned), len(planned)),
            "planned_when_found": _rate(sum(label in o.sample.emotions for o in given), len(given)),
        }
    return {"per_language": by_language, "per_label": by_label}


def build_report(recipe: Any, outcomes: Sequence[Any], stages: Sequence[str], meta: Mapping[str, Any]) -> dict:
    languages = list(recipe.counts)
    kept = [o for o in outcomes if o.stage == "kept"]
    per_language = {}
    for lang in languages:
        mine = [o for o in outcomes if o.sample.language == lang]
        reasons = Counter(o.stage for o in mine if o.stage != "kept")
        per_language[lang] = {"funnel": funnel(mine, stages), "rejected": dict(sorted(reasons.items()))}
    tokens_in, tokens_out = sum(o.tokens_in for o in outcomes), sum(o.tokens_out for o in outcomes)
    report = {
        "recipe": recipe.name,
        "seed": recipe.seed,
        "meta": dict(meta),
        "stages": list(stages),
        "totals": funnel(outcomes, stages),
        "per_language": per_language,
        "labels": list(recipe.labels),
        "cardinality": {
            "plan": cardinality([o.sample.emotions for o in outcomes]),
            "kept": cardinality([o.sample.emotions for o in kept]),
        },
        "cooccurrence": {
            "plan": cooccurrence([o.sample.emotions for o in outcomes], recipe.labels),
            "kept": cooccurrence([o.sample.emotions for o in kept], recipe.labels),
        },
        "judge": judge_agreement(outcomes, recipe.labels, languages) if recipe.judge.enabled else None,
        "cost": {
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "tokens_in_per_kept": round(tokens_in / len(kept), 1) if kept else None,
            "tokens_out_per_kept": round(tokens_out / len(kept), 1) if kept else None,
        },
        "examples": {
            lang: [
                {"id": o.sample.id, "labels": list(o.sample.emotions), "text": o.text}
                for o in kept
                if o.sample.language == lang
            ][:EXAMPLES_PER_LANGUAGE]
            for lang in languages
        },
    }
    return report


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    shown = [["n/a" if v is None else str(v) for v in row] for row in rows]
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r) + " |" for r in shown),
    ]


def markdown(report: Mapping[str, Any]) -> str:
    stages = report["stages"]
    lines = [f"# Synthetic generation report: {report['recipe']} (seed {report['seed']})", ""]
    lines += [
        f"Model `{report['meta']['model']}`; prompts {report['meta']['generate_template']}, "
        f"{report['meta']['judge_template']}, profiles v{report['meta']['profiles_version']}.",
        "",
    ]
    lines += ["## Funnel (samples left after each stage)", ""]
    rows = [[lang, *(v["funnel"][s] for s in stages)] for lang, v in report["per_language"].items()]
    lines += _table(["language", *stages], [*rows, ["all", *(report["totals"][s] for s in stages)]]) + [""]
    lines += ["## Label cardinality (share of samples with k emotions)", ""]
    card = report["cardinality"]
    lines += _table(["k", "plan", "kept"], [[k, card["plan"][k], card["kept"][k]] for k in card["plan"]]) + [""]
    if report["judge"]:
        lines += [f"## Judge agreement (rule `{report['meta'].get('judge_rule', '')}`)", ""]
        j = report["judge"]
        lines += _table(
            ["language", "judged", "agree"], [[k, v["judged"], v["agree"]] for k, v in j["per_language"].items()]
        )
        lines += (
            [""]
            + _table(
                ["label", "planned", "found when planned", "planned when found"],
                [
                    [k, v["planned"], v["found_when_planned"], v["planned_when_found"]]
                    for k, v in j["per_label"].items()
                ],
            )
            + [""]
        )
    cost = report["cost"]
    lines += [
        "## Cost",
        "",
        f"Tokens in / out: {cost['tokens_in']} / {cost['tokens_out']}; per kept sample: "
        f"{cost['tokens_in_per_kept']} / {cost['tokens_out_per_kept']}.",
        "",
    ]
    lines += ["## Examples", ""]
    for lang, examples in report["examples"].items():
        lines += [f"- **{lang}** `{e['id']}` {e['labels'] or ['neutral']}: {e['text']}" for e in examples]
    return "\n".join(lines) + "\n"


def write_report(report: Mapping[str, Any], out: Path, plots: bool = True) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "generation_report.json").write_text(
        json.dumps(report, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    (out / "generation_report.md").write_text(markdown(report), encoding="utf-8")
    if plots:
        from mmaff.synth.plots import write_plots

        write_plots(report, out / "plots")
