"""Paper-compatible scoring: MMAFFBen's notebook parsers and metrics reproduced, quirks included.

Probe strings come from the shared research notes (`/work/shared/research/eval.md`, §2.3 lines 126-162 and §2.4
lines 164-186); each case cites its line there ("eval.md:L131") and the original function in MMAFFBen's
`utils/tools.py`. Cases marked "derived" follow from the original regex/algorithm but are not listed in eval.md.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score, jaccard_score

from mmaff.eval import paper_compat as pc
from mmaff.eval.paper_compat import (
    EI_EMOTIONS,
    PAPER_COMPAT_TASKS,
    NotInPaperError,
    acc_and_f1_multilabel,
    ei_mean,
    exact_match_acc_and_f1,
    extract_integers_EIoc,
    extract_integers_Voc,
    extract_label_CHSIMS_pol,
    extract_label_MELD_sen,
    extract_label_MMS,
    extract_label_onlineshopping,
    extract_values_EMOTIC_vad,
    get_scores_CFAPS_emoint,
    get_scores_CHSIMS_strength,
    get_scores_EIreg,
    get_scores_Vreg,
    paper_compat_reason,
    paper_compat_task,
    parse_labels_CFAPS_emo,
    parse_labels_Ec,
    parse_labels_EMOTIC_emo,
    parse_labels_EWECT,
    parse_labels_FER2013,
    parse_labels_MELD_emo,
    parse_labels_SAMSEMO,
    parse_labels_XED,
    polarity_acc_and_f1,
    score_paper_compat,
    series_corr,
    vad_pearson,
)


def on(vector: list[int]) -> list[int]:
    """The set columns of a multi-hot vector."""
    return [i for i, v in enumerate(vector) if v]


# ====================================================================== real-valued parsers

UNIT_PARSERS = [get_scores_EIreg, get_scores_CFAPS_emoint]  # tools.py: CFAPS_emoint is a copy of EIreg


@pytest.mark.parametrize("parser", UNIT_PARSERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The intensity of anger in this tweet is 0.65.", 0.65),  # eval.md:L131 "…is 0.65." -> 0.65
        ("On a scale from 1 to 10, I rate 7", 1.0),  # eval.md:L131 first number is 1 -> 1.0
        (".5", 1.0),  # eval.md:L132 reads "5", clipped -> 1.0
        ("High intensity", 0.5),  # eval.md:L132 no number -> 0.5
        ("0.734", 0.734),  # eval.md:L40 EI-reg gold format ("0.734")
        ("0.460843373493975\n", 0.460843373493975),  # eval.md:L55 + L90-91 CFAPS-EI gold keeps its "\n"
        ("Intensity 10.734", 1.0),  # derived: "\b0\." needs a word boundary; falls back to 10.734 -> 1.0
        ("-0.3", 0.3),  # derived: "\b" matches after "-", so "0.3" is read and the sign is dropped
        ("7 out of 10, i.e. 0.7", 0.7),  # derived: any "0.x" beats an earlier number
    ],
)
def test_unit_interval_parsers(parser, text, expected):
    # tools.py get_scores_EIreg / get_scores_CFAPS_emoint; eval.md:L129-132
    assert parser(text) == pytest.approx(expected)
    assert isinstance(parser(text), float)


SIGNED_PARSERS = [get_scores_Vreg, get_scores_CHSIMS_strength]  # tools.py: CHSIMS_strength is a copy of Vreg


@pytest.mark.parametrize("parser", SIGNED_PARSERS, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("On a scale of -1 to 1 it is 0.6", -1.0),  # eval.md:L134 first number wins -> -1.0
        ("no number here", 0.0),  # eval.md:L134 no number -> 0
        ("-1.0\n", -1.0),  # eval.md:L91 CH-SIMS gold "-1.0\n"
        ("-0.4", -0.4),  # notebook stored output, video row 8150
        ("7", 1.0),  # eval.md:L133 clipped to [-1, 1]
    ],
)
def test_signed_parsers(parser, text, expected):
    # tools.py get_scores_Vreg / get_scores_CHSIMS_strength; eval.md:L133-134
    assert parser(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Valence: 0.2, Arousal: 0.5, Dominance: -0.3", (0.0, 0.0, 0.0)),  # eval.md:L136 capitalised -> (0,0,0)
        ("valence: -1, arousal: 0.5, dominance: -0.25", (0.0, 0.5, -0.25)),  # eval.md:L137 negative integer -> 0.0
        ("valence: 0.1, arousal: 0.2, dominance: -0.3", (0.1, 0.2, -0.3)),  # eval.md:L52 answer format
        ("valence: 1, arousal: .5, dominance: -.5\n", (1.0, 0.5, -0.5)),  # derived: "\d+" and "-?\d*\.\d+"
        ("arousal: 0.4", (0.0, 0.4, 0.0)),  # eval.md:L136 missing -> 0.0
        ("valence -1", (1.0, 0.0, 0.0)),  # derived: "-" taken as the optional separator, so +1.0
    ],
)
def test_extract_values_EMOTIC_vad(text, expected):
    # tools.py extract_values_EMOTIC_vad; eval.md:L135-137
    assert extract_values_EMOTIC_vad(text) == pytest.approx(expected)


def test_regex_parsers_raise_on_non_strings_like_the_notebook():
    # tools.py: re.search / re.findall on a non-string raise TypeError (no isinstance guard there)
    for parser in (get_scores_EIreg, get_scores_Vreg, extract_integers_EIoc, extract_values_EMOTIC_vad):
        with pytest.raises(TypeError):
            parser(0.5)


# ====================================================================== ordinal parsers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Among the 4 classes, I choose 2", 3),  # eval.md:L141 first integer 4, clipped -> 3
        ("2: moderate", 2),  # eval.md:L41 leading integer ("2: ...")
        ("no intensity at all", 0),  # eval.md:L140 none -> 0
        ("-1", 0),  # eval.md:L140 clipped to [0, 3]
        ("0.8", 0),  # derived: "[-+]?\d+" reads the 0 of "0.8"
    ],
)
def test_extract_integers_EIoc(text, expected):
    # tools.py extract_integers_EIoc; eval.md:L140-141
    assert extract_integers_EIoc(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-3: very negative", -3),  # eval.md:L42 prompt format
        ("On a scale from -3 to 3, I give 2", -3),  # eval.md:L142 first integer within [-3, 3]
        ("5 stars, so 2", 2),  # eval.md:L142 integers outside [-3, 3] are skipped, not clipped
        ("slightly positive", 0),  # eval.md:L142 none -> 0
    ],
)
def test_extract_integers_Voc(text, expected):
    # tools.py extract_integers_Voc; eval.md:L142
    assert extract_integers_Voc(text) == expected


# ====================================================================== polarity parsers

THREE_WAY = [extract_label_MMS, extract_label_MELD_sen, extract_label_CHSIMS_pol]


@pytest.mark.parametrize("parser", THREE_WAY, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Rating: 10 positive", 0),  # eval.md:L146 "0" in "10" -> neutral
        ("1.0", 0),  # eval.md:L146
        ("1. positive (confidence 0.9)", 0),  # eval.md:L147
        ("not negative, it is positive", -1),  # eval.md:L147
        ("-1. negative", -1),  # eval.md:L58 gold format
        ("0. neutral\n", 0),  # eval.md:L58-59 gold format, video label keeps "\n" (L90-91)
        ("1. positive", 1),  # eval.md:L58 gold format
        ("Positive", 1),  # eval.md:L145 case-insensitive words
        ("I cannot tell", 9),  # eval.md:L146 else 9
        (None, 9),  # tools.py: non-string -> 9
    ],
)
def test_three_way_polarity(parser, text, expected):
    # tools.py extract_label_MMS / _MELD_sen / _CHSIMS_pol; eval.md:L144-147
    assert parser(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0. neutral", 9),  # eval.md:L147 onlineshopping has no neutral branch -> 9
        ("-1. negative", -1),  # eval.md:L47 gold format
        ("1. positive", 1),  # eval.md:L47 gold format
        ("not negative, it is positive", -1),  # eval.md:L147
        ("Rating: 10 positive", 1),  # eval.md:L145 no "0" test here, so the "1" of "10" -> positive
    ],
)
def test_extract_label_onlineshopping(text, expected):
    # tools.py extract_label_onlineshopping; eval.md:L144-147
    assert extract_label_onlineshopping(text) == expected


# ====================================================================== label-list parsers


@pytest.mark.parametrize(
    ("parser", "text", "expected"),
    [
        (parse_labels_EMOTIC_emo, "16. doubt/confusion", [16]),  # eval.md:L158 only by number
        (parse_labels_EMOTIC_emo, "1. happiness, 16. doubt/confusion", [1]),  # eval.md:L159 only happiness
        (parse_labels_SAMSEMO, "99. other emotions", []),  # eval.md:L159-160 all-zero
        (parse_labels_SAMSEMO, "99. other emotions\n", []),  # eval.md:L56 + L90-91 video gold with "\n"
        (parse_labels_Ec, "Based on the text, I would say 0.8 intensity", [0, 8]),  # eval.md:L161 neutral + love
        (parse_labels_Ec, "{4}. Fear", [4]),  # eval.md:L162 (notebook row 65251)
        (parse_labels_Ec, "Joy!", [1]),  # eval.md:L162
        (parse_labels_Ec, "1. joy, 8. love", [1, 8]),  # eval.md:L44 gold format
        (parse_labels_Ec, "0. neutral", [0]),  # eval.md:L44 "0. neutral" answer
        (parse_labels_Ec, "3. anger, 11", [3]),  # eval.md:L155 a name suppresses every number
        (parse_labels_Ec, "4and5", [4, 5]),  # eval.md:L152 "and" replaced by "," inside words -> two ids
        (parse_labels_Ec, "12. grief", []),  # eval.md:L156 id outside range(12) vanishes
        (parse_labels_Ec, None, []),  # eval.md:L151 non-string -> all-zero
        (parse_labels_XED, "8. trust", [8]),  # eval.md:L50 XED labels
        (parse_labels_EWECT, "1. happiness, 3. anger", [1, 3]),  # eval.md:L172 multi-hot on a single-label task
        (parse_labels_EWECT, "6. disgust", []),  # eval.md:L45 EWECT has no disgust; 6 is outside range(6)
        (parse_labels_FER2013, "7. contempt", []),  # eval.md:L156 id 7 outside range(7)
        (parse_labels_CFAPS_emo, "Sadness", [2]),  # eval.md:L153 exact name
        (parse_labels_MELD_emo, "5. surprise\n", [5]),  # eval.md:L91 video gold "5. surprise\n"
        (parse_labels_SAMSEMO, "7", [7]),  # derived: a bare 7 sets SAMSEMO column 7 (eval.md:L160 says never)
        (parse_labels_SAMSEMO, "1. happiness and 5. surprise", [1, 5]),  # eval.md:L152 "and" -> ","
    ],
)
def test_label_list_parsers(parser, text, expected):
    # tools.py parse_labels_* (shared algorithm); eval.md:L149-162
    vector = parser(text)
    assert on(vector) == expected
    assert len(vector) == len(next(t.label_map for t in PAPER_COMPAT_TASKS.values() if t.parser is parser))


def test_label_vector_widths_match_the_notebook():
    # eval.md:L44-57: 12 E-c, 6 EWECT, 9 XED, 27 EMOTIC, 7 FER2013/CFAPS/MELD, 8 SAMSEMO columns
    widths = {
        parse_labels_Ec: 12,
        parse_labels_EWECT: 6,
        parse_labels_XED: 9,
        parse_labels_EMOTIC_emo: 27,
        parse_labels_FER2013: 7,
        parse_labels_CFAPS_emo: 7,
        parse_labels_MELD_emo: 7,
        parse_labels_SAMSEMO: 8,
    }
    for parser, width in widths.items():
        assert len(parser("")) == width, parser.__name__


def test_no_category_name_is_broken_by_the_and_or_with_replacement():
    # eval.md:L152: a name containing "and"/"or"/"with" could never match; none of MMAFFBen's does
    for task in PAPER_COMPAT_TASKS.values():
        for name in task.label_map or {}:
            if name in ("doubt/confusion", "other emotions"):
                continue  # these two never match by name for other reasons (eval.md:L158-160)
            assert on(task.parser(name)) == [task.label_map[name]], (task.dataset, name)


# ====================================================================== metrics


def test_weighted_jaccard_acc_is_not_sample_jaccard():
    # eval.md:L168-170 ("get_ACCandF1": "acc" = jaccard_score(average='weighted')); pitfall 7 (eval.md:L441-443)
    y_true = np.array([[1, 1], [1, 0]])
    y_pred = np.array([[1, 0], [1, 0]])
    acc, micro, macro = acc_and_f1_multilabel(y_true, y_pred)
    assert acc == pytest.approx(2 / 3)  # label 0: J=1 (support 2), label 1: J=0 (support 1)
    assert jaccard_score(y_true, y_pred, average="samples") == pytest.approx(0.75)  # SemEval's accuracy
    assert micro == pytest.approx(0.8)
    assert macro == pytest.approx(0.5)


def test_zero_division_one_inflates_macro_f1_on_an_unused_column():
    # eval.md:L171 macro-F1 zero_division=1; pitfall 8 (eval.md:L447-449): an empty column scores 1.0
    y_true = np.array([[1, 0, 0], [0, 1, 0]])
    y_pred = np.array([[1, 0, 0], [1, 0, 0]])
    _, _, macro = acc_and_f1_multilabel(y_true, y_pred)
    assert macro == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert f1_score(y_true, y_pred, average="macro", zero_division=0) == pytest.approx((2 / 3) / 3)
    assert f1_score(y_true, y_pred, average="macro", labels=[0, 1]) == pytest.approx(1 / 3)
    _, _, exact_macro = exact_match_acc_and_f1(y_true, y_pred)
    assert exact_macro == macro


def test_exact_match_acc_counts_a_two_label_answer_as_wrong():
    # eval.md:L172 EWECT/FER2013/CFAPS "acc" = accuracy_score on multi-hot rows; pitfall 7 (eval.md:L443-445)
    golds = ["1. happiness", "3. anger"]
    preds = ["1. happiness, 3. anger", "3. anger"]
    result = score_paper_compat("ewect", "EC", preds, golds)
    assert result["metrics"]["exact_match_accuracy"] == pytest.approx(0.5)
    assert result["saved"] == ["exact_match_accuracy", "macro_f1_zd1"]
    assert result["notebook_names"]["exact_match_accuracy"] == "acc"


def test_invalid_nine_enters_polarity_macro_f1():
    # eval.md:L173-174 sklearn infers labels (9 becomes a class); eval.md:L196-197 + pitfall 6 (L437-439) onlineshopping 0.832 vs 0.571
    acc, macro = polarity_acc_and_f1([1, 1, 1, -1, -1, -1], [1, 1, 1, -1, -1, 9])
    assert acc == pytest.approx(5 / 6)
    assert macro == pytest.approx(0.6)  # (F1(-1)=0.8 + F1(1)=1.0 + F1(9)=0) / 3
    assert f1_score([1, 1, 1, -1, -1, -1], [1, 1, 1, -1, -1, 9], average="macro", labels=[-1, 1]) == pytest.approx(0.9)
    # the same gap end-to-end: a "0. neutral" reply on binary onlineshopping parses to 9 (eval.md:L147)
    golds = ["1. positive"] * 3 + ["-1. negative"] * 3
    preds = ["1. positive"] * 3 + ["-1. negative"] * 2 + ["0. neutral"]
    result = score_paper_compat("online_shopping", "SP", preds, golds)
    assert result["metrics"] == {"accuracy": pytest.approx(5 / 6), "macro_f1_inferred_labels": pytest.approx(0.6)}
    assert result["parse_fallbacks"] == {"predictions": 1, "golds": 0}


def test_ei_mean_nan_propagates_and_is_reported_as_none():
    # eval.md:L167 plain mean of the four (NaN if any is NaN); pitfall 11 (eval.md:L457-459)
    assert math.isnan(ei_mean([0.5, float("nan"), 0.2, 0.1]))
    golds = ["0.1", "0.5", "0.9", "0.2", "0.4", "0.6", "0.3", "0.7", "0.1", "0.5", "0.6", "0.8"]
    preds = ["0.2", "0.4", "0.8", "High", "High", "High", "0.3", "0.6", "0.2", "0.4", "0.7", "0.9"]
    emotions = ["anger"] * 3 + ["fear"] * 3 + ["joy"] * 3 + ["sadness"] * 3
    result = score_paper_compat("semeval2018", "EI-reg", preds, golds, emotions=emotions)
    assert result["metrics"]["pearson_fear"] is None  # constant 0.5 fallbacks -> Series.corr NaN
    assert result["metrics"]["pearson_mean"] is None
    assert set(result["nan_metrics"]) == {"pearson_fear", "pearson_mean"} and result["has_nan"]
    assert result["metrics"]["pearson_anger"] == pytest.approx(series_corr([0.2, 0.4, 0.8], [0.1, 0.5, 0.9]))
    assert result["parse_fallbacks"]["predictions"] == 3
    json.dumps(result, allow_nan=False)  # valid JSON


def test_ei_mean_without_nan():
    golds = ["0.1", "0.5", "0.9"] * 4
    preds = ["0.2", "0.4", "0.8"] * 4
    emotions = [e for e in EI_EMOTIONS for _ in range(3)]
    result = score_paper_compat("semeval2018", "EI-oc", ["1", "2", "3"] * 4, ["0: no", "2: moderate", "3: high"] * 4,
                                emotions=emotions)  # fmt: skip
    assert result["metrics"]["pearson_mean"] == pytest.approx(series_corr([1, 2, 3], [0, 2, 3]))
    assert result["notebook_names"]["pearson_mean"] == "ave" and not result["has_nan"]
    reg = score_paper_compat("semeval2018", "EI-reg", preds, golds, emotions=emotions)
    assert list(reg["metrics"]) == list(reg["saved"]) == ["pearson_mean"] + [f"pearson_{e}" for e in EI_EMOTIONS]


def test_series_corr_matches_pandas():
    # eval.md:L166 Series.corr(method='pearson') drops NaN pairs
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    x[[3, 7]] = np.nan
    y[[7, 11]] = np.nan
    assert series_corr(x, y) == pytest.approx(pd.Series(x).corr(pd.Series(y), method="pearson"), abs=1e-12)
    assert math.isnan(series_corr([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]))  # constant -> NaN, no exception
    assert math.isnan(pd.Series([0.5, 0.5, 0.5]).corr(pd.Series([0.1, 0.2, 0.3])))
    assert math.isnan(series_corr([0.1], [0.2]))
    assert math.isnan(series_corr([], []))


def test_vad_pearson_is_scipy_per_dimension():
    # eval.md:L166 scipy.stats.pearsonr for VAD; eval.md:L52 no average saved
    from scipy.stats import pearsonr

    golds = ["valence: 0.1, arousal: 0.2, dominance: -0.3", "valence: 0.5, arousal: -0.2, dominance: 0.3",
             "valence: -0.4, arousal: 0.6, dominance: 0.1\n"]  # fmt: skip
    preds = ["valence: 0.2, arousal: 0.1, dominance: -0.1", "valence: 0.4, arousal: 0.0, dominance: 0.2",
             "Valence: -0.5, arousal: 0.5, dominance: 0.0"]  # fmt: skip
    result = score_paper_compat("emotic", "VAD", preds, golds)
    g = [extract_values_EMOTIC_vad(t) for t in golds]
    p = [extract_values_EMOTIC_vad(t) for t in preds]
    assert p[2][0] == 0.0  # the capitalised key fell back
    for dim, key in enumerate(("pearson_valence", "pearson_arousal", "pearson_dominance")):
        expected = pearsonr([row[dim] for row in p], [row[dim] for row in g])[0]
        assert result["metrics"][key] == pytest.approx(expected)
    assert result["notebook_names"] == {"pearson_valence": "V", "pearson_arousal": "A", "pearson_dominance": "D"}
    assert result["parse_fallbacks"] == {"predictions": 1, "golds": 0}
    assert all(math.isnan(v) for v in vad_pearson([(0.1, 0.2, 0.3)], [(0.1, 0.2, 0.3)]))


def test_meld_ec_acc_understates_accuracy():
    # eval.md:L201-203: MELD-EC "acc" 0.471 while micro-F1 0.630 (micro-F1 = accuracy for one label per row)
    golds = ["0. neutral", "0. neutral", "0. neutral", "1. happiness", "3. anger", "2. sadness"]
    preds = ["0. neutral", "0. neutral", "1. happiness", "1. happiness", "0. neutral", "2. sadness"]
    result = score_paper_compat("meld", "EC", preds, golds)
    m = result["metrics"]
    assert m["micro_f1"] == pytest.approx(4 / 6)
    assert m["jaccard_weighted"] < m["micro_f1"]
    assert result["saved"] == ["jaccard_weighted", "macro_f1_zd1"]  # micro printed, not saved (eval.md:L181)


# ====================================================================== the table and score_paper_compat

EXPECTED_PAIRS = {
    ("semeval2018", "EI-reg"),
    ("semeval2018", "EI-oc"),
    ("semeval2018", "V-reg"),
    ("semeval2018", "V-oc"),
    ("semeval2018", "E-c"),
    ("ewect", "EC"),
    ("online_shopping", "SP"),
    ("mms", "SP"),
    ("xed", "EC"),
    ("emotic", "EC"),
    ("emotic", "VAD"),
    ("fer2013", "EC"),
    ("cfaps", "EC"),
    ("cfaps", "EI"),
    ("samsemo", "EC"),
    ("meld", "EC"),
    ("meld", "SP"),
    ("chsims", "SP"),
    ("chsims", "SI"),
}


def test_table_covers_exactly_the_notebooks_blocks():
    assert set(PAPER_COMPAT_TASKS) == EXPECTED_PAIRS
    for task in PAPER_COMPAT_TASKS.values():
        assert set(task.saved) <= set(task.metric_keys) == set(task.notebook_names)
        assert task.notebook_block


def test_label_maps_have_mmaffben_ids():
    # The maps come from registry.yaml; these are MMAFFBen's own ids (eval.md §1), written out independently.
    ekman = {"neutral": 0, "happiness": 1, "sadness": 2, "anger": 3, "fear": 4, "surprise": 5, "disgust": 6}
    assert dict(pc.FER2013_MAP) == dict(pc.CFAPS_MAP) == dict(pc.MELD_MAP) == ekman
    assert dict(pc.EWECT_MAP) == {k: v for k, v in ekman.items() if k != "disgust"}
    assert dict(pc.SAMSEMO_MAP) == {**ekman, "other emotions": 99}
    ec = "joy sadness anger fear surprise disgust anticipation love optimism pessimism trust".split()
    assert dict(pc.SEMEVAL_EC_MAP) == {"neutral": 0, **{name: i for i, name in enumerate(ec, 1)}}
    xed = "joy sadness anger fear surprise disgust anticipation trust".split()
    assert dict(pc.XED_MAP) == {"neutral": 0, **{name: i for i, name in enumerate(xed, 1)}}
    assert len(pc.EMOTIC_MAP) == 27 and pc.EMOTIC_MAP["neutral"] == 0  # a column gold never uses (eval.md §1)
    assert pc.EMOTIC_MAP["happiness"] == 1 and pc.EMOTIC_MAP["doubt/confusion"] == 16
    assert pc.EMOTIC_MAP["yearning"] == 26


def test_every_registry_subtask_is_in_the_table_or_has_a_reason():
    from mmaff.data.registry import load_registry

    for dataset, spec in load_registry().items():
        for subtask in spec.subtasks:
            reason = paper_compat_reason(dataset, subtask)
            assert ((dataset, subtask) in PAPER_COMPAT_TASKS) == (reason is None), (dataset, subtask)


def test_eval_task_flags_agree_with_the_table():
    tasks = pytest.importorskip("mmaff.eval.tasks")
    flagged = {(t.dataset, t.subtask) for t in tasks.load_tasks().values() if t.paper_compat}
    assert flagged == set(PAPER_COMPAT_TASKS)


@pytest.mark.parametrize(
    ("dataset", "subtask", "needle"),
    [
        ("weibo_senti", "SP", "absent from run_inference.sh"),  # eval.md:L48
        ("goemotions", "EC", "not part of MMAFFBen"),
        ("masive", "ASI", "not part of MMAFFBen"),
        ("synthetic_emotions", "EC", "not part of MMAFFBen"),
        ("semeval2018", "V-reg+E-c", "joint"),
        ("semeval2018", "E-c>V-reg", "two-step"),
        ("meld", "EC+SP", "joint"),
        ("chsims", "SP+SI", "joint"),
    ],
)
def test_datasets_the_notebook_does_not_score_are_refused(dataset, subtask, needle):
    assert needle in paper_compat_reason(dataset, subtask)
    with pytest.raises(NotInPaperError) as error:
        paper_compat_task(dataset, subtask)
    assert needle in error.value.reason
    with pytest.raises(NotInPaperError):
        score_paper_compat(dataset, subtask, ["x"], ["x"])


def test_gold_trailing_newline_is_kept_and_harmless():
    # eval.md:L89-91 image/video labels end in "\n"; the notebook does not strip them (only the JSONL line)
    preds = ["0. neutral", "5. surprise", "1. happiness", "2. sadness"]
    golds = ["5. surprise\n", "5. surprise\n", "1. happiness\n", "0. neutral\n"]
    with_nl = score_paper_compat("meld", "EC", preds, golds)
    without = score_paper_compat("meld", "EC", preds, [g.rstrip("\n") for g in golds])
    assert with_nl["metrics"] == without["metrics"]
    si = score_paper_compat("chsims", "SI", ["-0.4", "-0.8", "0.6"], ["-1.0\n", "-0.2\n", "0.8\n"])
    assert si["metrics"]["pearson"] == pytest.approx(series_corr([-0.4, -0.8, 0.6], [-1.0, -0.2, 0.8]))
    assert si["notebook_names"] == {"pearson": "CHSIMS_strength"}


def test_e_c_end_to_end_and_per_language():
    # eval.md:L44 gold "1. joy, 8. love"; L161 free-text prediction -> neutral + love
    golds = ["1. joy, 8. love", "3. anger", "0. neutral", "4. fear, 10. pessimism"]
    preds = ["Joy!", "{3}. Anger", "Based on the text, I would say 0.8 intensity", "4. fear"]
    languages = ["en", "en", "es", "es"]
    result = score_paper_compat("semeval2018", "E-c", preds, golds, languages=languages)
    y_true = np.array([parse_labels_Ec(g) for g in golds])
    y_pred = np.array([parse_labels_Ec(p) for p in preds])
    expected = acc_and_f1_multilabel(y_true, y_pred)
    assert [result["metrics"][k] for k in ("jaccard_weighted", "micro_f1", "macro_f1_zd1")] == pytest.approx(expected)
    assert result["notebook_names"] == {"jaccard_weighted": "acc", "micro_f1": "mic-f1", "macro_f1_zd1": "mac-f1"}
    assert set(result["per_language"]) == {"en", "es"} and result["per_language"]["en"]["n"] == 2
    assert any("pool several SemEval languages" in note for note in result["notes"])
    json.dumps(result, allow_nan=False)


def test_mms_per_language_and_subsets():
    golds = ["1. positive", "0. neutral", "-1. negative", "1. positive"]
    preds = ["1. positive", "Rating: 10 positive", "-1. negative", "nothing"]
    result = score_paper_compat("mms", "SP", preds, golds, languages=["de", "de", "pl", "pl"], subsets=["a"] * 4)
    assert result["metrics"]["accuracy"] == pytest.approx(3 / 4)
    assert result["per_language"]["pl"]["metrics"]["accuracy"] == pytest.approx(0.5)
    assert result["per_subset"]["a"]["metrics"] == result["metrics"]
    assert any("lang_1..lang_27" in note for note in result["notes"])


def test_score_paper_compat_argument_checks():
    with pytest.raises(ValueError, match="outputs vs"):
        score_paper_compat("mms", "SP", ["1"], ["1", "0"])
    with pytest.raises(ValueError, match="nothing to score"):
        score_paper_compat("mms", "SP", [], [])
    with pytest.raises(ValueError, match="pass emotions"):
        score_paper_compat("semeval2018", "EI-reg", ["0.1", "0.2"], ["0.1", "0.3"])
    with pytest.raises(ValueError, match="emotions must be among"):
        score_paper_compat("semeval2018", "EI-reg", ["0.1", "0.2"], ["0.1", "0.3"], emotions=["love", "love"])
    with pytest.raises(ValueError, match="languages for"):
        score_paper_compat("mms", "SP", ["1"], ["1"], languages=["en", "de"])


def test_docstrings_name_the_original_and_its_quirk():
    # every parser says which tools.py function it reproduces
    for name in pc.__all__:
        obj = getattr(pc, name)
        if callable(obj) and name.startswith(("get_scores", "extract_", "parse_labels")):
            assert f"tools.{name}" in obj.__doc__, name
