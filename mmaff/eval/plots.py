"""PNG plots for evaluation reports: confusion matrices, predicted-vs-gold views, per-label and per-group bars.

One task's plots from its scored items (`mmaff.eval.items.Item`), the parsed value of each item (None = the reply
could not be parsed) and the task's corrected-mode result (`mmaff.eval.score.score_corrected`):

* ``single``: confusion matrix over the fixed label list plus an ``invalid`` column (unparsed or out-of-space
  predictions, as `mmaff.eval.metrics.single_label` counts them); rows = gold, colour = share of the gold row.
* ``multi``: per-label TP / FN / FP stacked bars (same counting rules as `mmaff.eval.metrics.multi_label`: an
  invalid row predicts no label, out-of-space labels are dropped) next to the per-label F1.
* ``real``: predicted-vs-gold scatter with the y = x diagonal; failed parses are drawn at the value the
  corrected mode imputes them to (red crosses) and counted in the title, with the pooled Pearson r; a reply far
  off the scale (85 on 0-1) is drawn at the plot's edge (`OFF_SCALE_REACH`) and counted in the legend.
* ``ordinal``: count heatmap of predicted class vs gold class (x = gold, y = predicted, one extra ``invalid``
  row), diagonal drawn, Pearson r in the title.
* ``vad``: one scatter panel per dimension.
* ``joint``: each part plotted by its own type, one file per part.
* ``open``: no value plot (free text); only the per-language bars.
* per-language / per-emotion bars of the primary metric when the result has ``per_language`` /
  ``per_emotion``, with a line at the pooled value.

Plots are drawn with the object-oriented API (`Figure` + the Agg canvas; pyplot is never imported, so no
global figure state) under matplotlib's default style, at a fixed size per plot kind and a fixed dpi, and saved
without the ``Software`` PNG tag: the same inputs give byte-identical files. File names are
``<task>.<kind>.png`` (joint parts: ``<task>.<part>.<kind>.png``) with the task name made filesystem-safe
(`safe_name`: ``semeval2018/V-reg>E-c`` -> ``semeval2018__V-reg_to_E-c``).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmaff.eval.metrics import CHANCE_METRIC, metric_value
from mmaff.eval.tasks import EvalTask

DPI = 100
INVALID_LABEL = "invalid"
MAX_TICK_CHARS = 16
OFF_SCALE_REACH = 0.25  # scatters show predictions up to this share of the scale's range beyond it
ANNOTATE_MAX_CELLS = 13  # counts are written in the cells when the matrix has at most this many columns
PRIMARY_BY_TYPE = CHANCE_METRIC
"""The metric plotted per group for a joint task's part (a joint task's own primary is "per_part"): each part's
chance-comparable headline, as results.md and the overall score use it."""

_RC = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs everywhere
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "figure.titlesize": 11.0,
}
_NAME_REPLACEMENTS = (("/", "__"), (">", "_to_"), ("+", "_plus_"))
_COLORS = {"tp": "#4c9a2a", "fn": "#f0a030", "fp": "#c8433a", "point": "#2f6db5", "invalid": "#d62728"}


class TaskRows(NamedTuple):
    """What `write_all_plots` needs per task: items, their parsed values (None = failed), corrected result."""

    items: Sequence[Any]
    values: Sequence[Any]
    corrected: Mapping[str, Any]


# ------------------------------------------------------------------------------------------------ naming


def safe_name(name: str) -> str:
    """A task (or part) name as a file-name stem: "/" -> "__", ">" -> "_to_", "+" -> "_plus_", any other
    character outside [A-Za-z0-9._-] -> "_"; never empty, never starting with a dot."""
    for old, new in _NAME_REPLACEMENTS:
        name = name.replace(old, new)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return name if name and not name.startswith(".") else f"_{name}"


def _short(label: Any, limit: int = MAX_TICK_CHARS) -> str:
    text = str(label)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------------------ counting


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def confusion_counts(gold: Sequence[Hashable], pred: Sequence[Any], labels: Sequence[Hashable]) -> np.ndarray:
    """(k, k + 1) int counts: rows = gold labels in `labels` order, columns = predicted labels + one invalid
    column (a None prediction or one outside `labels`), as `mmaff.eval.metrics.single_label`'s ``confusion``.
    A gold value outside `labels` is a ValueError."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} items but predictions have {len(pred)}")
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    matrix = np.zeros((k, k + 1), dtype=np.int64)
    for g, p in zip(gold, pred):
        if not _hashable(g) or g not in index:
            raise ValueError(f"gold label {g!r} is not in the label list")
        column = index.get(p, k) if p is not None and _hashable(p) else k
        matrix[index[g], column] += 1
    return matrix


def multilabel_counts(
    gold: Sequence[Iterable[Hashable]], pred: Sequence[Iterable[Hashable] | None], labels: Sequence[Hashable]
) -> np.ndarray:
    """(L, 3) int counts [TP, FN, FP] per label, as `mmaff.eval.metrics.multi_label` counts them: a None row
    predicts nothing, out-of-space predicted labels are dropped, duplicates count once."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} items but predictions have {len(pred)}")
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), 3), dtype=np.int64)
    for g, p in zip(gold, pred):
        gold_set = {index[x] for x in g} if _all_in(g, index) else None
        if gold_set is None:
            raise ValueError(f"gold labels {g!r} are not all in the label list")
        pred_set = set() if p is None or isinstance(p, str) else {index[x] for x in p if _hashable(x) and x in index}
        for j in gold_set & pred_set:
            counts[j, 0] += 1
        for j in gold_set - pred_set:
            counts[j, 1] += 1
        for j in pred_set - gold_set:
            counts[j, 2] += 1
    return counts


def _all_in(row: Iterable[Any], index: Mapping[Any, int]) -> bool:
    return not isinstance(row, str) and all(_hashable(x) and x in index for x in row)


def ordinal_counts(gold: Sequence[int], pred: Sequence[Any], classes: Sequence[int]) -> np.ndarray:
    """(len(classes) + 1, len(classes)) counts: rows = predicted class with row 0 = invalid (None, not a
    number or not one of `classes`), then `classes` in order; columns = gold class."""
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} items but predictions have {len(pred)}")
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes) + 1, len(classes)), dtype=np.int64)
    for g, p in zip(gold, pred):
        if g not in index:
            raise ValueError(f"gold class {g!r} is not one of {list(classes)}")
        row = index[p] + 1 if _is_number(p) and p in index else 0
        matrix[row, index[g]] += 1
    return matrix


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


# ------------------------------------------------------------------------------------------------ drawing


def figure_size(kind: str, n: int = 0) -> tuple[float, float]:
    """Figure size in inches of a plot kind; `n` = labels (confusion, per_label), classes (heatmap),
    dimensions (vad) or bars (groups). Saved at `DPI`, so the PNG is ``round(w * DPI) x round(h * DPI)``."""
    if kind == "confusion":
        return (min(3.4 + 0.62 * (n + 1), 18.0), min(2.6 + 0.5 * n, 16.0))
    if kind == "per_label":
        return (9.0, min(1.7 + 0.28 * n, 16.0))
    if kind == "heatmap":
        return (min(3.6 + 0.62 * n, 14.0), min(2.9 + 0.5 * (n + 1), 12.0))
    if kind == "scatter":
        return (5.6, 5.2)
    if kind == "vad":
        return (3.9 * max(n, 1), 4.4)
    if kind == "groups":
        return (min(max(4.8, 1.8 + 0.62 * n), 16.0), 4.2)
    raise ValueError(f"unknown plot kind {kind!r}")


def _style() -> Any:
    """matplotlib's default style (not the user's matplotlibrc) plus `_RC`, for drawing and saving."""
    stack = contextlib.ExitStack()
    stack.enter_context(matplotlib.style.context("default"))
    stack.enter_context(matplotlib.rc_context(_RC))
    return stack


def _render(kind: str, n: int, draw: Any) -> Figure:
    """A new Agg-backed figure of `figure_size(kind, n)` drawn by `draw(figure)` (no pyplot, no global state)."""
    with _style():
        figure = Figure(figsize=figure_size(kind, n), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        draw(figure)
    return figure


def save_png(figure: Figure, path: Path) -> Path:
    """Save without the Software tag (matplotlib version), at `DPI`: identical bytes for identical figures."""
    with _style():
        figure.savefig(path, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _fmt(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else "n/a"


def _annotate_cells(axes: Any, counts: np.ndarray, shares: np.ndarray) -> None:
    for (row, column), count in np.ndenumerate(counts):
        if count:
            color = "white" if shares[row, column] > 0.55 else "black"
            axes.text(column, row, str(int(count)), ha="center", va="center", color=color, fontsize=8)


def confusion_figure(title: str, labels: Sequence[Any], counts: np.ndarray, pooled: Mapping) -> Figure:
    """The confusion-matrix figure of `confusion_counts` (its cell texts are the non-zero counts, row by row)."""
    k = len(labels)
    support = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, support, out=np.zeros(counts.shape), where=support > 0)
    invalid = int(counts[:, k].sum())
    n = int(counts.sum())

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        if k + 1 <= ANNOTATE_MAX_CELLS:
            _annotate_cells(axes, counts, shares)
        axes.axvline(k - 0.5, color="0.3", linewidth=1.0)
        axes.set_xticks(
            range(k + 1),
            [_short(x) for x in labels] + [INVALID_LABEL],
            rotation=45,
            ha="right",
            rotation_mode="anchor",
        )
        axes.set_yticks(range(k), [f"{_short(x)} ({int(s)})" for x, s in zip(labels, support[:, 0])])
        axes.set_xlabel("predicted")
        axes.set_ylabel("gold (count)")
        axes.set_title(
            f"{title}\nn={n}, invalid={invalid} · accuracy {_fmt(pooled.get('accuracy'))}"
            f" · macro-F1 {_fmt(pooled.get('macro_f1'))}"
        )
        figure.colorbar(image, ax=axes, shrink=0.8, label="share of gold row")

    return _render("confusion", k, draw)


def _per_label_plot(path: Path, title: str, labels: Sequence[Any], counts: np.ndarray, pooled: Mapping) -> Path:
    n_labels = len(labels)
    tp, fn, fp = counts[:, 0], counts[:, 1], counts[:, 2]
    per_label = pooled.get("per_label") or {}
    computed = np.divide(2 * tp, 2 * tp + fn + fp, out=np.zeros(n_labels), where=(2 * tp + fn + fp) > 0)
    reported = [metric_value(per_label.get(str(x)), "f1") for x in labels]
    f1 = np.array([c if r is None else r for r, c in zip(reported, computed)])

    def draw(figure: Figure) -> None:
        left, right = figure.subplots(1, 2, sharey=True, width_ratios=[3, 2])
        y = np.arange(n_labels)
        left.barh(y, tp, color=_COLORS["tp"], label="TP")
        left.barh(y, fn, left=tp, color=_COLORS["fn"], label="FN (missed)")
        left.barh(y, fp, left=tp + fn, color=_COLORS["fp"], label="FP (spurious)")
        left.set_yticks(y, [f"{_short(x)} ({int(a + b)})" for x, a, b in zip(labels, tp, fn)])
        left.invert_yaxis()
        left.set_xlabel("items")
        left.set_ylabel("label (gold count)")
        left.legend(loc="best", fontsize=8)
        left.xaxis.get_major_locator().set_params(integer=True)
        right.barh(y, f1, color=_COLORS["point"])
        macro = pooled.get("macro_f1")
        if _is_number(macro):
            right.axvline(macro, color="0.2", linestyle="--", linewidth=1.0, label=f"macro-F1 {macro:.3f}")
            right.legend(loc="lower right", fontsize=8)
        right.set_xlim(0.0, 1.0)
        right.set_xlabel("F1")
        figure.suptitle(
            f"{title}\nn={pooled.get('n', '?')}, invalid={pooled.get('invalid', '?')}"
            f" · jaccard {_fmt(pooled.get('jaccard'))} · micro-F1 {_fmt(pooled.get('micro_f1'))}"
        )

    return save_png(_render("per_label", n_labels, draw), path)


def _limits(space: Mapping, *arrays: np.ndarray) -> tuple[float, float]:
    values = [float(space["min"]), float(space["max"])] if {"min", "max"} <= set(space) else []
    for array in arrays:
        if array.size:
            values += [float(array.min()), float(array.max())]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return lo - pad, hi + pad


def _numeric_columns(
    gold: Sequence[Any], pred: Sequence[Any], impute: Any, space: Mapping
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """gold floats, predicted floats with invalid ones set to the imputed value, and the invalid mask."""
    g = np.array([float(x) for x in gold], dtype=float)
    invalid = np.array([not _is_number(x) for x in pred], dtype=bool)
    if not _is_number(impute):
        impute = (float(space["min"]) + float(space["max"])) / 2 if {"min", "max"} <= set(space) else 0.0
    p = np.array([float(x) if _is_number(x) else float(impute) for x in pred], dtype=float)
    return g, p, invalid


def _scatter_panel(
    axes: Any,
    gold: np.ndarray,
    pred: np.ndarray,
    invalid: np.ndarray,
    space: Mapping,
    impute: float,
    groups: Sequence[str] | None,
) -> None:
    if {"min", "max"} <= set(space):  # a wild reply (85 on a 0-1 scale) is drawn at the edge, not rescaling all
        low, high = float(space["min"]), float(space["max"])
        reach = OFF_SCALE_REACH * (high - low)
        shown = np.clip(pred, low - reach, high + reach)
    else:
        shown = pred
    off_scale = int((shown != pred).sum())
    pred = shown
    lo, hi = _limits(space, gold, pred)
    axes.plot([lo, hi], [lo, hi], color="0.55", linestyle="--", linewidth=1.0, zorder=1)
    n = len(gold)
    alpha = 0.8 if n <= 200 else max(0.15, 0.8 * math.sqrt(200 / n))
    size = 18 if n <= 200 else 8
    valid = ~invalid
    if groups is not None and len(set(groups)) > 1:
        names = sorted(set(groups))
        labels = np.array(list(groups), dtype=object)
        for i, name in enumerate(names):
            mask = valid & (labels == name)
            axes.scatter(gold[mask], pred[mask], s=size, alpha=alpha, color=f"C{i % 10}", label=_short(name), zorder=2)
    else:
        axes.scatter(gold[valid], pred[valid], s=size, alpha=alpha, color=_COLORS["point"], label="parsed", zorder=2)
    if invalid.any():
        axes.scatter(
            gold[invalid],
            pred[invalid],
            s=size * 1.6,
            marker="x",
            color=_COLORS["invalid"],
            label=f"failed ({int(invalid.sum())}) at imputed {impute:.3g}",
            zorder=3,
        )
    if off_scale:
        axes.plot([], [], " ", label=f"{off_scale} off-scale, drawn at the edge")
    axes.set_xlim(lo, hi)
    axes.set_ylim(lo, hi)
    axes.set_aspect("equal", adjustable="box")
    axes.set_xlabel("gold")
    axes.set_ylabel("predicted")
    axes.legend(loc="upper left", fontsize=7)


def _impute_value(result: Mapping, space: Mapping) -> float:
    value = result.get("imputed_value")
    if _is_number(value):
        return float(value)
    return (float(space["min"]) + float(space["max"])) / 2 if {"min", "max"} <= set(space) else 0.0


def _scatter_plot(
    path: Path, title: str, space: Mapping, gold: Sequence, pred: Sequence, pooled: Mapping, groups: Sequence | None
) -> Path:
    impute = _impute_value(pooled, space)
    g, p, invalid = _numeric_columns(gold, pred, impute, space)

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        _scatter_panel(axes, g, p, invalid, space, impute, groups)
        axes.set_title(
            f"{title}\nn={len(g)}, failed={int(invalid.sum())} (imputed) · Pearson r {_fmt(pooled.get('pearson'))}"
            f" · MAE {_fmt(pooled.get('mae'))}"
        )

    return save_png(_render("scatter", 0, draw), path)


def _ordinal_plot(path: Path, title: str, space: Mapping, gold: Sequence, pred: Sequence, pooled: Mapping) -> Path:
    classes = list(range(int(space["min"]), int(space["max"]) + 1))
    names = space.get("classes") or {}
    counts = ordinal_counts(gold, pred, classes)
    support = counts.sum(axis=0, keepdims=True)
    shares = np.divide(counts, support, out=np.zeros(counts.shape), where=support > 0)
    k = len(classes)
    tick_names = [_short(f"{c}: {names[str(c)]}" if str(c) in names else str(c), 22) for c in classes]
    invalid = int(counts[0].sum())

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        image = axes.imshow(
            shares, cmap="Blues", vmin=0.0, vmax=1.0, origin="lower", aspect="auto", interpolation="nearest"
        )
        if k <= ANNOTATE_MAX_CELLS:
            _annotate_cells(axes, counts, shares)
        axes.plot([-0.5, k - 0.5], [0.5, k + 0.5], color="0.4", linestyle="--", linewidth=1.0, alpha=0.6)
        axes.axhline(0.5, color="0.3", linewidth=1.0)
        axes.set_xlim(-0.5, k - 0.5)
        axes.set_ylim(-0.5, k + 0.5)
        axes.set_xticks(
            range(k),
            [f"{t} ({int(s)})" for t, s in zip(tick_names, support[0])],
            rotation=45,
            ha="right",
            rotation_mode="anchor",
        )
        axes.set_yticks(range(k + 1), [f"{INVALID_LABEL} (→{_fmt(_impute_value(pooled, space), 2)})"] + tick_names)
        axes.set_xlabel("gold (count)")
        axes.set_ylabel("predicted")
        axes.set_title(
            f"{title}\nn={int(counts.sum())}, failed={invalid} (imputed) · Pearson r {_fmt(pooled.get('pearson'))}"
            f" · accuracy {_fmt(pooled.get('accuracy'))}"
        )
        figure.colorbar(image, ax=axes, shrink=0.8, label="share of gold column")

    return save_png(_render("heatmap", k, draw), path)


def _vad_plot(path: Path, title: str, space: Mapping, gold: Sequence, pred: Sequence, pooled: Mapping) -> Path:
    dims = list(space["dims"])

    def draw(figure: Figure) -> None:
        panels = np.atleast_1d(figure.subplots(1, len(dims)))
        for axes, dim in zip(panels, dims):
            result = pooled.get(dim) if isinstance(pooled.get(dim), Mapping) else {}
            impute = _impute_value(result, space)
            column = [None if not isinstance(row, Mapping) else row.get(dim) for row in pred]
            g, p, invalid = _numeric_columns([row[dim] for row in gold], column, impute, space)
            _scatter_panel(axes, g, p, invalid, space, impute, None)
            axes.set_title(f"{dim}: r {_fmt(result.get('pearson'))}, failed={int(invalid.sum())}")
        figure.suptitle(
            f"{title}\nn={len(gold)}, invalid={pooled.get('invalid', '?')} · mean Pearson "
            f"{_fmt(pooled.get('pearson_mean'))}"
        )

    return save_png(_render("vad", len(dims), draw), path)


def group_bars_figure(
    title: str, metric: str, groups: Mapping[str, Any], pooled: Mapping, what: str, extra: Mapping | None = None
) -> Figure | None:
    """Bars of `metric` (found with `mmaff.eval.metrics.metric_value`) per group (`groups`: name -> result, in
    order), a dashed line at the pooled value and dotted lines for `extra` (label -> value); None when no
    group has the metric. A group without it gets an empty bar labelled n/a."""
    extra = extra or {}
    names = list(groups)
    values = [metric_value(groups[name], metric) for name in names]
    if all(v is None for v in values):
        return None
    pooled_value = metric_value(pooled, metric)

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        x = np.arange(len(names))
        heights = [0.0 if v is None else v for v in values]
        bars = axes.bar(x, heights, color=_COLORS["point"], width=0.6)
        axes.set_xlim(-0.8, max(len(names), 2) - 0.2)
        for bar, value, name in zip(bars, values, names):
            n = groups[name].get("n") if isinstance(groups[name], Mapping) else None
            text = f"{_fmt(value)}\nn={n}" if n is not None else _fmt(value)
            top = max(bar.get_height(), 0.0)
            axes.text(bar.get_x() + bar.get_width() / 2, top + 0.02, text, ha="center", va="bottom", fontsize=7)
        if pooled_value is not None:
            axes.axhline(pooled_value, color="0.15", linestyle="--", linewidth=1.0, label=f"pooled {pooled_value:.3f}")
        for i, (label, value) in enumerate(extra.items()):
            if _is_number(value):
                axes.axhline(value, color=f"C{i + 1}", linestyle=":", linewidth=1.2, label=f"{label} {value:.3f}")
        low = min([0.0] + [v for v in values if v is not None] + ([pooled_value] if pooled_value is not None else []))
        axes.set_ylim(low - 0.1 if low < 0 else 0.0, 1.15)
        axes.axhline(0.0, color="0.6", linewidth=0.6)
        if len(names) > 6:
            axes.set_xticks(x, [_short(n) for n in names], rotation=45, ha="right", rotation_mode="anchor")
        else:
            axes.set_xticks(x, [_short(n) for n in names])
        axes.set_ylabel(metric)
        axes.set_xlabel(what)
        if axes.get_legend_handles_labels()[0]:
            figure.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
        axes.set_title(f"{title}\n{metric} per {what}")

    return _render("groups", len(names), draw)


def comparison_figure(tasks: Sequence[str], models: Sequence[str], values: Sequence[Sequence[float | None]]) -> Figure:
    """Grouped bars of several models' primary metrics: one group per task, one bar per model (`values[m][t]`);
    an undefined value is an empty bar labelled n/a."""
    if not tasks or not models:
        raise ValueError("nothing to compare")
    width = 0.8 / len(models)

    def draw(figure: Figure) -> None:
        axes = figure.add_subplot()
        x = np.arange(len(tasks))
        for m, model in enumerate(models):
            heights = [0.0 if v is None else v for v in values[m]]
            bars = axes.bar(x - 0.4 + width * (m + 0.5), heights, width=width, color=f"C{m}", label=model)
            for bar, value in zip(bars, values[m]):
                top = max(bar.get_height(), 0.0)
                axes.text(bar.get_x() + bar.get_width() / 2, top + 0.02, _fmt(value, 2), ha="center", fontsize=6)
        defined = [v for row in values for v in row if v is not None]
        low = min([0.0, *defined])
        axes.set_ylim(low - 0.1 if low < 0 else 0.0, 1.15)
        axes.axhline(0.0, color="0.6", linewidth=0.6)
        axes.set_xticks(x, [_short(t, 24) for t in tasks], rotation=45, ha="right", rotation_mode="anchor")
        axes.set_ylabel("primary metric (corrected mode)")
        figure.legend(loc="outside lower center", ncols=min(len(models), 4), fontsize=8, frameon=False)
        axes.set_title("Model comparison: primary metric per task")

    return _render("groups", len(tasks) * max(1, len(models) // 2), draw)


# ------------------------------------------------------------------------------------------------ task plots


def _part_result(corrected: Mapping[str, Any], part: str) -> dict[str, Any]:
    """A joint task's corrected result restricted to one part (pooled and per group)."""
    out: dict[str, Any] = {"n": corrected.get("n"), "pooled": (corrected.get("pooled") or {}).get(part) or {}}
    for key in ("per_language", "per_emotion"):
        if isinstance(corrected.get(key), Mapping):
            out[key] = {g: r.get(part) or {} for g, r in corrected[key].items() if isinstance(r, Mapping)}
    return out


def _plots(
    out_dir: Path,
    stem: str,
    title: str,
    target_type: str,
    space: Any,
    gold: list[Any],
    values: list[Any],
    corrected: Mapping[str, Any],
    primary: str,
    emotions: list[str] | None,
) -> list[Path]:
    pooled = corrected.get("pooled") or {}
    paths: list[Path] = []
    if target_type == "joint":
        for part, kind in space["types"].items():
            part_values = [v.get(part) if isinstance(v, Mapping) else None for v in values]
            paths += _plots(
                out_dir,
                f"{stem}.{safe_name(part)}",
                f"{title} [{part}]",
                kind,
                space["parts"][part],
                [g[part] for g in gold],
                part_values,
                _part_result(corrected, part),
                PRIMARY_BY_TYPE.get(kind, ""),
                emotions,
            )
        return paths
    if target_type == "single":
        labels = list(space["labels"])
        counts = confusion_counts(gold, values, labels)
        paths.append(save_png(confusion_figure(title, labels, counts, pooled), out_dir / f"{stem}.confusion.png"))
    elif target_type == "multi":
        labels = list(space["labels"])
        counts = multilabel_counts(gold, values, labels)
        paths.append(_per_label_plot(out_dir / f"{stem}.per_label.png", title, labels, counts, pooled))
    elif target_type == "real":
        paths.append(_scatter_plot(out_dir / f"{stem}.scatter.png", title, space, gold, values, pooled, emotions))
    elif target_type == "ordinal":
        paths.append(_ordinal_plot(out_dir / f"{stem}.heatmap.png", title, space, gold, values, pooled))
    elif target_type == "vad":
        paths.append(_vad_plot(out_dir / f"{stem}.vad.png", title, space, gold, values, pooled))
    elif target_type != "open":
        raise ValueError(f"no plots for target type {target_type!r}")
    for key, what in (("per_language", "language"), ("per_emotion", "emotion")):
        groups = corrected.get(key)
        if isinstance(groups, Mapping) and groups:
            extra = {}
            if key == "per_emotion" and _is_number(corrected.get("emotion_mean_pearson")) and primary == "pearson":
                extra["mean over emotions"] = corrected["emotion_mean_pearson"]
            figure = group_bars_figure(title, primary, groups, pooled, what, extra)
            if figure is not None:
                paths.append(save_png(figure, out_dir / f"{stem}.{key}.png"))
    return paths


def write_task_plots(
    out_dir: Path, task: EvalTask, items: Sequence[Any], values: Sequence[Any], corrected: Mapping[str, Any]
) -> list[Path]:
    """Write the PNG plots of one task into `out_dir` (created) and return their paths (empty for no items).

    `items` are `mmaff.eval.items.Item`s of the task (gold, label_space, language, emotion), `values[i]` the
    parsed value of `items[i]` (None = failed parse) and `corrected` the task's `score_corrected` result.
    Files: ``<safe task>.confusion.png`` (single), ``.per_label.png`` (multi), ``.scatter.png`` (real),
    ``.heatmap.png`` (ordinal), ``.vad.png`` (vad), joint parts as ``<safe task>.<part>.<kind>.png``; plus
    ``.per_language.png`` / ``.per_emotion.png`` when `corrected` has those groups and they hold the primary
    metric (`task.primary`; a joint part's: `PRIMARY_BY_TYPE` of its type).
    """
    if len(items) != len(values):
        raise ValueError(f"{task.name}: {len(items)} items but {len(values)} values")
    if not items:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    emotions = [item.emotion or "?" for item in items] if "emotion" in task.group_by else None
    return _plots(
        out_dir,
        safe_name(task.name),
        task.name,
        task.target_type,
        items[0].label_space,
        [item.gold for item in items],
        list(values),
        corrected,
        task.primary,
        emotions,
    )


def write_all_plots(
    out_dir: Path,
    tasks: Mapping[str, EvalTask],
    rows_by_task: Mapping[str, TaskRows | tuple[Sequence[Any], Sequence[Any], Mapping[str, Any]]],
    *,
    relative_to: Path | None = None,
) -> dict[str, list[str]]:
    """Plots of every task of `tasks` that has rows (``(items, values, corrected)``) in `rows_by_task`, in
    `tasks` order; returns task name -> file paths relative to `relative_to` (default `out_dir`), POSIX style.
    Two task names that map to the same file stem are a ValueError (nothing would be overwritten silently)."""
    out_dir = Path(out_dir)
    base = Path(relative_to) if relative_to is not None else out_dir
    stems: dict[str, str] = {}
    for name in tasks:
        if name in rows_by_task:
            stem = safe_name(name)
            if stem in stems:
                raise ValueError(f"tasks {stems[stem]!r} and {name!r} share the file name {stem!r}")
            stems[stem] = name
    written: dict[str, list[str]] = {}
    for name, task in tasks.items():
        if name not in rows_by_task:
            continue
        items, values, corrected = rows_by_task[name]
        paths = write_task_plots(out_dir, task, items, values, corrected)
        written[name] = [Path(path).resolve().relative_to(base.resolve()).as_posix() for path in paths]
    return written
