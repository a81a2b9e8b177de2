"""MMAFFBen's notebook scoring, reproduced on purpose, quirks included ("paper-compatible" mode).

MMAFFBen (`lzw108/MMAFFBen`) scores a model by running `evaluation.ipynb`, which applies the parsers of
`utils/tools.py` to BOTH the generated reply (`predict`) and the gold answer text (`label`) of every row, then
computes a handful of sklearn/pandas/scipy metrics per dataset block. This module re-implements that behaviour
(our own code, written from the documented behaviour in the shared research notes `eval.md` §2.3-2.4 and from
reading the original functions) so that our numbers can be set beside the paper's. It is deliberately "wrong"
where the notebook is wrong; every function says which notebook behaviour it reproduces and which quirk it keeps.
Our corrected scoring lives elsewhere (`mmaff/metrics.py`); nothing here should be used as a headline metric.

What is reproduced, in short (details in each docstring):

- silent parse defaults (EI-reg/CFAPS-EI -> 0.5, V-reg/CH-SIMS-SI -> 0, EI-oc/V-oc -> 0, VAD -> 0.0,
  label lists -> all-zero, polarity -> 9), first-number-wins regexes, substring polarity tests, the label-list
  algorithm with its and/or/with replacement and "names beat numbers" rule;
- "acc" = support-weighted per-label Jaccard for E-c/XED/EMOTIC-EC/SAMSEMO/MELD-EC, exact multi-hot match for
  EWECT/FER2013/CFAPS-EC, macro-F1 with `zero_division=1` on multi-hot rows, polarity macro-F1 over the labels
  sklearn infers (an invalid 9 becomes a class);
- Pearson as pandas `Series.corr` (NaN pairs dropped, NaN for constant input) and as `scipy.stats.pearsonr`
  (VAD); the EI mean of four emotions as `np.mean` (NaN if any emotion is NaN).

What is NOT reproduced: the notebook's position-keyed slicing of one concatenated jsonl (we are handed aligned
lists, joined on record ids by the caller), and its way of finding languages (500-row blocks named
`lang_1..lang_27` for MMS/XED, a transcript join against an external CSV for SAMSEMO): per-language numbers are
keyed by the language codes the caller passes. NaN metrics are returned as ``None`` and listed under
``nan_metrics`` so that the result stays valid JSON.

The notebook keeps the gold label's trailing newline (it strips only the JSONL line before `json.loads`, so
image/video labels read e.g. "5. surprise\\n"); every parser is insensitive to it, and `score_paper_compat`
passes both texts through unchanged, as the notebook does.

The notebook ran an older scikit-learn (Python 3.10); the calls used here (`f1_score`, `jaccard_score`,
`accuracy_score` with the same arguments) compute the same values in the installed version as far as we know.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from mmaff.data.registry import load_registry

__all__ = [
    "EXCLUDED_DATASETS",
    "EI_EMOTIONS",
    "PAPER_COMPAT_TASKS",
    "NotInPaperError",
    "PaperCompatTask",
    "acc_and_f1_multilabel",
    "ei_mean",
    "exact_match_acc_and_f1",
    "extract_integers_EIoc",
    "extract_integers_Voc",
    "extract_label_CHSIMS_pol",
    "extract_label_MELD_sen",
    "extract_label_MMS",
    "extract_label_onlineshopping",
    "extract_values_EMOTIC_vad",
    "get_scores_CFAPS_emoint",
    "get_scores_CHSIMS_strength",
    "get_scores_EIreg",
    "get_scores_Vreg",
    "paper_compat_task",
    "paper_compat_reason",
    "parse_labels_CFAPS_emo",
    "parse_labels_EMOTIC_emo",
    "parse_labels_EWECT",
    "parse_labels_Ec",
    "parse_labels_FER2013",
    "parse_labels_MELD_emo",
    "parse_labels_SAMSEMO",
    "parse_labels_XED",
    "polarity_acc_and_f1",
    "score_paper_compat",
    "series_corr",
    "vad_pearson",
]

# ====================================================================== label maps (name -> id, as MMAFFBen)
# Each map is the CATEGORY_MAP of the matching `utils/tools.py` parser: the multi-hot vector has len(map) columns
# indexed 0..len(map)-1, so an id that is not < len(map) can never be set (SAMSEMO's 99).


LABEL_MAPS: Mapping[str, tuple[str, str, bool]] = MappingProxyType(
    {
        # name: (dataset, subtask, neutral_column)
        # SemEval-2018 E-c, 11 emotions plus the "0. neutral" column MMAFFBen adds (12 columns).
        "SEMEVAL_EC_MAP": ("semeval2018", "E-c", False),
        # SMP2020-EWECT: neutral + 5 emotions (no disgust), 6 columns.
        "EWECT_MAP": ("ewect", "EC", False),
        # XED: 8 Plutchik emotions renumbered by MMAFFBen, plus neutral (9 columns).
        "XED_MAP": ("xed", "EC", False),
        # EMOTIC: 26 categories in MMAFFBen's order plus a "neutral" column 0 that gold never uses (27 columns).
        # "doubt/confusion" is a key, but the parser strips "/" before matching, so it can only be set by its number.
        "EMOTIC_MAP": ("emotic", "EC", True),
        # FER2013, CFAPS and MELD: neutral + 6 Ekman emotions in MMAFFBen's order (7 columns).
        "FER2013_MAP": ("fer2013", "EC", False),
        "CFAPS_MAP": ("cfaps", "EC", False),
        "MELD_MAP": ("meld", "EC", False),
        # SAMSEMO: neutral + 6 Ekman + "other emotions" with id 99 -> 8 columns; column 7 is named by no key, and
        # "other emotions" (a two-word key, id outside range(8)) never sets anything: "99. other emotions" -> all-zero.
        "SAMSEMO_MAP": ("samsemo", "EC", False),
    }
)
"""The parser maps, by name; each is built from the registry on first use (`label_map`), never at import."""


@functools.cache
def label_map(name: str) -> Mapping[str, int]:
    """The label set our registry keeps in MMAFFBen's numbering, as a parser map; its `none` answer
    ("0. neutral") is a column, as MMAFFBen makes it, and `neutral_column` adds one where MMAFFBen adds it anyway."""
    dataset, subtask, neutral_column = LABEL_MAPS[name]
    label_set = load_registry()[dataset].subtasks[subtask].label_set
    columns = {label_set.none["name"]: label_set.none["id"]} if label_set.none else {}
    if neutral_column:
        columns = {"neutral": 0, **columns}
    columns.update(zip(label_set.labels, label_set.ids, strict=True))
    return MappingProxyType(columns)


def __getattr__(name: str) -> Any:
    """`SEMEVAL_EC_MAP`, `EMOTIC_MAP`, ... as module attributes, built on first access."""
    if name in LABEL_MAPS:
        return label_map(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: The order in which the notebook slices, prints and saves the four EI emotions.
EI_EMOTIONS = ("anger", "fear", "joy", "sadness")

# ====================================================================== parsers

_ZERO_POINT = re.compile(r"\b0\.[0-9]+\b")
_ANY_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SIGNED_INT = re.compile(r"[-+]?\d+")
_VAD = {dim: re.compile(dim + r"\s*[:\-]?\s*([\-]?\d*\.\d+|\d+)") for dim in ("valence", "arousal", "dominance")}
_NOT_WORD_SPACE_COMMA = re.compile(r"[^\w\s,]")
_STANDALONE_INT = re.compile(r"\b(\d+)\b")


def _clip(value: float, low: float, high: float) -> float:
    return float(low if value < low else high if value > high else value)


def _unit_score(text: str) -> tuple[float, bool]:
    """(value, fell_back) for get_scores_EIreg / get_scores_CFAPS_emoint."""
    match = _ZERO_POINT.search(text)
    if match:
        return float(match.group()), False
    numbers = _ANY_NUMBER.findall(text)
    if not numbers:
        return 0.5, True
    return _clip(float(numbers[0]), 0.0, 1.0), False


def _signed_unit_score(text: str) -> tuple[float, bool]:
    """(value, fell_back) for get_scores_Vreg / get_scores_CHSIMS_strength."""
    numbers = _ANY_NUMBER.findall(text)
    if not numbers:
        return 0.0, True
    return _clip(float(numbers[0]), -1.0, 1.0), False


def get_scores_EIreg(text: str) -> float:
    """SemEval EI-reg parser (`tools.get_scores_EIreg`): the first ``\\b0\\.[0-9]+\\b``, else the first number.

    Reproduces: a decimal "0.x" anywhere wins; otherwise the first number of any form (``-?\\d+(\\.\\d+)?``) is
    clipped to [0, 1]; no number at all -> 0.5.
    Quirks kept: the first number wins even when it is part of an echoed scale ("On a scale from 1 to 10, I rate
    7" -> 1.0); ".5" reads as 5 and clips to 1.0; "-0.3" loses its sign ("\\b" matches after "-", so "0.3" is
    read); a reply with no number silently scores 0.5. A non-string raises TypeError, as `re.search` does in the
    notebook.
    """
    return _unit_score(text)[0]


def get_scores_CFAPS_emoint(text: str) -> float:
    """CFAPS-EI parser (`tools.get_scores_CFAPS_emoint`): a copy of `get_scores_EIreg`, same rules and quirks.

    Reproduces: first "0.x" decimal, else first number clipped to [0, 1], no number -> 0.5 (so a reply that
    names no number scores the middle of the scale, and "-0.3" reads as 0.3).
    """
    return _unit_score(text)[0]


def get_scores_Vreg(text: str) -> float:
    """SemEval V-reg parser (`tools.get_scores_Vreg`): the first number, clipped to [-1, 1]; none -> 0.

    Quirks kept: the first number wins ("On a scale of -1 to 1 it is 0.6" -> -1.0); no number silently scores 0
    (the middle of the prompt's [-1, 1] scale). The original returns the int 0/1/-1 on the default/clipped paths;
    we return the equal float.
    """
    return _signed_unit_score(text)[0]


def get_scores_CHSIMS_strength(text: str) -> float:
    """CH-SIMS SI parser (`tools.get_scores_CHSIMS_strength`): a copy of `get_scores_Vreg`, same quirks.

    Reproduces: first number clipped to [-1, 1], no number -> 0.
    """
    return _signed_unit_score(text)[0]


def _vad(text: str) -> tuple[tuple[float, float, float], bool]:
    values = []
    missing = False
    for regex in _VAD.values():
        match = regex.search(text)
        missing |= match is None
        values.append(float(match.group(1)) if match else 0.0)
    return (values[0], values[1], values[2]), missing


def extract_values_EMOTIC_vad(text: str) -> tuple[float, float, float]:
    """EMOTIC VAD parser (`tools.extract_values_EMOTIC_vad`): ``<dim>\\s*[:\\-]?\\s*([\\-]?\\d*\\.\\d+|\\d+)``.

    Reproduces: one case-sensitive search per dimension (valence, arousal, dominance), missing -> 0.0.
    Quirks kept: "Valence: 0.2" (capitalised) does not match -> 0.0; a negative integer ("valence: -1") matches
    neither alternative (the sign is only allowed before a decimal) -> 0.0; and "valence -1" reads the "-" as the
    optional separator, so it parses as +1.0.
    """
    return _vad(text)[0]


def _eioc(text: str) -> tuple[int, bool]:
    numbers = _SIGNED_INT.findall(text)
    if not numbers:
        return 0, True
    value = int(numbers[0])
    return (3 if value > 3 else 0 if value < 0 else value), False


def _voc(text: str) -> tuple[int, bool]:
    for number in _SIGNED_INT.findall(text):
        if -3 <= int(number) <= 3:
            return int(number), False
    return 0, True


def extract_integers_EIoc(text: str) -> int:
    """SemEval EI-oc parser (`tools.extract_integers_EIoc`): the first signed integer, clipped to [0, 3]; none -> 0.

    Quirks kept: the first integer anywhere wins, including a number echoed from the prompt ("Among the 4 classes,
    I choose 2" -> 3); "0.8" reads as 0; a reply with no digit silently scores class 0.
    """
    return _eioc(text)[0]


def extract_integers_Voc(text: str) -> int:
    """SemEval V-oc parser (`tools.extract_integers_Voc`): the first signed integer within [-3, 3]; none -> 0.

    Quirks kept: integers outside [-3, 3] are skipped rather than clipped, so an echoed scale still wins
    ("from -3 to 3, I give 2" -> -3); no qualifying integer silently scores 0 (neutral).
    """
    return _voc(text)[0]


def _polarity(text: Any, neutral: bool) -> int:
    if isinstance(text, str):
        lowered = text.lower()
        if "-1" in text or "negative" in lowered:
            return -1
        if neutral and ("0" in text or "neutral" in lowered):
            return 0
        if "1" in text or "positive" in lowered:
            return 1
    return 9


def extract_label_onlineshopping(text: Any) -> int:
    """onlineshopping polarity (`tools.extract_label_onlineshopping`): substring tests, binary, invalid -> 9.

    Reproduces, in order: "-1" or "negative" (case-insensitive) -> -1; else "1" or "positive" -> 1; else 9 (also
    for non-strings). Quirks kept: there is no neutral branch, so "0. neutral" -> 9; any "1" anywhere counts as
    positive ("10", "0.1"); "not negative, it is positive" -> -1. The 9 later becomes a class of the macro-F1.
    """
    return _polarity(text, neutral=False)


def extract_label_MMS(text: Any) -> int:
    """MMS polarity (`tools.extract_label_MMS`): ordered substring tests -> -1 / 0 / 1, invalid -> 9.

    Reproduces, in order: "-1" or "negative" -> -1; else "0" or "neutral" -> 0; else "1" or "positive" -> 1;
    else 9. Quirks kept: any "0" means neutral, so "Rating: 10 positive", "1.0" and "1. positive (confidence 0.9)"
    all parse as 0; "not negative, it is positive" -> -1.
    """
    return _polarity(text, neutral=True)


def extract_label_MELD_sen(text: Any) -> int:
    """MELD-SP polarity (`tools.extract_label_MELD_sen`): identical to `extract_label_MMS`, same quirks."""
    return _polarity(text, neutral=True)


def extract_label_CHSIMS_pol(text: Any) -> int:
    """CH-SIMS SP polarity (`tools.extract_label_CHSIMS_pol`): identical to `extract_label_MMS`, same quirks."""
    return _polarity(text, neutral=True)


def _label_list(text: Any, category_map: Mapping[str, int]) -> list[int]:
    """The shared algorithm of every `tools.parse_labels_*` function (see `parse_labels_Ec`)."""
    size = len(category_map)
    if not isinstance(text, str):
        return [0] * size
    lowered = text.lower().replace("and", ",").replace("or", ",").replace("with", ",")
    labels: set[int] = set()
    named = False
    for token in _NOT_WORD_SPACE_COMMA.sub("", lowered).split():
        token = token.strip(",.")
        if token in category_map:
            labels.add(category_map[token])
            named = True
    if not named:  # numbers are read from the lowered text with its punctuation, only when no name matched
        labels.update(int(number) for number in _STANDALONE_INT.findall(lowered))
    return [1 if i in labels else 0 for i in range(size)]


def parse_labels_Ec(text: Any) -> list[int]:
    """SemEval E-c label list (`tools.parse_labels_Ec`) -> 12-column multi-hot over `SEMEVAL_EC_MAP`.

    The algorithm shared by all `parse_labels_*` functions:
    1. non-string -> all-zero vector;
    2. lowercase, then replace the substrings "and", "or", "with" by "," anywhere (inside words too);
    3. delete every character not in ``[\\w\\s,]``, split on whitespace, strip ",." from each token; a token that
       is exactly a category name sets that class;
    4. only if no name matched, every standalone integer ``\\b\\d+\\b`` of the text of step 2 (punctuation still
       in) is a class id;
    5. multi-hot over ``range(len(map))``: ids outside it vanish silently.
    Quirks kept: a name anywhere suppresses every number; free text with a decimal sets two classes ("I would say
    0.8 intensity" -> neutral + love); "{4}. Fear" and "Joy!" parse; neutral is a 12th column.
    """
    return _label_list(text, label_map("SEMEVAL_EC_MAP"))


def parse_labels_EWECT(text: Any) -> list[int]:
    """EWECT label list (`tools.parse_labels_EWECT`) -> 6 columns over `EWECT_MAP`; algorithm of `parse_labels_Ec`.

    Quirk kept: a multi-label reply to this single-label task gives a multi-hot row, scored by exact match later.
    """
    return _label_list(text, label_map("EWECT_MAP"))


def parse_labels_XED(text: Any) -> list[int]:
    """XED label list (`tools.parse_labels_XED`) -> 9 columns over `XED_MAP`; algorithm of `parse_labels_Ec`."""
    return _label_list(text, label_map("XED_MAP"))


def parse_labels_EMOTIC_emo(text: Any) -> list[int]:
    """EMOTIC label list (`tools.parse_labels_EMOTIC_emo`) -> 27 columns over `EMOTIC_MAP`.

    Algorithm of `parse_labels_Ec`. Quirks kept: "doubt/confusion" loses its "/" before matching, so class 16 is
    only read by number ("16. doubt/confusion" -> {16}), and any other name in the same reply suppresses it
    ("1. happiness, 16. doubt/confusion" -> {1}); column 0 ("neutral") is never in gold and inflates macro-F1.
    """
    return _label_list(text, label_map("EMOTIC_MAP"))


def parse_labels_FER2013(text: Any) -> list[int]:
    """FER2013 label list (`tools.parse_labels_FER2013`) -> 7 columns over `FER2013_MAP`; as `parse_labels_Ec`."""
    return _label_list(text, label_map("FER2013_MAP"))


def parse_labels_CFAPS_emo(text: Any) -> list[int]:
    """CFAPS-EC label list (`tools.parse_labels_CFAPS_emo`) -> 7 columns over `CFAPS_MAP`; as `parse_labels_Ec`."""
    return _label_list(text, label_map("CFAPS_MAP"))


def parse_labels_SAMSEMO(text: Any) -> list[int]:
    """SAMSEMO label list (`tools.parse_labels_SAMSEMO`) -> 8 columns over `SAMSEMO_MAP`; as `parse_labels_Ec`.

    Quirks kept: the key "other emotions" has a space and so never equals a token, and its id 99 is outside
    range(8), so gold "99. other emotions" -> all-zero; column 7 is set only by a bare number 7 in a reply
    without any category name.
    """
    return _label_list(text, label_map("SAMSEMO_MAP"))


def parse_labels_MELD_emo(text: Any) -> list[int]:
    """MELD-EC label list (`tools.parse_labels_MELD_emo`) -> 7 columns over `MELD_MAP`; as `parse_labels_Ec`."""
    return _label_list(text, label_map("MELD_MAP"))


# ====================================================================== metrics


def _sklearn():
    from sklearn.metrics import accuracy_score, f1_score, jaccard_score

    return accuracy_score, f1_score, jaccard_score


def acc_and_f1_multilabel(y_true: Any, y_pred: Any) -> tuple[float, float, float]:
    """The notebook's "get_ACCandF1" on multi-hot rows -> ("acc", micro-F1, macro-F1).

    Reproduces: "acc" = ``jaccard_score(average='weighted')`` (per-label Jaccard weighted by label support),
    micro-F1 = ``f1_score(average='micro')``, macro-F1 = ``f1_score(average='macro', zero_division=1)``.
    Quirks kept: "acc" is neither accuracy nor SemEval's sample-wise Jaccard accuracy; a column never present in
    gold or prediction scores F1 = 1.0 in the macro average (EMOTIC's neutral, SAMSEMO's column 7).
    Used for E-c, XED, EMOTIC-EC, SAMSEMO and MELD-EC.
    """
    _, _, jaccard_score = _sklearn()
    return _with_notebook_f1s(lambda t, p: jaccard_score(t, p, average="weighted"), y_true, y_pred)


def exact_match_acc_and_f1(y_true: Any, y_pred: Any) -> tuple[float, float, float]:
    """EWECT / FER2013 / CFAPS-EC scoring -> ("acc", micro-F1, macro-F1) on multi-hot rows.

    Reproduces: "acc" = ``accuracy_score`` on multi-hot rows, i.e. exact set match (a two-label reply to the
    single-label task is wrong even if it contains the gold); macro-F1 with ``zero_division=1``; micro-F1 is
    printed by the notebook but not saved.
    """
    accuracy_score, _, _ = _sklearn()
    return _with_notebook_f1s(accuracy_score, y_true, y_pred)


def _with_notebook_f1s(acc_of: Any, y_true: Any, y_pred: Any) -> tuple[float, float, float]:
    """(the notebook's "acc", micro-F1, macro-F1 with ``zero_division=1``) on multi-hot rows, warnings silenced."""
    _, f1_score, _ = _sklearn()
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        micro = f1_score(y_true, y_pred, average="micro")
        macro = f1_score(y_true, y_pred, average="macro", zero_division=1)
        acc = acc_of(y_true, y_pred)
    return float(acc), float(micro), float(macro)


def polarity_acc_and_f1(y_true: Sequence[int], y_pred: Sequence[int]) -> tuple[float, float]:
    """onlineshopping / MMS / MELD-SP / CH-SIMS-SP scoring -> (accuracy, macro-F1) on integer labels.

    Reproduces: ``accuracy_score`` and ``f1_score(average='macro')`` with sklearn's default label inference
    (the union of gold and predicted labels) and default ``zero_division`` (0).
    Quirk kept: the invalid class 9 (and, for onlineshopping, a 0 parsed from a gold/pred) joins the macro
    average as a class with F1 = 0, which is how the notebook gets accuracy 0.83 but macro-F1 0.57 on binary
    onlineshopping.
    """
    accuracy_score, f1_score, _ = _sklearn()
    y_true, y_pred = list(y_true), list(y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        acc = accuracy_score(y_true, y_pred)
        macro = f1_score(y_true, y_pred, average="macro")
    return float(acc), float(macro)


def series_corr(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson r as pandas ``Series.corr(method='pearson')`` computes it, without pandas.

    Reproduces: pairs where either value is NaN are dropped; fewer than 2 pairs or a constant side -> NaN (no
    exception); the result is clipped to [-1, 1]. Equal to the np.corrcoef-based pandas of the notebook up to
    float rounding. Used for EI-reg, EI-oc, V-oc, V-reg, CFAPS-EI and CH-SIMS-SI.
    Quirk kept: a constant prediction column (e.g. every reply fell back to 0.5) gives NaN, not 0.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"series_corr needs two 1-d sequences of equal length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if a.size < 2:
        return math.nan
    a = a - a.mean()
    b = b - b.mean()
    a_scale, b_scale = np.max(np.abs(a)), np.max(np.abs(b))
    if a_scale == 0 or b_scale == 0:
        return math.nan
    a, b = a / a_scale, b / b_scale
    denominator = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if denominator == 0:
        return math.nan
    return float(np.clip(float(np.dot(a, b)) / denominator, -1.0, 1.0))


def vad_pearson(
    golds: Sequence[tuple[float, float, float]], preds: Sequence[tuple[float, float, float]]
) -> tuple[float, float, float]:
    """EMOTIC VAD scoring: ``scipy.stats.pearsonr`` per dimension -> (r_V, r_A, r_D); no average is saved.

    Reproduces `tools.calculate_pearson_correlation` (no NaN dropping; constant input -> NaN with a warning,
    silenced here). Deviation: scipy raises for fewer than 2 rows; we return NaN so that a tiny slice does not
    abort scoring (the notebook never scores fewer than 7,203 rows).
    """
    from scipy.stats import pearsonr

    g = np.asarray(golds, dtype=np.float64).reshape(-1, 3)
    p = np.asarray(preds, dtype=np.float64).reshape(-1, 3)
    if len(g) != len(p):
        raise ValueError(f"vad_pearson: {len(g)} golds vs {len(p)} predictions")
    if len(g) < 2:
        return math.nan, math.nan, math.nan
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for dim in range(3):
            out.append(float(pearsonr(p[:, dim], g[:, dim])[0]))
    return out[0], out[1], out[2]


def ei_mean(correlations: Sequence[float]) -> float:
    """The notebook's EI average: ``np.mean([anger, fear, joy, sadness])`` of the four per-emotion Pearsons.

    Quirk kept: a single NaN emotion (constant predictions, or an emotion absent from the slice) makes the mean
    NaN, exactly as `np.mean` does; `score_paper_compat` reports it as None and lists it in ``nan_metrics``.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(np.mean(np.asarray(correlations, dtype=np.float64)))


# ====================================================================== the task table


@dataclass(frozen=True)
class PaperCompatTask:
    """How the notebook scores one of our (dataset, subtask) pairs.

    `parser` is applied to the prediction AND the gold text; `metric(parsed_golds, parsed_preds)` returns the
    values named by `metric_keys` (our clear names), in order; `notebook_names` maps each clear name to what
    the notebook prints it as; `saved` lists, in order, the ones written to `results/results_*.csv`.
    `per_emotion` tasks are scored per EI emotion (anger, fear, joy, sadness) and averaged with `ei_mean`.
    """

    dataset: str
    subtask: str
    parser: Callable[[Any], Any]
    metric: Callable[[Any, Any], Any]
    metric_keys: tuple[str, ...]
    label_map_name: str | None  # a `LABEL_MAPS` name
    notebook_names: Mapping[str, str]
    saved: tuple[str, ...]
    notebook_block: str
    per_emotion: bool = False
    language_scoring: str = ""  # how the notebook splits languages, if at all
    pooled_languages_note: str = ""  # noted when several languages are pooled that the notebook scores alone
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label_map(self) -> Mapping[str, int] | None:
        return None if self.label_map_name is None else label_map(self.label_map_name)


_MULTI_KEYS = ("jaccard_weighted", "micro_f1", "macro_f1_zd1")
_MULTI_NAMES = {"jaccard_weighted": "acc", "micro_f1": "mic-f1", "macro_f1_zd1": "mac-f1"}
_EXACT_KEYS = ("exact_match_accuracy", "micro_f1", "macro_f1_zd1")
_EXACT_NAMES = {"exact_match_accuracy": "acc", "micro_f1": "mic-f1", "macro_f1_zd1": "mac-f1"}
_POL_KEYS = ("accuracy", "macro_f1_inferred_labels")
_POL_NAMES = {"accuracy": "acc", "macro_f1_inferred_labels": "mac-f1"}
_EI_KEYS = ("pearson_mean",) + tuple(f"pearson_{e}" for e in EI_EMOTIONS)
_EI_NAMES = {"pearson_mean": "ave", **{f"pearson_{e}": e for e in EI_EMOTIONS}}
_VAD_KEYS = ("pearson_valence", "pearson_arousal", "pearson_dominance")
_VAD_NAMES = {"pearson_valence": "V", "pearson_arousal": "A", "pearson_dominance": "D"}

_SEMEVAL_LANG = {
    "language_scoring": "scored per language only (separate en/ar/es blocks); the notebook never pools SemEval languages",
    "pooled_languages_note": "top-level metrics pool several SemEval languages; compare per_language instead",
}


def _task(
    dataset: str, subtask: str, kind: str, parser: Callable, label_map_name: str | None = None, **kw: Any
) -> PaperCompatTask:
    metric, keys, names = {
        "multi": (acc_and_f1_multilabel, _MULTI_KEYS, _MULTI_NAMES),
        "exact": (exact_match_acc_and_f1, _EXACT_KEYS, _EXACT_NAMES),
        "polarity": (polarity_acc_and_f1, _POL_KEYS, _POL_NAMES),
        "ei": (series_corr, _EI_KEYS, _EI_NAMES),
        "vad": (vad_pearson, _VAD_KEYS, _VAD_NAMES),
        "pearson": (series_corr, ("pearson",), {"pearson": kw.pop("pearson_name", "pcc")}),
    }[kind]
    saved = kw.pop("saved", keys)
    return PaperCompatTask(
        dataset=dataset,
        subtask=subtask,
        parser=parser,
        metric=metric,
        metric_keys=keys,
        label_map_name=label_map_name,
        notebook_names=MappingProxyType(dict(names)),
        saved=tuple(saved),
        per_emotion=kind == "ei",
        **kw,
    )


PAPER_COMPAT_TASKS: Mapping[tuple[str, str], PaperCompatTask] = MappingProxyType(
    {
        (t.dataset, t.subtask): t
        for t in (
            _task(
                "semeval2018",
                "EI-reg",
                "ei",
                get_scores_EIreg,
                notebook_block="text: SemEval_<lang> cell, df_EIreg, printed under 'EIreg: ave anger fear joy sadness'",
                **_SEMEVAL_LANG,
            ),
            _task(
                "semeval2018",
                "EI-oc",
                "ei",
                extract_integers_EIoc,
                notebook_block="text: SemEval_<lang> cell, df_EIoc, printed under the copy-pasted 'EIreg:' header",
                **_SEMEVAL_LANG,
            ),
            _task(
                "semeval2018",
                "V-oc",
                "pearson",
                extract_integers_Voc,
                pearson_name="Voc",
                notebook_block="text: SemEval_<lang> cell, df_Voc",
                **_SEMEVAL_LANG,
            ),
            _task(
                "semeval2018",
                "V-reg",
                "pearson",
                get_scores_Vreg,
                pearson_name="Vreg",
                notebook_block="text: SemEval_<lang> cell, df_Vreg",
                **_SEMEVAL_LANG,
                notes=("our V-reg gold is on [0, 1], MMAFFBen's prompt asks for [-1, 1]; Pearson is unaffected",),
            ),
            _task(
                "semeval2018",
                "E-c",
                "multi",
                parse_labels_Ec,
                "SEMEVAL_EC_MAP",
                notebook_block="text: SemEval_<lang> cell, df_Ec, printed under 'Ec: acc mic-f1 mac-f1'",
                **_SEMEVAL_LANG,
            ),
            _task(
                "ewect",
                "EC",
                "exact",
                parse_labels_EWECT,
                "EWECT_MAP",
                saved=("exact_match_accuracy", "macro_f1_zd1"),
                notebook_block="text: EWECT_usual_test / EWECT_virus_test, scored as two separate blocks",
                notes=("the notebook scores the usual and virus subsets separately; pass subsets= to match",),
            ),
            _task(
                "online_shopping",
                "SP",
                "polarity",
                extract_label_onlineshopping,
                notebook_block="text: onlineshopping_test, printed under 'onlineshopping: acc mac-f1'",
            ),
            _task(
                "mms",
                "SP",
                "polarity",
                extract_label_MMS,
                notebook_block="text: MMS_test, pooled over all languages; 'MMS: acc mac-f1'",
                language_scoring="500-row blocks named lang_1..lang_27 (acc, macro-F1) -> results/MMS_languages.csv",
            ),
            _task(
                "xed",
                "EC",
                "multi",
                parse_labels_XED,
                "XED_MAP",
                notebook_block="text: XED_test, pooled over all languages; 'XED: acc mic-f1 mac-f1'",
                language_scoring="500-row blocks named lang_1..lang_25 -> results/XED_languages.csv",
            ),
            _task(
                "emotic",
                "EC",
                "multi",
                parse_labels_EMOTIC_emo,
                "EMOTIC_MAP",
                notebook_block="image: EMOTIC_seg_emo_test, 'EMOTIC_emo: acc mic-f1 mac-f1'",
            ),
            _task(
                "emotic",
                "VAD",
                "vad",
                extract_values_EMOTIC_vad,
                notebook_block="image: EMOTIC_seg_sentiment_test, 'EMOTIC_vad: V A D' (scipy.stats.pearsonr)",
            ),
            _task(
                "fer2013",
                "EC",
                "exact",
                parse_labels_FER2013,
                "FER2013_MAP",
                saved=("exact_match_accuracy", "macro_f1_zd1"),
                notebook_block="image: FER2013_test, 'FER2013: acc mic-f1 mac-f1'",
            ),
            _task(
                "cfaps",
                "EC",
                "exact",
                parse_labels_CFAPS_emo,
                "CFAPS_MAP",
                saved=("exact_match_accuracy", "macro_f1_zd1"),
                notebook_block="image: CFAPS_emo_test, 'CFAPS_emo: acc mic-f1 mac-f1'",
            ),
            _task(
                "cfaps",
                "EI",
                "pearson",
                get_scores_CFAPS_emoint,
                pearson_name="CFAPS_emoint",
                notebook_block="image: CFAPS_emoint_test, one Pearson over all emotions",
            ),
            _task(
                "samsemo",
                "EC",
                "multi",
                parse_labels_SAMSEMO,
                "SAMSEMO_MAP",
                notebook_block="video: SAMSEMO_test (after a left join on the transcript), 'SAMSEMO_macro' = all rows",
                language_scoring="DE/EN/ES/KO/PL from a transcript join to ./video/Sansemo/test.csv, get_ACCandF1 each",
            ),
            _task(
                "meld",
                "EC",
                "multi",
                parse_labels_MELD_emo,
                "MELD_MAP",
                saved=("jaccard_weighted", "macro_f1_zd1"),
                notebook_block="video: MELD_emo_test, 'MELD_emo: acc mic-f1 mac-f1' (micro printed, not saved)",
            ),
            _task(
                "meld",
                "SP",
                "polarity",
                extract_label_MELD_sen,
                notebook_block="video: MELD_Sentiment_test, 'MELD_sen: acc mac-f1'",
            ),
            _task(
                "chsims",
                "SP",
                "polarity",
                extract_label_CHSIMS_pol,
                notebook_block="video: CHSIMS_polarity_test, 'CHSIMS_sen: acc mac-f1'",
            ),
            _task(
                "chsims",
                "SI",
                "pearson",
                get_scores_CHSIMS_strength,
                pearson_name="CHSIMS_strength",
                notebook_block="video: CHSIMS_strength_test ('CHSIMS_SI_*' in the scripts, 'CHSIMS_EI_*' in dataset_info)",
            ),
        )
    }
)

#: Datasets of our registry that MMAFFBen's notebook does not score, with the reason.
EXCLUDED_DATASETS: Mapping[str, str] = MappingProxyType(
    {
        "weibo_senti": "declared in MMAFFBen's dataset_info.json but absent from run_inference.sh and the notebook",
        "goemotions": "not part of MMAFFBen (our extension)",
        "masive": "not part of MMAFFBen (our extension; open-vocabulary, scored as in the MASIVE paper)",
        "synthetic_emotions": "not part of MMAFFBen (our extension)",
    }
)


class NotInPaperError(KeyError):
    """The (dataset, subtask) is not scored by MMAFFBen's notebook; `.reason` says why."""

    def __init__(self, dataset: str, subtask: str, reason: str) -> None:
        super().__init__(f"{dataset}/{subtask}: no paper-compatible scoring: {reason}")
        self.dataset, self.subtask, self.reason = dataset, subtask, reason

    def __str__(self) -> str:
        return str(self.args[0])


def paper_compat_reason(dataset: str, subtask: str) -> str | None:
    """None when MMAFFBen's notebook scores (dataset, subtask); otherwise the reason it does not."""
    if (dataset, subtask) in PAPER_COMPAT_TASKS:
        return None
    if dataset in EXCLUDED_DATASETS:
        return EXCLUDED_DATASETS[dataset]
    if "+" in subtask:
        return "joint subtask (our extension): MMAFFBen asks and scores each subtask alone"
    if ">" in subtask:
        return "two-step subtask (our extension): MMAFFBen has no gold-given follow-up questions"
    return "not a (dataset, subtask) of MMAFFBen's notebook"


def paper_compat_task(dataset: str, subtask: str) -> PaperCompatTask:
    """The notebook's scoring of (dataset, subtask); raises `NotInPaperError` (with `.reason`) if there is none."""
    task = PAPER_COMPAT_TASKS.get((dataset, subtask))
    if task is None:
        raise NotInPaperError(dataset, subtask, paper_compat_reason(dataset, subtask) or "")
    return task


# ====================================================================== scoring

_FALLBACK_PARSERS: dict[Callable, Callable[[Any], bool]] = {
    get_scores_EIreg: lambda t: _unit_score(t)[1],
    get_scores_CFAPS_emoint: lambda t: _unit_score(t)[1],
    get_scores_Vreg: lambda t: _signed_unit_score(t)[1],
    get_scores_CHSIMS_strength: lambda t: _signed_unit_score(t)[1],
    extract_integers_EIoc: lambda t: _eioc(t)[1],
    extract_integers_Voc: lambda t: _voc(t)[1],
    extract_values_EMOTIC_vad: lambda t: _vad(t)[1],
}


def _fell_back(task: PaperCompatTask, text: Any, parsed: Any) -> bool:
    """Whether the notebook's parser silently used its default (diagnostic only; the notebook never counts it)."""
    if task.label_map is not None:
        return not any(parsed)
    if task.metric is polarity_acc_and_f1:
        return parsed == 9
    return _FALLBACK_PARSERS[task.parser](text)


def _memoised(function: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`function` with its results kept per string argument: replies and gold texts repeat a lot ("3. anger"),
    and every parser is a pure function of the text. Results are shared between equal texts, read-only."""
    cache: dict[str, Any] = {}

    def memoised(text: Any) -> Any:
        if type(text) is not str:
            return function(text)
        try:
            return cache[text]
        except KeyError:
            value = cache[text] = function(text)
            return value

    return memoised


def _metrics(task: PaperCompatTask, golds: list, preds: list, emotions: list[str] | None) -> dict[str, float]:
    if task.per_emotion:
        per = {}
        for emotion in EI_EMOTIONS:
            rows = [i for i, e in enumerate(emotions) if e == emotion]
            per[f"pearson_{emotion}"] = series_corr([preds[i] for i in rows], [golds[i] for i in rows])
        return {"pearson_mean": ei_mean(list(per.values())), **per}
    values = task.metric(golds, preds) if task.metric is not series_corr else task.metric(preds, golds)
    values = values if isinstance(values, tuple) else (values,)
    return dict(zip(task.metric_keys, values, strict=True))


def _json_block(task: PaperCompatTask, golds: list, preds: list, emotions: list[str] | None) -> dict[str, Any]:
    raw = _metrics(task, golds, preds, emotions)
    nan = [k for k, v in raw.items() if isinstance(v, float) and math.isnan(v)]
    return {
        "n": len(golds),
        "metrics": {k: (None if k in nan else float(v)) for k, v in raw.items()},
        "nan_metrics": nan,
    }


def score_paper_compat(
    dataset: str,
    subtask: str,
    raw_outputs: Sequence[str],
    golds: Sequence[Any],
    *,
    emotions: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    subsets: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score aligned replies and gold answer texts exactly as MMAFFBen's notebook would.

    The task's parser is applied to every reply AND every gold text (the notebook parses both; gold texts keep
    whatever trailing "\\n" they have, as the notebook keeps it), then the task's metric is computed on the whole
    list. `emotions` (one of anger/fear/joy/sadness per row) is required for SemEval EI-reg/EI-oc, which the
    notebook scores per emotion and averages with `np.mean`. `languages` / `subsets` add ``per_language`` /
    ``per_subset`` blocks computed with the same metric on each group (the notebook's MMS/XED/SAMSEMO language
    tables, SemEval's separate language blocks, EWECT's usual/virus blocks); the top-level numbers are always
    pooled over the rows given.

    Returns a JSON-ready dict: ``metrics`` (clear name -> float, or None where the notebook would get NaN),
    ``nan_metrics`` (the names that were NaN), ``notebook_names`` (clear name -> the notebook's label),
    ``saved`` (what the notebook writes to its results CSV, in order), ``parse_fallbacks`` (how many replies and
    golds hit the parser's silent default; a diagnostic the notebook never reports), ``notes``.
    Raises `NotInPaperError` for datasets/subtasks the notebook does not score.
    """
    task = paper_compat_task(dataset, subtask)
    raw_outputs, golds = list(raw_outputs), list(golds)
    if len(raw_outputs) != len(golds):
        raise ValueError(f"{dataset}/{subtask}: {len(raw_outputs)} outputs vs {len(golds)} golds")
    if not golds:
        raise ValueError(f"{dataset}/{subtask}: nothing to score")
    groups: dict[str, list[str]] = {}
    for name, values in (("language", languages), ("subset", subsets), ("emotion", emotions)):
        if values is not None:
            values = [str(v) for v in values]
            if len(values) != len(golds):
                raise ValueError(f"{dataset}/{subtask}: {len(values)} {name}s for {len(golds)} rows")
            groups[name] = values
    if task.per_emotion:
        if "emotion" not in groups:
            raise ValueError(f"{dataset}/{subtask}: the notebook scores EI per emotion; pass emotions=")
        unknown = sorted(set(groups["emotion"]) - set(EI_EMOTIONS))
        if unknown:
            raise ValueError(f"{dataset}/{subtask}: emotions must be among {EI_EMOTIONS}, got {unknown}")

    parse = _memoised(task.parser)
    fell_back = _memoised(lambda text: _fell_back(task, text, parse(text)))
    parsed_preds = [parse(text) for text in raw_outputs]
    parsed_golds = [parse(text) for text in golds]
    emotions_list = groups.get("emotion")

    result: dict[str, Any] = {
        "mode": "paper_compat",
        "dataset": dataset,
        "subtask": subtask,
        "notebook_block": task.notebook_block,
        **_json_block(task, parsed_golds, parsed_preds, emotions_list),
        "notebook_names": dict(task.notebook_names),
        "saved": list(task.saved),
        "parse_fallbacks": {
            "predictions": sum(map(fell_back, raw_outputs)),
            "golds": sum(map(fell_back, golds)),
        },
        "notes": list(task.notes),
    }
    for name in ("language", "subset"):
        if name not in groups:
            continue
        block = {}
        for value in sorted(set(groups[name])):
            rows = [i for i, v in enumerate(groups[name]) if v == value]
            block[value] = _json_block(
                task,
                [parsed_golds[i] for i in rows],
                [parsed_preds[i] for i in rows],
                [emotions_list[i] for i in rows] if emotions_list else None,
            )
        result[f"per_{name}"] = block
    if task.language_scoring:
        result["notes"].append(f"notebook languages: {task.language_scoring}")
    if task.pooled_languages_note and len(set(groups.get("language", []))) > 1:
        result["notes"].append(task.pooled_languages_note)
    result["has_nan"] = bool(result["nan_metrics"]) or any(
        b["nan_metrics"] for name in ("language", "subset") for b in result.get(f"per_{name}", {}).values()
    )
    return result
