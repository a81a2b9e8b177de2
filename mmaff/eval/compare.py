"""Side-by-side reports of several scored runs (their metrics.json files, as `mmaff.eval.score` writes them).

    python -m mmaff.report --compare runA/metrics.json runB/metrics.json --out DIR [--names a,b] [--allow-mixed]

writes ``DIR/comparison.md`` (models as columns: per task its primary metric, then the chance-normalised overall
per task group, then per-language tables of the multilingual tasks) and ``DIR/comparison.png`` (grouped bars per
task). Runs scored on different corpus builds, splits or decoding settings are refused unless ``allow_mixed``;
then the table names each difference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONSTANT = "n/a (constant)"


class CompareError(ValueError):
    """Runs that cannot be compared as given (names what differs)."""


@dataclass(frozen=True)
class Run:
    name: str
    path: Path
    report: dict[str, Any]


def load_runs(paths: list[str | Path], names: list[str] | None = None) -> list[Run]:
    """The metrics.json files, named by `names` or else by their folder names (made unique by position)."""
    if len(paths) < 2:
        raise CompareError("a comparison needs at least two metrics.json files")
    if names is not None and len(names) != len(paths):
        raise CompareError(f"{len(names)} names for {len(paths)} runs")
    chosen = names or [Path(p).parent.name or f"run{i + 1}" for i, p in enumerate(paths)]
    if len(set(chosen)) < len(chosen):
        chosen = [f"{i + 1}:{name}" for i, name in enumerate(chosen)]
    return [
        Run(name, Path(path), json.loads(Path(path).read_text(encoding="utf-8"))) for name, path in zip(chosen, paths)
    ]


def _settings(report: dict[str, Any]) -> dict[str, Any]:
    """What must match for two runs to be comparable: the corpus build, the split and the decoding."""
    run = report.get("run") or {}
    return {
        "corpus build (manifest sha256)": report["corpus"]["corpus_sha256"],
        "split": run.get("split", "not recorded"),
        "decoding": run.get("decoding", "not recorded"),
    }


def differences(runs: list[Run]) -> dict[str, dict[str, Any]]:
    """Setting -> run name -> value, for every setting on which the runs differ."""
    settings = {run.name: _settings(run.report) for run in runs}
    differing = {}
    for key in settings[runs[0].name]:
        values = {name: s[key] for name, s in settings.items()}
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            differing[key] = values
    return differing


def check_comparable(runs: list[Run], *, allow_mixed: bool) -> dict[str, dict[str, Any]]:
    """The runs' differences; an error naming them unless `allow_mixed`."""
    differing = differences(runs)
    if differing and not allow_mixed:
        described = "; ".join(
            f"{key}: " + ", ".join(f"{name}={_short_value(v)}" for name, v in values.items())
            for key, values in differing.items()
        )
        raise CompareError(f"the runs are not comparable ({described}); pass --allow-mixed to compare them anyway")
    return differing


def _short_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text[:12] if len(text) == 64 else text


# ------------------------------------------------------------------------------------------------ cells


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _is_constant(result: dict[str, Any] | None, metric: str) -> bool:
    return bool(result) and metric in ("pearson", "spearman") and bool(result.get("constant_prediction"))


def primary_number(entry: dict[str, Any] | None) -> float | None:
    """A task's primary value; a joint task (primary "per_part") is compared on its chance-normalised mean over
    parts, as the overall score uses it."""
    if entry is None:
        return None
    if entry["target_type"] == "joint":
        return (entry.get("against_chance") or {}).get("chance_normalised")
    return entry.get("primary_value")


def compared_cell(entry: dict[str, Any] | None) -> str:
    """A task's primary value as results.md shows it (a constant prediction's Pearson is not a score)."""
    if entry is None:
        return "not scored"
    return _fmt(primary_number(entry)) if entry["target_type"] == "joint" else task_primary_cell(entry)


def _primary_label(entry: dict[str, Any]) -> str:
    return "chance-normalised mean over parts" if entry["target_type"] == "joint" else entry["primary"]


def fmt_metric(result: dict[str, Any] | None, name: str, value: Any = None) -> str:
    """A metric of a result; a correlation of a constant prediction is no score (the metric's 0.0 is the
    official scorer's convention), so it reads "n/a (constant)". `value` overrides the result's own."""
    if result and name in ("pearson", "spearman") and result.get("constant_prediction"):
        return CONSTANT
    return _fmt(result.get(name) if value is None and result else value)


def task_primary_cell(entry: dict[str, Any]) -> str:
    """The primary value; "n/a (constant)" where it is the correlation of a constant prediction (an EI task's
    official headline is a mean over emotions, where a constant cell counts 0 as in the official scorer)."""
    corrected = entry.get("corrected", {})
    official = corrected.get("official")
    if official:
        every_cell_constant = len(official["constant_prediction_cells"]) == len(official["cells"])
        return CONSTANT if every_cell_constant else _fmt(entry.get("primary_value"))
    return fmt_metric(corrected.get("pooled"), entry["primary"], entry.get("primary_value"))


def _task_names(runs: list[Run]) -> list[str]:
    names: list[str] = []
    for run in runs:
        names += [name for name in run.report["tasks"] if name not in names]
    return names


def _row(label: str, cells: list[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


# ------------------------------------------------------------------------------------------------ markdown


def comparison_markdown(runs: list[Run], differing: dict[str, dict[str, Any]]) -> str:
    header = _row("", [run.name for run in runs])
    align = "|---|" + "---:|" * len(runs)
    lines = ["# Model comparison (corrected mode)", ""]
    lines += [f"- `{run.name}`: `{run.path}`; models {', '.join(run.report['rows']['models']) or '–'}" for run in runs]
    corpus = runs[0].report["corpus"]
    lines.append(f"- Corpus `{corpus['corpus']}` (manifest sha256 `{corpus['corpus_sha256'][:12]}`)")
    if differing:
        lines += ["", "**MIXED RUNS** (compared with --allow-mixed; the figures are not like for like):", ""]
        for key, values in differing.items():
            lines.append(f"- {key} differs: " + "; ".join(f"`{n}` {_short_value(v)}" for n, v in values.items()))
    lines += ["", "## Primary metric per task", "", _row("task (primary)", [r.name for r in runs]), align]
    for task in _task_names(runs):
        entries = [run.report["tasks"].get(task) for run in runs]
        label = _primary_label(next(e for e in entries if e))
        lines.append(_row(f"{task} ({label})", [compared_cell(e) for e in entries]))
    lines += ["", "## Overall: mean chance-normalised headline per task group", "", header, align]
    groups = sorted({g for run in runs for g in run.report.get("overall", {})})
    for group in groups:
        cells = [_fmt((run.report.get("overall", {}).get(group) or {}).get("mean_chance_normalised")) for run in runs]
        lines.append(_row(group, cells))
    lines += _language_tables(runs)
    return "\n".join(lines) + "\n"


def _language_tables(runs: list[Run]) -> list[str]:
    """Per multilingual task: its primary metric per language, models side by side."""
    from mmaff.eval.metrics import metric_value

    lines: list[str] = []
    for task in _task_names(runs):
        entries = [run.report["tasks"].get(task) for run in runs]
        per_language = [(e or {}).get("corrected", {}).get("per_language") or {} for e in entries]
        languages = sorted({lang for block in per_language for lang in block})
        if not languages or any(e and e["target_type"] == "joint" for e in entries):
            continue
        primary = next(e["primary"] for e in entries if e)
        lines += ["", f"## {task}: {primary} per language", "", _row("language", [r.name for r in runs])]
        lines.append("|---|" + "---:|" * len(runs))
        officials = [(e or {}).get("corrected", {}).get("official") for e in entries]
        for language in languages:
            cells = []
            for block, official in zip(per_language, officials):
                result = block.get(language)
                if official:  # SemEval EI: the official per-language mean of per-emotion Pearsons
                    cells.append(_fmt(official["per_language"].get(language)))
                    continue
                value = metric_value(result, primary) if result else None
                cells.append(CONSTANT if _is_constant(result, primary) else _fmt(value))
            lines.append(_row(language, cells))
        macros = [
            official["headline"] if official else (e or {}).get("corrected", {}).get("language_macro", {}).get(primary)
            for e, official in zip(entries, officials)
        ]
        lines.append(_row("macro over languages", [_fmt(m) for m in macros]))
    return lines


# ------------------------------------------------------------------------------------------------ writing


def comparison_plot(runs: list[Run], path: Path) -> Path:
    from mmaff.eval.plots import comparison_figure, save_png

    tasks = _task_names(runs)
    values = [[primary_number(run.report["tasks"].get(t)) for t in tasks] for run in runs]
    return save_png(comparison_figure(tasks, [run.name for run in runs], values), path)


def write_comparison(
    paths: list[str | Path], out: str | Path, *, names: list[str] | None = None, allow_mixed: bool = False
) -> list[Path]:
    """comparison.md and comparison.png of the runs into `out`; a `CompareError` for runs that do not compare."""
    runs = load_runs(paths, names)
    differing = check_comparable(runs, allow_mixed=allow_mixed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table = out / "comparison.md"
    table.write_text(comparison_markdown(runs, differing), encoding="utf-8")
    return [table, comparison_plot(runs, out / "comparison.png")]
