"""Metrics for the "corrected" evaluation mode.

Pure functions over plain Python lists: no I/O, no pandas. Every function returns a plain dict of
floats / ints / strings / lists (JSON-serialisable) and never NaN: an undefined value is ``None`` next
to an explicit flag. A prediction of ``None`` means "the answer could not be parsed" (``Parsed.status ==
"failed"`` in :mod:`mmaff.data.answers`). Corrected-mode rules (see research/eval.md, "Evaluation pitfalls"):

* **Fixed label spaces.** Classification metrics are computed over the label list passed in (the
  dataset's official ``label_space``), never over labels inferred from the data, so an invalid or stray
  prediction can never become a class (pitfall 6). Macro averages use ``zero_division=0``: a label with no
  gold and no predicted instance scores 0, not 1 (pitfall 8).
* **Invalid = wrong.** Single-label: a failed parse or a label outside the list is a wrong prediction
  (false negative for the gold class, false positive for no class). Multi-label: an invalid row predicts
  no label (so every gold label is a false negative) and its sample-Jaccard is 0 even when the gold set
  is empty. Correlations: invalid predictions are imputed with a value the caller passes (the train-split
  mean of the gold values, pitfall 3) and counted. The ``invalid`` count is always reported.
* **Constant inputs.** If predictions or gold are constant (max == min), Pearson/Spearman are 0.0 with
  ``constant_prediction`` / ``constant_gold`` set, as in the SemEval-2018 official scorer (pitfall 11).
* **Multi-label accuracy** is SemEval-2018 E-c's sample-wise Jaccard (|G∩P| / |G∪P| per item, 1.0 when
  both are empty), not scikit-learn's support-weighted label Jaccard that MMAFFBen calls "acc" (pitfall 7).
* **Aggregates are explicit.** :func:`per_group_mean` (e.g. the mean of the four EI per-emotion Pearsons)
  and :func:`language_macro` (unweighted mean over languages); the pooled score is the same metric called
  on all rows (pitfall 15).
* **Open vocabulary** (MASIVE): Acc@k with exact match (MASIVE's official rule) and with a normalised match
  (case, accents, punctuation, Spanish gender/number endings) (pitfall 19).

Counts-based metrics (P/R/F1) are computed from numpy confusion counts with the same formulas and
``zero_division`` semantics as ``sklearn.metrics.precision_recall_fscore_support``; ranking metrics call
scikit-learn, except LRAP, which is a vectorised re-implementation of
``sklearn.metrics.label_ranking_average_precision_score`` (sklearn's loops in Python: ~2 s on 13k rows).
The tests check both against scikit-learn.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

INVALID = "<invalid>"
"""Name of the extra confusion-matrix column that collects invalid (unparsed or out-of-space) predictions."""

_LRAP_CHUNK = 4096


# ---------------------------------------------------------------- the metric registry


@dataclass(frozen=True)
class TargetMetrics:
    """The scoring function of one target type and the metrics a task file may declare for it. Each declared name
    is a key of the function's result, so a task's `metrics` / `primary` are read back with no translation.

    `supplementary`: figures the scorer adds to the same result from other inputs (gold-answer likelihoods, an
    embedding model), present only when those are given. They are never declarable, so never a task's primary or
    chance-normalised headline. `lower_is_better`: the names (declared or supplementary) where a smaller value is
    the better model (NLL); a report that ranks or compares models reads it through `lower_is_better`."""

    target_type: str
    function: Callable[..., dict]
    metrics: tuple[str, ...]
    supplementary: tuple[str, ...] = ()
    lower_is_better: frozenset[str] = frozenset()


METRICS: dict[str, TargetMetrics] = {}
"""target type -> its scoring function and declarable metric names (filled by `declares`)."""


def declares(
    target_type: str, *metrics: str, supplementary: tuple[str, ...] = (), lower_is_better: tuple[str, ...] = ()
) -> Callable[[Callable[..., dict]], Callable[..., dict]]:
    """Register `function` as the scoring function of `target_type`, whose result holds each of `metrics` (the
    names task files use) as a key; `supplementary` and `lower_is_better` as in `TargetMetrics`."""
    unknown = set(lower_is_better) - set(metrics) - set(supplementary)
    if unknown:
        raise ValueError(f"lower_is_better names {sorted(unknown)} that {target_type!r} does not report")

    def register(function: Callable[..., dict]) -> Callable[..., dict]:
        if target_type in METRICS:
            raise ValueError(f"target type {target_type!r} already has {METRICS[target_type].function.__name__}")
        METRICS[target_type] = TargetMetrics(
            target_type, function, metrics, tuple(supplementary), frozenset(lower_is_better)
        )
        return function

    return register


def lower_is_better(target_type: str, name: str) -> bool:
    """Whether a smaller `name` is the better model for `target_type` (NLL, log-perplexity); False for the rest."""
    entry = METRICS.get(target_type)
    return entry is not None and name in entry.lower_is_better


# ---------------------------------------------------------------- helpers


def _check_lengths(gold: Sequence[Any], pred: Sequence[Any]) -> int:
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} items but predictions have {len(pred)}")
    if not gold:
        raise ValueError("nothing to score: empty input")
    return len(gold)


def _label_index(labels: Sequence[Hashable]) -> dict[Hashable, int]:
    index = {label: i for i, label in enumerate(labels)}
    if len(index) != len(labels):
        raise ValueError(f"duplicate labels in {list(labels)!r}")
    if not index:
        raise ValueError("empty label list")
    return index


def _gold_index(value: Hashable, index: Mapping[Hashable, int]) -> int:
    try:
        return index[value]
    except (KeyError, TypeError):
        raise ValueError(f"gold label {value!r} is not in the label list") from None


def _col(index: Mapping[Hashable, int], label: Any) -> int:
    """Position of ``label`` in the label list, -1 when absent or unhashable."""
    try:
        return index.get(label, -1)
    except TypeError:
        return -1


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0.0 where den == 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-label precision, recall, F1 from counts, with zero_division=0 (as sklearn: F1 = 2tp / (2tp+fp+fn))."""
    return _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)


def _micro_prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[float, float, float]:
    p, r, f = _prf(np.array([tp.sum()]), np.array([fp.sum()]), np.array([fn.sum()]))
    return float(p[0]), float(r[0]), float(f[0])


def _per_label(
    labels: Sequence[Hashable], p: np.ndarray, r: np.ndarray, f: np.ndarray, support: np.ndarray, predicted: np.ndarray
) -> dict[str, dict[str, float | int]]:
    return {
        str(label): {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
            "predicted": int(predicted[i]),
        }
        for i, label in enumerate(labels)
    }


def _lookup(result: Mapping[str, Any], key: str) -> float:
    """result[key], where a dotted key walks nested dicts ("valence.pearson"); None or missing raises."""
    value: Any = result
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"{key!r} not found in result")
        value = value[part]
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{key!r} is {value!r}, not a finite number; cannot average it")
    return float(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- single-label classification


@declares("single", "accuracy", "macro_f1", "micro_f1")
def single_label(gold: Sequence[Hashable], pred: Sequence[Hashable | None], labels: Sequence[Hashable]) -> dict:
    """Single-label classification scores over a FIXED label list.

    Conventions:
    - ``accuracy`` = correct / n. An invalid prediction (``None``) or a prediction that is not in
      ``labels`` ("out of space") is wrong; both are counted in ``invalid`` (``out_of_space`` counts the
      latter alone).
    - Invalid predictions are mapped to a sentinel that is not a class: it is a false negative for the gold
      class and a false positive for no class, and it adds no column to any average.
    - ``macro_f1`` = unweighted mean of the per-label F1 over all of ``labels`` (including labels absent
      from gold and predictions), ``zero_division=0``; identical to
      ``f1_score(gold, pred, labels=labels, average="macro", zero_division=0)`` with invalids mapped to a
      value outside ``labels``. ``macro_precision`` / ``macro_recall`` likewise.
    - ``micro_f1`` over ``labels``: TP = correct, FP = wrong in-space predictions, FN = n - correct. So
      micro-recall == accuracy, and micro-F1 == accuracy only when nothing is invalid.
    - ``per_label``: precision, recall, F1, support (gold count) and predicted count, keyed by ``str(label)``.
    - ``confusion``: rows = gold ``labels``, columns = ``labels`` + [:data:`INVALID`], counts.

    Gold values must be in ``labels`` (ValueError otherwise); ``labels`` may be str or int (ordinal classes).
    """
    n = _check_lengths(gold, pred)
    index = _label_index(labels)
    k = len(labels)
    g = np.fromiter((_gold_index(x, index) for x in gold), dtype=np.int64, count=n)
    out_of_space = 0
    p = np.empty(n, dtype=np.int64)
    for i, x in enumerate(pred):
        j = k if x is None else _col(index, x)
        if j < 0:
            out_of_space += 1
            j = k
        p[i] = j
    confusion = np.bincount(g * (k + 1) + p, minlength=k * (k + 1)).reshape(k, k + 1)
    tp = np.diag(confusion[:, :k])
    support = confusion.sum(axis=1)
    predicted = confusion[:, :k].sum(axis=0)
    fp, fn = predicted - tp, support - tp
    prec, rec, f1 = _prf(tp, fp, fn)
    micro_p, micro_r, micro_f = _micro_prf(tp, fp, fn)
    invalid = int(confusion[:, k].sum())
    return {
        "n": n,
        "accuracy": float(tp.sum() / n),
        "macro_f1": float(f1.mean()),
        "macro_precision": float(prec.mean()),
        "macro_recall": float(rec.mean()),
        "micro_f1": micro_f,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "invalid": invalid,
        "out_of_space": out_of_space,
        "invalid_rate": invalid / n,
        "labels": [str(label) for label in labels],
        "per_label": _per_label(labels, prec, rec, f1, support, predicted),
        "confusion": {
            "rows": [str(label) for label in labels],
            "columns": [str(label) for label in labels] + [INVALID],
            "matrix": confusion.tolist(),
        },
    }


# ---------------------------------------------------------------- multi-label classification


def _label_ids(rows: Sequence[Iterable[Hashable] | None]) -> tuple[list[Hashable], np.ndarray]:
    """Flattened labels of all rows and the row number of each (a ``None`` row contributes nothing)."""
    lists = [() if row is None else row if isinstance(row, (list, tuple)) else list(row) for row in rows]
    if any(isinstance(row, str) for row in rows):
        raise ValueError("a label set must be a list of labels, not a string")
    flat = [label for row in lists for label in row]
    return flat, np.repeat(np.arange(len(lists)), [len(row) for row in lists])


def _multi_hot_gold(gold: Sequence[Iterable[Hashable]], index: Mapping[Hashable, int]) -> np.ndarray:
    """Boolean (n, L) gold matrix; duplicates count once; a label outside the list raises ValueError."""
    flat, row_of = _label_ids(gold)
    cols = [_col(index, label) for label in flat]
    if cols and min(cols) < 0:
        raise ValueError(f"gold label {flat[cols.index(-1)]!r} is not in the label list")
    matrix = np.zeros((len(gold), len(index)), dtype=bool)
    matrix[row_of, cols] = True
    return matrix


def _multi_hot_pred(
    pred: Sequence[Iterable[Hashable] | None], index: Mapping[Hashable, int]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Boolean (n, L) prediction matrix, invalid-row mask and number of rows with out-of-space labels.

    ``None`` rows are invalid; out-of-space labels (unknown or unhashable) are dropped, and a non-empty row
    left with no in-space label is invalid too.
    """
    n = len(pred)
    flat, row_of = _label_ids(pred)
    cols = np.fromiter(
        (_col(index, label) for label in flat),
        dtype=np.int64,
        count=len(flat),
    )
    bad = cols < 0
    stray_rows = np.zeros(n, dtype=bool)
    stray_rows[row_of[bad]] = True
    matrix = np.zeros((n, len(index)), dtype=bool)
    matrix[row_of[~bad], cols[~bad]] = True
    invalid = np.fromiter((row is None for row in pred), dtype=bool, count=n) | (stray_rows & ~matrix.any(axis=1))
    return matrix, invalid, int(stray_rows.sum())


@declares("multi", "jaccard", "micro_f1", "macro_f1")
def multi_label(
    gold: Sequence[Iterable[Hashable]],
    pred: Sequence[Iterable[Hashable] | None],
    labels: Sequence[Hashable],
    *,
    invalid_as_empty: bool = False,
) -> dict:
    """Multi-label classification scores over a FIXED label list; empty sets (neutral / no emotion) are legal.

    Conventions:
    - ``jaccard`` (sample-wise; SemEval-2018 E-c "accuracy"): mean over items of |G∩P| / |G∪P|, with 1.0 when
      G and P are both empty. This follows the official SemEval-2018 Task 1 scorer
      (``felipebravom/SemEval_2018_Task_1_Eval``, ``utils.evaluate_multilabel``), which called the old
      ``sklearn.metrics.jaccard_similarity_score``; that function set the score of rows with
      ``pred_or_true == 0`` to 1.0. (Modern ``jaccard_score(average="samples")`` needs
      ``zero_division=1.0`` to agree.)
    - ``micro_f1`` / ``macro_f1`` (+ precision/recall) over all ``labels`` with ``zero_division=0``, equal
      to ``f1_score(Y, P, average=..., zero_division=0)`` on the multi-hot matrices. Empty rows add nothing
      to the counts.
    - ``exact_match``: share of items with P == G (sklearn's multi-label ``accuracy_score``).
    - Invalid rows (``None``): counted in ``invalid``. For the F1 counts they predict no label (every gold
      label of the row is a false negative). They are *wrong*: sample-Jaccard and exact match are 0 even
      when the gold set is empty. With ``invalid_as_empty=True`` they are scored exactly as the empty
      prediction instead (the SemEval official scorer replaced unreadable rows by all-zero vectors).
    - Out-of-space predicted labels are dropped (no column is added) and the row is counted in
      ``out_of_space``; a non-empty prediction with *no* in-space label left is treated as invalid.
    - Gold labels must be in ``labels`` (ValueError otherwise).
    """
    n = _check_lengths(gold, pred)
    index = _label_index(labels)
    y_true = _multi_hot_gold(gold, index)
    y_pred, invalid_mask, out_of_space = _multi_hot_pred(pred, index)
    both = y_true & y_pred
    tp = both.sum(axis=0)
    fp = y_pred.sum(axis=0) - tp
    fn = y_true.sum(axis=0) - tp
    prec, rec, f1 = _prf(tp, fp, fn)
    micro_p, micro_r, micro_f = _micro_prf(tp, fp, fn)
    inter = both.sum(axis=1)
    union = (y_true | y_pred).sum(axis=1)
    empty_empty = union == 0
    jaccard = np.where(empty_empty, 1.0, _ratio(inter, union))
    exact = (y_true == y_pred).all(axis=1)
    if not invalid_as_empty:
        jaccard[invalid_mask] = 0.0
        exact[invalid_mask] = False
    return {
        "n": n,
        "jaccard": float(jaccard.mean()),
        "micro_f1": micro_f,
        "micro_precision": micro_p,
        "micro_recall": micro_r,
        "macro_f1": float(f1.mean()),
        "macro_precision": float(prec.mean()),
        "macro_recall": float(rec.mean()),
        "exact_match": float(exact.mean()),
        "invalid": int(invalid_mask.sum()),
        "out_of_space": out_of_space,
        "invalid_rate": float(invalid_mask.mean()),
        "invalid_as_empty": invalid_as_empty,
        "empty_gold": int((~y_true.any(axis=1)).sum()),
        "empty_pred": int((~y_pred.any(axis=1) & ~invalid_mask).sum()),
        "empty_both": int((empty_empty & ~invalid_mask).sum()),
        "labels": [str(label) for label in labels],
        "per_label": _per_label(labels, prec, rec, f1, y_true.sum(axis=0), y_pred.sum(axis=0)),
    }


# ---------------------------------------------------------------- correlations


def _constant(x: np.ndarray) -> bool:
    """Exactly constant (max == min). Not ``std == 0``: the std of equal floats can be ~1e-17, not 0."""
    return bool(x.max() == x.min())


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    dx, dy = x - x.mean(), y - y.mean()
    den = math.sqrt(float(dx @ dx) * float(dy @ dy))
    if den == 0 or not math.isfinite(den):
        return 0.0
    return float(np.clip(float(dx @ dy) / den, -1.0, 1.0))


def _impute(pred: Sequence[Any], impute: float | None, what: str) -> tuple[np.ndarray, int]:
    """Predictions as floats; None / non-finite values are invalid and replaced by ``impute``."""
    if set(map(type, pred)) <= {float, int, type(None)}:  # fast path: plain numbers and None
        values = np.array(pred, dtype=float)
        bad = ~np.isfinite(values)
        invalid = int(bad.sum())
        if invalid and impute is None:
            i = int(np.argmax(bad))
            raise ValueError(f"{what}: invalid prediction {pred[i]!r} at position {i} and no impute value given")
        values[bad] = np.nan if impute is None else impute
        return values, invalid
    values = np.empty(len(pred), dtype=float)
    invalid = 0
    for i, x in enumerate(pred):
        if _is_number(x):
            values[i] = float(x)
            continue
        invalid += 1
        if impute is None:
            raise ValueError(f"{what}: invalid prediction {x!r} at position {i} and no impute value given")
        values[i] = impute
    return values, invalid


def _gold_floats(gold: Sequence[Any]) -> np.ndarray:
    values = np.asarray(gold, dtype=float)
    if values.ndim != 1 or not np.isfinite(values).all():
        raise ValueError("gold values must be finite numbers")
    return values


@declares("real", "pearson", "spearman", "mae")
def correlation(gold: Sequence[float], pred: Sequence[float | None], *, impute: float | None) -> dict:
    """Pearson (primary), Spearman and MAE between real-valued gold and predictions.

    Conventions:
    - Invalid predictions (``None``, NaN, inf) are replaced by ``impute`` — the caller passes the mean of
      the gold values of the TRAIN split (research/eval.md pitfall 3) — and counted in ``invalid``. With
      ``impute=None`` an invalid prediction raises ValueError.
    - If predictions (after imputation) or gold are constant (max == min), ``pearson`` and ``spearman`` are
      0.0 and ``constant_prediction`` / ``constant_gold`` is True (SemEval-2018 official scorer behaviour).
      This covers all-invalid input and n == 1. No NaN is ever returned and no warning is raised.
    - Spearman = Pearson of average ranks (ties get the mean rank), as ``scipy.stats.spearmanr``.
    - ``mae`` = mean |gold - pred| over all items (imputed values included).
    """
    from scipy.stats import rankdata

    n = _check_lengths(gold, pred)
    g = _gold_floats(gold)
    p, invalid = _impute(pred, impute, "correlation")
    constant_gold, constant_pred = _constant(g), _constant(p)
    degenerate = constant_gold or constant_pred
    return {
        "n": n,
        "pearson": 0.0 if degenerate else _pearson(g, p),
        "spearman": 0.0 if degenerate else _pearson(rankdata(g), rankdata(p)),
        "mae": float(np.abs(g - p).mean()),
        "invalid": invalid,
        "invalid_rate": invalid / n,
        "imputed_value": None if impute is None else float(impute),
        "constant_prediction": constant_pred,
        "constant_gold": constant_gold,
    }


@declares("ordinal", "pearson", "accuracy", "macro_f1")
def ordinal(gold: Sequence[int], pred: Sequence[int | None], classes: Sequence[int], *, impute: float | None) -> dict:
    """Ordinal classification (SemEval-2018 EI-oc, V-oc): Pearson over the integer classes plus accuracy.

    Conventions:
    - ``pearson`` / ``spearman`` / ``mae`` / constant flags as in :func:`correlation` (the official
      SemEval metric for EI-oc / V-oc is Pearson over the class integers). Invalid predictions — ``None``
      or an integer not in ``classes`` — are imputed with ``impute`` (train mean of the gold classes; a
      float is fine) for the correlation.
    - ``accuracy`` / ``macro_f1`` / ``micro_f1`` / ``per_class`` as in :func:`single_label` over the fixed
      ``classes``: invalid = wrong, never imputed.
    """
    n = _check_lengths(gold, pred)
    allowed = set(classes)
    cleaned = [x if _is_number(x) and x in allowed else None for x in pred]
    corr = correlation(gold, cleaned, impute=impute)
    cls = single_label(gold, cleaned, classes)
    return {
        "n": n,
        "pearson": corr["pearson"],
        "spearman": corr["spearman"],
        "mae": corr["mae"],
        "accuracy": cls["accuracy"],
        "macro_f1": cls["macro_f1"],
        "micro_f1": cls["micro_f1"],
        "invalid": corr["invalid"],
        "invalid_rate": corr["invalid_rate"],
        "imputed_value": corr["imputed_value"],
        "constant_prediction": corr["constant_prediction"],
        "constant_gold": corr["constant_gold"],
        "per_class": cls["per_label"],
        "confusion": cls["confusion"],
    }


@declares("vad", "pearson_per_dimension", "pearson_mean")
def vad(
    gold: Sequence[Mapping[str, float]],
    pred: Sequence[Mapping[str, float] | None],
    dims: Sequence[str] = ("valence", "arousal", "dominance"),
    *,
    impute: Mapping[str, float] | None,
) -> dict:
    """Per-dimension :func:`correlation` for valence/arousal/dominance answers, plus their mean Pearson.

    Conventions: a ``None`` prediction makes every dimension of that item invalid; a prediction missing a
    dimension (or with a non-numeric value there) makes that dimension invalid. Invalid values are imputed
    per dimension with ``impute[dim]`` (train means). ``pearson_mean`` / ``spearman_mean`` are unweighted
    means over ``dims``, ``pearson_per_dimension`` the Pearson of each; ``invalid`` counts items with at least one
    invalid dimension.
    """
    n = _check_lengths(gold, pred)
    per_dim: dict[str, dict] = {}
    for dim in dims:
        gold_dim = [row[dim] for row in gold]
        pred_dim = [None if row is None else row.get(dim) for row in pred]
        per_dim[dim] = correlation(gold_dim, pred_dim, impute=None if impute is None else impute[dim])
    invalid = sum(1 for row in pred if row is None or any(not _is_number(row.get(dim)) for dim in dims))
    return {
        "n": n,
        "pearson_mean": float(np.mean([per_dim[d]["pearson"] for d in dims])),
        "spearman_mean": float(np.mean([per_dim[d]["spearman"] for d in dims])),
        "pearson_per_dimension": {d: per_dim[d]["pearson"] for d in dims},
        "invalid": invalid,
        "invalid_rate": invalid / n,
        "dims": list(dims),
        **per_dim,
    }


# ---------------------------------------------------------------- aggregation


def per_group_mean(results: Mapping[str, Mapping[str, Any]], key: str) -> float:
    """Unweighted mean of ``results[group][key]`` over groups (e.g. EI: mean of 4 per-emotion Pearsons).

    ``key`` may be dotted to reach nested dicts ("valence.pearson"). A missing, None or non-finite value
    raises rather than being skipped, so the mean is always over every group.
    """
    if not results:
        raise ValueError("no groups to average")
    return float(np.mean([_lookup(result, key) for result in results.values()]))


def language_macro(per_language: Mapping[str, Mapping[str, Any]], key: str) -> dict:
    """Language-macro aggregate: unweighted mean of ``per_language[lang][key]`` over languages.

    Returns ``{"macro", "languages" (sorted), "n_languages", "per_language"}``. The pooled score is not
    computed here: call the metric function once on all rows of all languages.
    """
    languages = sorted(per_language)
    return {
        "macro": per_group_mean(per_language, key),
        "languages": languages,
        "n_languages": len(languages),
        "per_language": {lang: _lookup(per_language[lang], key) for lang in languages},
    }


def semeval_ei_official(cells: Mapping[tuple[str, str], Mapping[str, Any]], key: str = "pearson") -> dict:
    """SemEval-2018 EI-reg / EI-oc headline as the official scorer computes it, from per-(language, emotion) results.

    The official scorer scores one language file at a time: the Pearson of each of the four emotions on its own,
    then their unweighted mean (a constant side counts 0.0, as there). Over several languages the headline is the
    unweighted mean over languages of those per-language means; with all four emotions in every language this
    equals the mean over the (language x emotion) cells. It is never one Pearson pooled over emotions, which mixes
    the emotions' different intensity scales (0.627 pooled vs 0.604 official on EI-oc en).

    Returns ``{"metric", "cells" ("lang|emotion" -> value), "per_language" (lang -> mean of its emotions),
    "headline", "constant_cells" (cells whose prediction or gold is constant), "constant_prediction_cells"}``.
    """
    if not cells:
        raise ValueError("no (language, emotion) cells to average")
    by_language: dict[str, dict[str, float]] = {}
    constant, constant_prediction = [], []
    for (language, emotion), result in sorted(cells.items()):
        by_language.setdefault(language, {})[emotion] = _lookup(result, key)
        if result.get("constant_prediction") or result.get("constant_gold"):
            constant.append(f"{language}|{emotion}")
        if result.get("constant_prediction"):
            constant_prediction.append(f"{language}|{emotion}")
    per_language = {lang: float(np.mean(list(values.values()))) for lang, values in by_language.items()}
    return {
        "metric": f"mean of per-emotion {key} (official SemEval-2018 EI)",
        "cells": {f"{lang}|{emo}": v for lang, values in by_language.items() for emo, v in values.items()},
        "per_language": per_language,
        "headline": float(np.mean(list(per_language.values()))),
        "constant_cells": constant,
        "constant_prediction_cells": constant_prediction,
    }


# ---------------------------------------------------------------- open vocabulary (MASIVE)

_SPANISH = {"es", "spa", "spanish", "español", "espanol"}


def _is_spanish(language: str) -> bool:
    return language.lower().replace("_", "-").split("-")[0] in _SPANISH


def _spanish_stem(token: str) -> str:
    """Neutralise Spanish gender/number endings: -os/-as (token >= 4 chars) -> drop 2; -o/-a (>= 3) -> drop 1."""
    if len(token) >= 4 and token.endswith(("os", "as")):
        return token[:-2]
    if len(token) >= 3 and token.endswith(("o", "a")):
        return token[:-1]
    return token


def normalise_term(term: str, language: str) -> str:
    """Normalisation key of an affective-state term for the "normalised" Acc@k.

    Steps: NFKD decomposition; drop combining marks (accents: "enfadádo" -> "enfadado", "ñ" -> "n");
    ``casefold``; every punctuation / symbol / whitespace character separates tokens; for Spanish
    (``language`` "es", "spa", "es-MX", ...) each token ending in -os/-as (4+ chars) loses the 2-letter
    ending, else a token ending in -o/-a (3+ chars) loses the last letter; tokens are joined WITHOUT
    separator, so "light-hearted", "light hearted" and "lighthearted" agree.

    Spanish rule effect: "cansada"/"cansado"/"cansadas"/"cansados" -> "cansad"; "Tranquila"/"tranquilo" ->
    "tranquil"; "trabajadora" -> "trabajador". Limits: it is a suffix rule, not a lemmatiser — it also
    neutralises number for -o/-a words, does not touch other plurals ("feliz"/"felices", "triste"/"tristes"
    still differ), does not handle irregular pairs, and can merge unrelated words that differ only in a
    final a/o ("bajo"/"baja" is intended, "ano"/"año" after accent stripping is a collision). Applied to
    gold and predictions alike, so it never lowers a score. English (and any other language) gets only the
    case / accent / punctuation steps: a trailing "s" is NOT stripped, because English adjectives do not
    inflect for number, so stripping it would only merge distinct words ("blues"/"blue", "jitters").
    """
    decomposed = unicodedata.normalize("NFKD", term)
    chars = []
    for ch in decomposed:
        category = unicodedata.category(ch)
        if category == "Mn":
            continue
        chars.append(" " if category[0] in "PSZC" or ch.isspace() else ch)
    tokens = "".join(chars).casefold().split()
    if _is_spanish(language):
        tokens = [_spanish_stem(token) for token in tokens]
    return "".join(tokens)


def _as_slots(beam: Any) -> list[str] | None:
    if beam is None:
        return None
    if isinstance(beam, str):
        return [beam]
    return [str(term) for term in beam]


def _gold_slots(row: Any) -> list[list[str]]:
    if isinstance(row, str):
        row = [row]
    slots = [[alt] if isinstance(alt, str) else [str(a) for a in alt] for alt in row]
    if not slots or not all(slots):
        raise ValueError(f"gold item {row!r} has no terms")
    return slots


@declares(
    "open",
    *(f"acc@{k}{match}" for match in ("", "_normalised") for k in (1, 3, 5)),
    supplementary=("nll", "log_perplexity", "sim@1", "sim@3", "sim@5"),
    lower_is_better=("nll", "log_perplexity"),
)
def open_vocabulary_at_k(
    gold: Sequence[Sequence[str | Sequence[str]]],
    ranked: Sequence[Sequence[Sequence[str] | str | None] | None],
    ks: Sequence[int] = (1, 3, 5),
    *,
    language: str,
) -> dict:
    """MASIVE Acc@k (exact and normalised) for open-vocabulary affective-state answers.

    Shapes: ``gold[i]`` lists the gold term of each masked slot of item i, in order (the corpus ``gold``);
    a slot may also be a list of acceptable alternatives. ``ranked[i]`` lists the model's outputs for item
    i, best first (beams); each output is the parsed term list (one term per slot) or a plain string for a
    one-slot answer; ``None`` = failed parse (matches nothing); ``ranked[i] = None`` = all failed.

    Scoring (MASIVE ``code/metrics.py::top_k_text``): slot j of item i is a hit if its gold term equals
    slot j of ANY of the top-k outputs (positional: a shorter output misses the later slots); item score =
    hits / number of slots; Acc@k = mean over items. ``acc@k`` compares after ``str.strip()`` only (MASIVE's
    official rule, comparable with its tables); ``acc@k_normalised`` compares :func:`normalise_term` keys (the
    corrected-mode headline). When fewer than k outputs exist (e.g. greedy decoding gives one), the available
    ones are used; ``min_outputs`` shows it.
    """
    n = _check_lengths(gold, ranked)
    ks = sorted(set(int(k) for k in ks))
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    cache: dict[str, str] = {}

    def key(term: str) -> str:
        if term not in cache:
            cache[term] = normalise_term(term, language)
        return cache[term]

    exact = np.zeros((len(ks), n))
    normed = np.zeros((len(ks), n))
    invalid = 0
    min_outputs = None
    for i in range(n):
        slots = _gold_slots(gold[i])
        beams = ranked[i]
        beams = [] if beams is None else [beams] if isinstance(beams, str) else beams
        outputs = [_as_slots(beam) for beam in beams]
        if not outputs or all(o is None for o in outputs):
            invalid += 1
        min_outputs = len(outputs) if min_outputs is None else min(min_outputs, len(outputs))
        for a, k in enumerate(ks):
            top = [o for o in outputs[:k] if o is not None]
            hit_exact = hit_norm = 0
            for j, alternatives in enumerate(slots):
                candidates = [o[j] for o in top if len(o) > j]
                stripped = {c.strip() for c in candidates}
                hit_exact += any(alt.strip() in stripped for alt in alternatives)
                keys = {key(c) for c in candidates}
                hit_norm += any(key(alt) in keys for alt in alternatives)
            exact[a, i] = hit_exact / len(slots)
            normed[a, i] = hit_norm / len(slots)
    return {
        "n": n,
        **{f"acc@{k}": float(exact[a].mean()) for a, k in enumerate(ks)},
        **{f"acc@{k}_normalised": float(normed[a].mean()) for a, k in enumerate(ks)},
        "invalid": invalid,
        "invalid_rate": invalid / n,
        "min_outputs": int(min_outputs or 0),
        "language": language,
        "spanish_gender_rule": _is_spanish(language),
    }


def gold_likelihood(nll: Sequence[float], log_perplexity: Sequence[float]) -> dict:
    """MASIVE's NLL and log-perplexity of the gold answers, averaged over items (lower is better).

    Per item (`mmaff.eval.likelihood`, gold rows): ``nll`` = summed negative log-likelihood of the gold answer's
    tokens and the end-of-turn token, ``log_perplexity`` = the same sum without the end-of-turn token (MASIVE's
    ``log_perp`` gives pad / eos / unk weight 0). Both are sums, not per-token means, as the authors report them.
    The means run over the finite values only and the non-finite ones are counted (``*_nonfinite``): the authors'
    code skips ``inf`` but still divides by the full count, which lowers their mean by the skipped share; that is
    not copied. A mean with no finite value is None.
    """
    if len(nll) != len(log_perplexity):
        raise ValueError(f"{len(nll)} NLL values but {len(log_perplexity)} log-perplexities")
    result: dict[str, Any] = {"likelihood_n": len(nll)}
    for name, values in (("nll", nll), ("log_perplexity", log_perplexity)):
        finite = [float(v) for v in values if math.isfinite(v)]
        result[name] = float(np.mean(finite)) if finite else None
        result[f"{name}_nonfinite"] = len(values) - len(finite)
    return result


def similarity_at_k(beam_similarities: Sequence[Sequence[float]], ks: Sequence[int] = (1, 3, 5)) -> dict:
    """MASIVE Sim@k: per item the best (max, their default ``--sim-type max``) of the first k beams' similarities
    to the gold (`mmaff.eval.similarity`), averaged over items; an item without beams scores 0. Sim@k is given
    for each k up to the number of beams generated (k = 1 always), like Acc@k."""
    if not beam_similarities:
        raise ValueError("nothing to score: empty input")
    beams = max(len(row) for row in beam_similarities)
    ks = [k for k in sorted(set(ks)) if k == 1 or k <= beams]
    return {f"sim@{k}": float(np.mean([max(row[:k], default=0.0) for row in beam_similarities])) for k in ks} | {
        "sim_n": len(beam_similarities)
    }


# ---------------------------------------------------------------- threshold-free multi-label ranking


def _lrap(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-row label-ranking average precision, exactly as sklearn's (ties -> max rank; 0 or all relevant -> 1)."""
    out = np.ones(len(y_true))
    for start in range(0, len(y_true), _LRAP_CHUNK):
        y = y_true[start : start + _LRAP_CHUNK]
        s = scores[start : start + _LRAP_CHUNK]
        ge = s[:, None, :] >= s[:, :, None]  # ge[i, j, k]: label k scores at least as high as label j
        rank_all = ge.sum(axis=2)
        rank_rel = (ge & y[:, None, :]).sum(axis=2)
        n_rel = y.sum(axis=1)
        ratio = np.where(y, rank_rel / rank_all, 0.0).sum(axis=1)
        defined = (n_rel > 0) & (n_rel < y.shape[1])
        out[start : start + len(y)][defined] = ratio[defined] / n_rel[defined]
    return out


def multilabel_ranking(
    gold: Sequence[Iterable[str]], scores: Sequence[Mapping[str, float] | None], labels: Sequence[str]
) -> dict:
    """Threshold-free multi-label metrics from per-label scores (likelihoods), as in arXiv 2604.12633.

    - ``ap_micro`` = ``average_precision_score(Y, S, average="micro")`` and ``auc_micro`` =
      ``roc_auc_score(Y, S, average="micro")`` on the flattened item x label matrix. Undefined (None, with
      ``no_positive`` / ``no_negative`` set) when the flattened gold has no positive / no negative.
    - ``ap_macro`` / ``auc_macro``: means of the per-label values over labels that are defined (a label
      that is never positive has no AP/AUC; one always positive has no AUC); the skipped labels are listed
      in ``labels_never_positive`` / ``labels_always_positive``; None when no label is defined.
    - ``lrap``: ``label_ranking_average_precision_score`` (ties ranked pessimistically) averaged over items
      WITH at least one gold label. scikit-learn scores an item with no gold label (neutral) as 1.0, which
      would reward any scores; those items are excluded and counted in ``lrap_excluded_empty``;
      ``lrap_sklearn`` is scikit-learn's value over all items (empty rows = 1.0). ``lrap`` is None when
      every item is empty. Encode "neutral" as a label column yourself if it should be ranked.
    - Every score dict must have a finite score for every label (missing label: ValueError). ``None`` = an
      invalid item: all its labels get a score below every valid score (it ranks its positives last) and
      it is counted in ``invalid``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    n = _check_lengths(gold, scores)
    index = _label_index(labels)
    y_true = _multi_hot_gold(gold, index)
    matrix = np.empty((n, len(labels)))
    invalid = np.zeros(n, dtype=bool)
    for i, row in enumerate(scores):
        if row is None:
            invalid[i] = True
            continue
        try:
            matrix[i] = [row[label] for label in labels]
        except KeyError as err:
            raise ValueError(f"score row {i} has no score for label {err.args[0]!r}") from None
    valid = matrix[~invalid]
    if valid.size and not np.isfinite(valid).all():
        raise ValueError("scores must be finite")
    matrix[invalid] = (valid.min() - 1.0) if valid.size else 0.0

    positives = int(y_true.sum())
    no_positive, no_negative = positives == 0, positives == y_true.size
    ap_micro = None if no_positive else float(average_precision_score(y_true.ravel(), matrix.ravel()))
    auc_micro = None if (no_positive or no_negative) else float(roc_auc_score(y_true.ravel(), matrix.ravel()))
    col_pos = y_true.sum(axis=0)
    never = [str(label) for label, c in zip(labels, col_pos) if c == 0]
    always = [str(label) for label, c in zip(labels, col_pos) if c == n]
    aps = [average_precision_score(y_true[:, j], matrix[:, j]) for j in range(len(labels)) if col_pos[j] > 0]
    aucs = [roc_auc_score(y_true[:, j], matrix[:, j]) for j in range(len(labels)) if 0 < col_pos[j] < n]
    per_row = _lrap(y_true, matrix)
    has_gold = y_true.any(axis=1)
    return {
        "n": n,
        "ap_micro": ap_micro,
        "auc_micro": auc_micro,
        "lrap": float(per_row[has_gold].mean()) if has_gold.any() else None,
        "lrap_sklearn": float(per_row.mean()),
        "lrap_excluded_empty": int((~has_gold).sum()),
        "ap_macro": float(np.mean(aps)) if aps else None,
        "auc_macro": float(np.mean(aucs)) if aucs else None,
        "no_positive": no_positive,
        "no_negative": no_negative,
        "labels_never_positive": never,
        "labels_always_positive": always,
        "invalid": int(invalid.sum()),
        "invalid_rate": float(invalid.mean()),
    }


# ---------------------------------------------------------------- chance levels


def _expected_random_jaccard(gold_size: int, n_labels: int) -> float:
    """E[|G∩P|/|G∪P|] for a random P that contains each of L labels independently with probability 1/2.

    |G∩P| = X ~ Bin(g, 1/2) and |P \\ G| = Y ~ Bin(L-g, 1/2) are independent; the score is X / (g + Y),
    and 1.0 when g + Y == 0 (both sets empty: SemEval's convention).
    """
    g, rest = gold_size, n_labels - gold_size
    total = 0.0
    for x in range(g + 1):
        for y in range(rest + 1):
            prob = math.comb(g, x) * math.comb(rest, y) / 2.0**n_labels
            total += prob * (1.0 if g + y == 0 else x / (g + y))
    return total


def chance_level(
    target_type: str,
    labels: Sequence[Hashable] | None = None,
    *,
    gold: Sequence[Iterable[Hashable]] | None = None,
) -> float:
    """Score of a random predictor on the headline metric of ``target_type`` (for :func:`chance_normalised`).

    - ``single`` (headline accuracy): 1 / K for K = len(labels) — a uniform random guess. (It is also a
      uniform guesser's expected macro-F1 when classes are balanced.)
    - ``multi`` (headline sample-Jaccard): expected sample-Jaccard of a predictor that includes each of the
      L labels independently with probability 1/2, averaged over the gold set sizes of ``gold`` if given;
      without ``gold``, every gold set is assumed to have exactly one label.
    - ``real``, ``ordinal``, ``vad`` (headline Pearson): 0.0.
    - ``open`` (headline Acc@k on an open vocabulary): 0.0.
    Any other type (e.g. ``joint``: score its parts) raises ValueError.
    """
    if target_type in ("real", "ordinal", "vad", "open"):
        return 0.0
    if target_type not in ("single", "multi"):
        raise ValueError(f"no chance level for target type {target_type!r}")
    if not labels:
        raise ValueError(f"chance level for {target_type!r} needs the label list")
    k = len(labels)
    if target_type == "single":
        return 1.0 / k
    sizes = [1] if gold is None else [len(set(row)) for row in gold]
    if not sizes:
        raise ValueError("empty gold")
    counts = np.bincount(sizes, minlength=k + 1)
    if len(counts) > k + 1:
        raise ValueError("a gold set is larger than the label list")
    expected = [_expected_random_jaccard(g, k) if c else 0.0 for g, c in enumerate(counts)]
    return float(np.dot(counts, expected) / counts.sum())


def chance_normalised(score: float | None, chance: float) -> float | None:
    """(score - chance) / (1 - chance): 0 at chance, 1 at perfect, negative below chance; None stays None."""
    if chance >= 1.0:
        raise ValueError(f"chance level {chance} leaves no room above chance")
    if score is None:
        return None
    return float((score - chance) / (1.0 - chance))


# ---------------------------------------------------------------- reading a declared metric back

# The metric each target type is put beside its chance level with (`chance_level` is defined for these).
CHANCE_METRIC = {
    "single": "accuracy",
    "multi": "jaccard",
    "real": "pearson",
    "ordinal": "pearson",
    "vad": "pearson_mean",
    "open": "acc@1_normalised",
}


def metric_value(result: Mapping[str, Any], name: str) -> float | None:
    """The value of a declared metric (``"jaccard"``, ``"acc@3_normalised"``, ...) in a result dict, or None when
    the result does not have it (a metric left undefined, an Acc@k beyond the beams that were generated, or a
    metric that is not one number, such as ``pearson_per_dimension``)."""
    try:
        return _lookup(result, name)
    except (KeyError, ValueError):
        return None
