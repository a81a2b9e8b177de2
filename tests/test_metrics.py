"""Tests for mmaff.eval.metrics: hand-computed values (arithmetic in comments), edge cases, sklearn/scipy cross-checks."""

from __future__ import annotations

import itertools
import json
import random
import time

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    jaccard_score,
    label_ranking_average_precision_score,
    roc_auc_score,
)

from mmaff.eval import metrics as M

# Any warning (sklearn UndefinedMetricWarning, scipy ConstantInputWarning, numpy RuntimeWarning) fails a test.
pytestmark = pytest.mark.filterwarnings("error")

approx = pytest.approx


def _json_ok(result: dict) -> None:
    """Plain JSON, and no NaN / inf anywhere."""
    json.dumps(result, allow_nan=False)


def _multi_hot(rows: list[list[str]], labels: list[str]) -> np.ndarray:
    return np.array([[label in row for label in labels] for row in rows], dtype=int)


# ---------------------------------------------------------------- single_label

POLARITY = ["neg", "neu", "pos"]


def test_single_label_hand_computed() -> None:
    gold = ["neg", "neg", "neu", "pos", "pos", "pos"]
    pred = ["neg", "neu", "neu", "pos", None, "great"]  # None = parse failure, "great" = out of space
    r = M.single_label(gold, pred, POLARITY)
    _json_ok(r)
    # correct: items 0, 2, 3 -> 3 / 6
    assert r["accuracy"] == approx(0.5)
    assert (r["invalid"], r["out_of_space"], r["invalid_rate"]) == (2, 1, approx(1 / 3))
    # neg: tp 1, predicted 1, support 2 -> P 1, R 1/2, F1 2*1/(2+0+1) = 2/3
    # neu: tp 1, predicted 2, support 1 -> P 1/2, R 1, F1 2/(2+1+0) = 2/3
    # pos: tp 1, predicted 1, support 3 -> P 1, R 1/3, F1 2/(2+0+2) = 1/2
    assert r["per_label"]["neg"] == {
        "precision": 1.0,
        "recall": 0.5,
        "f1": approx(2 / 3),
        "support": 2,
        "predicted": 1,
    }
    assert r["per_label"]["neu"]["f1"] == approx(2 / 3)
    assert r["per_label"]["pos"]["recall"] == approx(1 / 3)
    # macro = (2/3 + 2/3 + 1/2) / 3 = 11/18
    assert r["macro_f1"] == approx(11 / 18)
    # micro over the fixed labels: TP 3, FP 1 (neu for a neg), FN 3 -> P 3/4, R 1/2 = accuracy, F1 6/10
    assert (r["micro_precision"], r["micro_recall"], r["micro_f1"]) == (approx(0.75), approx(0.5), approx(0.6))
    assert r["confusion"]["columns"] == ["neg", "neu", "pos", M.INVALID]
    assert r["confusion"]["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2]]


def test_single_label_matches_sklearn_with_fixed_labels() -> None:
    gold = ["neg", "neg", "neu", "pos", "pos", "pos"]
    pred = ["neg", "neu", "neu", "pos", None, "great"]
    mapped = [p if p in POLARITY else "__invalid__" for p in pred]
    r = M.single_label(gold, pred, POLARITY)
    for average in ("macro", "micro"):
        expected = f1_score(gold, mapped, labels=POLARITY, average=average, zero_division=0)
        assert r[f"{average}_f1"] == approx(expected)
    # MMAFFBen's pitfall 6: without labels= the invalid value becomes a 4th class and changes macro-F1.
    drifting = f1_score(gold, mapped, average="macro", zero_division=0)
    assert drifting != approx(r["macro_f1"])


def test_single_label_label_never_in_gold_zero_division() -> None:
    labels = ["a", "b", "c"]  # "c" is neither in gold nor predicted
    gold, pred = ["a", "a", "b"], ["a", "b", "b"]
    r = M.single_label(gold, pred, labels)
    # a: tp1 pred1 sup2 -> F1 2/3; b: tp1 pred2 sup1 -> F1 2/3; c: 0/0 -> 0 (zero_division=0)
    assert r["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 0}
    assert r["macro_f1"] == approx(4 / 9)  # (2/3 + 2/3 + 0) / 3
    assert f1_score(gold, pred, labels=labels, average="macro", zero_division=0) == approx(4 / 9)
    # zero_division=1 (MMAFFBen) would give c an F1 of 1: (2/3 + 2/3 + 1) / 3 = 7/9
    assert f1_score(gold, pred, labels=labels, average="macro", zero_division=1) == approx(7 / 9)


def test_single_label_invalid_is_wrong_but_not_a_class() -> None:
    labels = ["a", "b"]
    invalid = M.single_label(["a", "b"], [None, "b"], labels)
    wrong = M.single_label(["a", "b"], ["b", "b"], labels)
    assert invalid["accuracy"] == wrong["accuracy"] == 0.5
    # invalid: a tp0 pred0 sup1 -> 0; b tp1 pred1 sup1 -> 1; macro 1/2; micro TP1 FP0 FN1 -> 2/3
    assert (invalid["macro_f1"], invalid["micro_f1"]) == (approx(0.5), approx(2 / 3))
    # wrong "b": a -> 0; b tp1 pred2 sup1 -> 2/3; macro 1/3; micro TP1 FP1 FN1 -> 1/2
    assert (wrong["macro_f1"], wrong["micro_f1"]) == (approx(1 / 3), approx(0.5))
    assert (invalid["invalid"], wrong["invalid"]) == (1, 0)


def test_single_label_unseen_prediction_adds_no_class() -> None:
    r = M.single_label(["a", "b"], ["zzz", "b"], ["a", "b"])
    assert r["labels"] == ["a", "b"] and set(r["per_label"]) == {"a", "b"}
    assert r["confusion"]["matrix"] == [[0, 0, 1], [0, 1, 0]]
    assert (r["invalid"], r["out_of_space"]) == (1, 1)
    # an unhashable junk prediction is out of space too, not a crash
    assert M.single_label(["a"], [["a"]], ["a", "b"])["out_of_space"] == 1


def test_single_label_all_invalid_and_single_element() -> None:
    r = M.single_label(["a", "b"], [None, None], ["a", "b"])
    _json_ok(r)
    assert (r["accuracy"], r["macro_f1"], r["micro_f1"], r["invalid"]) == (0.0, 0.0, 0.0, 2)
    assert r["confusion"]["matrix"] == [[0, 0, 1], [0, 0, 1]]
    one = M.single_label(["a"], ["a"], ["a", "b"])
    assert one["accuracy"] == 1.0
    assert one["macro_f1"] == 0.5  # a: F1 1; b: no support, no prediction -> 0


def test_single_label_int_labels_and_errors() -> None:
    r = M.single_label([-1, 0, 1], [-1, 1, 1], [-1, 0, 1])
    assert r["accuracy"] == approx(2 / 3)
    assert set(r["per_label"]) == {"-1", "0", "1"}
    with pytest.raises(ValueError, match="not in the label list"):
        M.single_label(["x"], ["a"], ["a"])
    with pytest.raises(ValueError, match="items"):
        M.single_label(["a"], ["a", "a"], ["a"])
    with pytest.raises(ValueError, match="empty input"):
        M.single_label([], [], ["a"])
    with pytest.raises(ValueError, match="duplicate"):
        M.single_label(["a"], ["a"], ["a", "a"])


# ---------------------------------------------------------------- multi_label

EMO = ["joy", "sadness", "anger"]


def test_multi_label_hand_computed() -> None:
    gold = [["joy"], ["joy", "sadness"], [], [], ["anger"]]
    pred = [["joy"], ["joy"], [], ["sadness"], None]
    r = M.multi_label(gold, pred, EMO)
    _json_ok(r)
    # Jaccard per item: 1, 1/2, 1 (empty-empty), 0/1, 0 (invalid) -> 2.5 / 5
    assert r["jaccard"] == approx(0.5)
    # joy tp2 fp0 fn0 -> 1; sadness tp0 fp1 fn1 -> 0; anger tp0 fp0 fn1 -> 0; macro 1/3
    assert r["macro_f1"] == approx(1 / 3)
    assert r["per_label"]["sadness"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 1}
    # micro: TP 2, FP 1, FN 2 -> P 2/3, R 1/2, F1 4/7
    assert (r["micro_precision"], r["micro_recall"], r["micro_f1"]) == (approx(2 / 3), 0.5, approx(4 / 7))
    assert r["exact_match"] == approx(0.4)  # items 0 and 2
    assert (r["invalid"], r["empty_gold"], r["empty_pred"], r["empty_both"]) == (1, 2, 1, 1)


def test_multi_label_matches_sklearn() -> None:
    gold = [["joy"], ["joy", "sadness"], [], [], ["anger"]]
    pred = [["joy"], ["joy"], [], ["sadness"], None]
    r = M.multi_label(gold, pred, EMO)
    y_true, y_pred = _multi_hot(gold, EMO), _multi_hot([p or [] for p in pred], EMO)
    for average in ("micro", "macro"):
        assert r[f"{average}_f1"] == approx(f1_score(y_true, y_pred, average=average, zero_division=0))
    # the invalid row has gold {anger}, so treating it as empty changes nothing here
    assert r["jaccard"] == approx(jaccard_score(y_true, y_pred, average="samples", zero_division=1.0))


def test_multi_label_empty_sets_and_invalid_on_empty_gold() -> None:
    assert M.multi_label([[]], [[]], EMO)["jaccard"] == 1.0  # SemEval: empty vs empty = 1
    assert M.multi_label([[]], [["joy"]], EMO)["jaccard"] == 0.0
    wrong = M.multi_label([[]], [None], EMO)
    assert (wrong["jaccard"], wrong["exact_match"], wrong["invalid"]) == (0.0, 0.0, 1)
    lenient = M.multi_label([[]], [None], EMO, invalid_as_empty=True)
    assert (lenient["jaccard"], lenient["exact_match"], lenient["invalid"]) == (1.0, 1.0, 1)
    # F1 counts are the same either way: an invalid row predicts no label
    assert wrong["micro_f1"] == lenient["micro_f1"] == 0.0


def test_multi_label_out_of_space_and_never_gold_label() -> None:
    # a stray label is dropped (no column), the in-space part is kept
    r = M.multi_label([["joy"]], [["joy", "happy"]], EMO)
    assert (r["jaccard"], r["out_of_space"], r["invalid"]) == (1.0, 1, 0)
    assert set(r["per_label"]) == set(EMO)
    # only stray labels: invalid, so it cannot score 1 on a neutral item
    r = M.multi_label([[]], [["happy"]], EMO)
    assert (r["jaccard"], r["out_of_space"], r["invalid"]) == (0.0, 1, 1)
    # "anger" never in gold nor predicted: 0 with zero_division=0, 1 with zero_division=1
    gold, pred = [["joy"], ["sadness"]], [["joy"], ["sadness"]]
    assert M.multi_label(gold, pred, EMO)["macro_f1"] == approx(2 / 3)  # (1 + 1 + 0) / 3
    y_true, y_pred = _multi_hot(gold, EMO), _multi_hot(pred, EMO)
    assert f1_score(y_true, y_pred, average="macro", zero_division=1) == 1.0
    with pytest.raises(ValueError, match="not in the label list"):
        M.multi_label([["happy"]], [[]], EMO)
    with pytest.raises(ValueError, match="not a string"):
        M.multi_label([["joy"]], ["joy"], EMO)


def test_multi_label_duplicates_and_single_element() -> None:
    r = M.multi_label([["joy", "joy"]], [["joy", "joy", "anger"]], EMO)
    assert r["jaccard"] == approx(0.5)  # {joy} vs {joy, anger}
    assert r["per_label"]["joy"]["support"] == 1


# ---------------------------------------------------------------- correlation / ordinal / vad


def test_correlation_hand_computed() -> None:
    # dx = dy-permuted: sum dx*dy = 2.25 - .25 - .25 + 2.25 = 4, sum dx^2 = sum dy^2 = 5 -> r = 0.8
    r = M.correlation([1, 2, 3, 4], [1, 3, 2, 4], impute=None)
    _json_ok(r)
    assert (r["pearson"], r["spearman"], r["mae"]) == (approx(0.8), approx(0.8), approx(0.5))
    assert r["pearson"] == approx(pearsonr([1, 2, 3, 4], [1, 3, 2, 4])[0])
    assert M.correlation([1, 2, 3], [3, 2, 1], impute=None)["pearson"] == approx(-1.0)


def test_correlation_imputes_invalid() -> None:
    r = M.correlation([1, 2, 3, 4], [1, None, 3, 4], impute=2.0)  # -> [1, 2, 3, 4]
    assert (r["pearson"], r["invalid"], r["invalid_rate"], r["imputed_value"], r["mae"]) == (1.0, 1, 0.25, 2.0, 0.0)
    # impute 4 -> [1, 4, 3, 4]: mean 3, dy = [-2, 1, 0, 1]; sum dx*dy = 3 - .5 + 0 + 1.5 = 4; sum dy^2 = 6
    r = M.correlation([1, 2, 3, 4], [1, None, 3, 4], impute=4.0)
    assert r["pearson"] == approx(4 / np.sqrt(30))
    assert r["pearson"] == approx(pearsonr([1, 2, 3, 4], [1, 4, 3, 4])[0])
    assert r["spearman"] == approx(spearmanr([1, 2, 3, 4], [1, 4, 3, 4])[0])
    assert M.correlation([1, 2, 3], [1, float("nan"), 3], impute=2.0)["invalid"] == 1
    with pytest.raises(ValueError, match="no impute value"):
        M.correlation([1, 2, 3], [1, None, 3], impute=None)


def test_correlation_constant_inputs_give_zero_with_flags() -> None:
    r = M.correlation([0.1, 0.5, 0.9], [0.5, 0.5, 0.5], impute=None)
    _json_ok(r)
    assert (r["pearson"], r["spearman"], r["constant_prediction"], r["constant_gold"]) == (0.0, 0.0, True, False)
    r = M.correlation([0.5, 0.5, 0.5], [0.1, 0.5, 0.9], impute=None)
    assert (r["pearson"], r["constant_prediction"], r["constant_gold"]) == (0.0, False, True)
    # equal floats can have a nonzero std; max == min catches them
    assert np.std([0.1, 0.1, 0.1]) != 0.0
    assert M.correlation([1, 2, 3], [0.1, 0.1, 0.1], impute=None)["constant_prediction"] is True
    # all invalid -> every prediction is the imputed train mean -> constant
    r = M.correlation([0.2, 0.4, 0.9], [None, None, None], impute=0.5)
    assert (r["pearson"], r["invalid"], r["constant_prediction"]) == (0.0, 3, True)
    # a single item is constant on both sides
    r = M.correlation([0.3], [0.4], impute=None)
    assert (r["pearson"], r["constant_gold"], r["constant_prediction"], r["mae"]) == (0.0, True, True, approx(0.1))


def test_ordinal_hand_computed() -> None:
    gold, pred = [0, 1, 2, 3], [0, 2, 2, None]
    r = M.ordinal(gold, pred, [0, 1, 2, 3], impute=1.0)  # correlation on [0, 2, 2, 1]
    _json_ok(r)
    # mean 1.25, dy = [-1.25, .75, .75, -.25]; sum dx*dy = 1.875 - .375 + .375 - .375 = 1.5; sum dy^2 = 2.75
    assert r["pearson"] == approx(1.5 / np.sqrt(5 * 2.75))
    assert r["pearson"] == approx(pearsonr(gold, [0, 2, 2, 1])[0])
    assert r["accuracy"] == 0.5  # items 0 and 2; the invalid one is wrong, not imputed
    # class F1: 0 -> 1; 1 -> 0; 2 -> P 1/2 R 1 = 2/3; 3 -> 0; macro = (1 + 0 + 2/3 + 0) / 4 = 5/12
    assert r["macro_f1"] == approx(5 / 12)
    assert r["invalid"] == 1
    # an out-of-range class is invalid too
    r = M.ordinal([0, 1, 2], [0, 5, 2], [0, 1, 2], impute=1.0)
    assert (r["invalid"], r["accuracy"], r["pearson"]) == (1, approx(2 / 3), 1.0)
    r = M.ordinal([-3, 0, 3], [None, None, None], list(range(-3, 4)), impute=0.2)
    assert (r["pearson"], r["constant_prediction"], r["accuracy"]) == (0.0, True, 0.0)


def test_vad_hand_computed() -> None:
    gold = [
        {"valence": 0.0, "arousal": 1.0, "dominance": 0.0},
        {"valence": 0.5, "arousal": 0.5, "dominance": 1.0},
        {"valence": 1.0, "arousal": 0.0, "dominance": 0.5},
    ]
    pred = [{"valence": 0.0, "arousal": 1.0, "dominance": 0.0}, None, {"valence": 1.0, "arousal": 0.0}]
    r = M.vad(gold, pred, impute={"valence": 0.5, "arousal": 0.5, "dominance": 0.5})
    _json_ok(r)
    # valence [0, .5, 1] vs [0, .5, 1] -> 1; arousal likewise
    assert (r["valence"]["pearson"], r["arousal"]["pearson"]) == (approx(1.0), approx(1.0))
    # dominance gold [0, 1, .5], pred [0, .5, .5]: sum dx*dy = 1/4, sum dx^2 = 1/2, sum dy^2 = 1/6 -> r = sqrt(3)/2
    assert r["dominance"]["pearson"] == approx(np.sqrt(3) / 2)
    assert r["pearson_mean"] == approx((2 + np.sqrt(3) / 2) / 3)
    assert r["pearson_per_dimension"] == {d: r[d]["pearson"] for d in ("valence", "arousal", "dominance")}
    assert (r["invalid"], r["valence"]["invalid"], r["dominance"]["invalid"]) == (2, 1, 2)


# ---------------------------------------------------------------- aggregation


def test_per_group_mean_and_language_macro() -> None:
    ei = {"anger": {"pearson": 0.5}, "fear": {"pearson": 0.7}, "joy": {"pearson": 0.6}, "sadness": {"pearson": 0.2}}
    assert M.per_group_mean(ei, "pearson") == approx(0.5)  # 2.0 / 4
    assert M.per_group_mean({"x": {"valence": {"pearson": 0.4}}}, "valence.pearson") == approx(0.4)
    with pytest.raises(ValueError, match="not a finite number"):
        M.per_group_mean({"a": {"auc_micro": None}}, "auc_micro")
    with pytest.raises(KeyError):
        M.per_group_mean({"a": {}}, "pearson")
    with pytest.raises(ValueError, match="no groups"):
        M.per_group_mean({}, "pearson")
    # language macro vs pooled: en 1/1 correct, de 0/3 correct
    per_lang = {"en": M.single_label(["a"], ["a"], ["a", "b"]), "de": M.single_label(["a"] * 3, ["b"] * 3, ["a", "b"])}
    macro = M.language_macro(per_lang, "accuracy")
    assert macro == {"macro": 0.5, "languages": ["de", "en"], "n_languages": 2, "per_language": {"de": 0.0, "en": 1.0}}
    pooled = M.single_label(["a"] * 4, ["a", "b", "b", "b"], ["a", "b"])["accuracy"]
    assert pooled == 0.25 != macro["macro"]


# ---------------------------------------------------------------- open vocabulary (MASIVE)


def test_open_vocabulary_hand_computed_english() -> None:
    gold = [["hurt"], ["annoyed", "exhausted"], ["Happy"]]
    ranked = [
        ["sad", "hurt", "upset"],  # three one-slot beams (strings)
        [["annoyed", "tired"], ["angry", "exhausted"]],  # two two-slot beams
        ["happy!"],  # only one beam
    ]
    r = M.open_vocabulary_at_k(gold, ranked, language="en")
    _json_ok(r)
    # exact @1: 0, 1/2, 0 -> 1/6; @3: 1, 1, 0 -> 2/3; @5 = @3 (no more beams)
    assert (r["acc@1"], r["acc@3"], r["acc@5"]) == (approx(1 / 6), approx(2 / 3), approx(2 / 3))
    # normalised: "happy!" == "Happy" -> @1: 0, 1/2, 1 -> 1/2; @3: 1, 1, 1
    assert (r["acc@1_normalised"], r["acc@3_normalised"], r["acc@5_normalised"]) == (approx(0.5), 1.0, 1.0)
    assert (r["min_outputs"], r["invalid"], r["spanish_gender_rule"]) == (1, 0, False)


def test_open_vocabulary_spanish_and_invalid() -> None:
    gold = [["cansada"], ["tranquilo"], [["enfadado", "molesto"]]]  # item 3: two acceptable terms
    ranked = [["cansado"], None, [["enfadádo"]]]
    r = M.open_vocabulary_at_k(gold, ranked, ks=(1,), language="es")
    # exact: none match; normalised: item 1 (gender), item 3 (accent); item 2 failed
    assert r["acc@1"] == 0.0 and "acc@3" not in r
    assert r["acc@1_normalised"] == approx(2 / 3)
    assert (r["invalid"], r["spanish_gender_rule"]) == (1, True)
    # a positional miss: the right term in the wrong slot does not count
    r = M.open_vocabulary_at_k([["triste", "sola"]], [[["sola", "triste"]]], ks=(1,), language="es")
    assert r["acc@1_normalised"] == 0.0


def test_normalise_term_rules() -> None:
    es = "es"
    assert M.normalise_term("cansada", es) == M.normalise_term("cansado", es) == "cansad"
    assert M.normalise_term("cansadas", es) == M.normalise_term("Cansados", es) == "cansad"
    assert M.normalise_term("Tranquila", es) == M.normalise_term("tranquilo", es) == "tranquil"
    assert M.normalise_term("enfadádo", es) == M.normalise_term("enfadada", es)
    assert M.normalise_term("¡Feliz!", es) == "feliz"
    assert M.normalise_term("feliz", es) != M.normalise_term("felices", es)  # documented limit
    assert M.normalise_term("muy cansada", "es-MX") == M.normalise_term("muy  cansado", "es") == "muycansad"
    # English: case, accents, punctuation only; no gender rule and no plural "s" stripping
    assert M.normalise_term("cansada", "en") != M.normalise_term("cansado", "en")
    assert M.normalise_term("Light-hearted", "en") == M.normalise_term("light hearted", "en") == "lighthearted"
    assert M.normalise_term("Naïve", "en") == "naive"
    assert M.normalise_term("blues", "en") != M.normalise_term("blue", "en")


# ---------------------------------------------------------------- multilabel_ranking

RANK_LABELS = ["a", "b", "c"]
RANK_GOLD = [["a"], ["b", "c"], ["c"]]
RANK_SCORES = [{"a": 0.9, "b": 0.5, "c": 0.1}, {"a": 0.8, "b": 0.7, "c": 0.2}, {"a": 0.3, "b": 0.4, "c": 0.6}]


def test_multilabel_ranking_3x3_hand_computed() -> None:
    r = M.multilabel_ranking(RANK_GOLD, RANK_SCORES, RANK_LABELS)
    _json_ok(r)
    # flattened, descending: .9+ .8- .7+ .6+ .5- .4- .3- .2+ .1-
    # AP = mean precision at the positives = (1/1 + 2/3 + 3/4 + 4/8) / 4 = 35/48
    assert r["ap_micro"] == approx(35 / 48)
    # AUC = pos>neg pairs / (4*5): .9 beats 5, .7 beats 4, .6 beats 4, .2 beats 1 -> 14/20
    assert r["auc_micro"] == approx(0.7)
    # LRAP rows: 1; b ranks 2nd (1 relevant at or above) -> 1/2, c ranks 3rd (2 relevant) -> 2/3, mean 7/12; 1
    assert r["lrap"] == approx((1 + 7 / 12 + 1) / 3)  # 31/36
    assert r["lrap_excluded_empty"] == 0 and r["lrap"] == r["lrap_sklearn"]


def test_multilabel_ranking_matches_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(0)
    labels = [f"l{i}" for i in range(7)]
    y = rng.random((300, 7)) < 0.3
    y[:, 0] = True  # a label that is always positive
    y[:3] = True  # rows with all labels relevant
    s = np.round(rng.random((300, 7)), 1)  # rounding creates ties
    gold = [[labels[j] for j in range(7) if y[i, j]] for i in range(300)]
    scores = [dict(zip(labels, row)) for row in s.tolist()]
    r = M.multilabel_ranking(gold, scores, labels)
    assert r["ap_micro"] == approx(average_precision_score(y, s, average="micro"))
    assert r["auc_micro"] == approx(roc_auc_score(y, s, average="micro"))
    assert r["lrap_sklearn"] == approx(label_ranking_average_precision_score(y, s))
    assert r["labels_always_positive"] == ["l0"]
    assert r["auc_macro"] == approx(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in range(1, 7)]))


def test_multilabel_ranking_degenerate_cases() -> None:
    # b and c never positive: micro is defined, the macro means skip them and list them
    r = M.multilabel_ranking(
        [["a"], ["a"]], [{"a": 0.9, "b": 0.1, "c": 0.2}, {"a": 0.3, "b": 0.4, "c": 0.5}], ["a", "b", "c"]
    )
    assert r["labels_never_positive"] == ["b", "c"]
    assert r["ap_macro"] == 1.0  # label a alone: both rows positive
    assert r["auc_macro"] is None  # a is always positive, b/c never: no label has both classes
    # no positive at all: AP/AUC/LRAP undefined -> None + flags
    r = M.multilabel_ranking([[], []], [{"a": 0.9, "b": 0.1}, {"a": 0.3, "b": 0.4}], ["a", "b"])
    _json_ok(r)
    assert (r["ap_micro"], r["auc_micro"], r["lrap"], r["no_positive"]) == (None, None, None, True)
    assert (r["lrap_sklearn"], r["lrap_excluded_empty"]) == (1.0, 2)
    # an empty-gold row would score 1.0 in sklearn's LRAP; we exclude it
    r = M.multilabel_ranking([["a"], []], [{"a": 0.1, "b": 0.9}, {"a": 0.5, "b": 0.5}], ["a", "b"])
    assert (r["lrap"], r["lrap_sklearn"], r["lrap_excluded_empty"]) == (0.5, 0.75, 1)
    with pytest.raises(ValueError, match="no score for label"):
        M.multilabel_ranking([["a"]], [{"a": 0.1}], ["a", "b"])


def test_multilabel_ranking_invalid_row_ranks_last() -> None:
    # row 2 invalid -> both labels get min(valid) - 1 = -0.9; flattened .9+ .1- -.9- -.9+
    r = M.multilabel_ranking([["a"], ["b"]], [{"a": 0.9, "b": 0.1}, None], ["a", "b"])
    assert r["invalid"] == 1
    # AP with the tie at the end: R .5 at P 1, then R 1 at P 2/4 -> .5 * 1 + .5 * .5
    assert r["ap_micro"] == approx(0.75)
    assert r["lrap"] == approx((1 + 0.5) / 2)  # tied row: b has max rank 2


# ---------------------------------------------------------------- chance levels


def _brute_force_random_jaccard(gold: set[int], n_labels: int) -> float:
    total = 0.0
    for bits in itertools.product([0, 1], repeat=n_labels):
        pred = {j for j, bit in enumerate(bits) if bit}
        union = gold | pred
        total += 1.0 if not union else len(gold & pred) / len(union)
    return total / 2**n_labels


def test_chance_levels() -> None:
    assert M.chance_level("single", ["a", "b", "c"]) == approx(1 / 3)
    assert (
        M.chance_level("real") == M.chance_level("ordinal") == M.chance_level("vad") == M.chance_level("open") == 0.0
    )
    # L = 2, |G| = 1: (x, y) in {00, 10, 01, 11} -> 0, 1, 0, 1/2, each 1/4 -> 3/8
    assert M.chance_level("multi", ["a", "b"]) == approx(3 / 8)
    # |G| = 0: only the empty prediction (1/4) scores 1 -> 1/4; averaged with the |G| = 1 item -> 5/16
    assert M.chance_level("multi", ["a", "b"], gold=[["a"], []]) == approx(5 / 16)
    labels = list("abcde")
    gold = [["a"], ["a", "b", "c"], [], ["a", "b", "c", "d", "e"]]
    expected = np.mean([_brute_force_random_jaccard({ord(x) - 97 for x in g}, 5) for g in gold])
    assert M.chance_level("multi", labels, gold=gold) == approx(expected)
    with pytest.raises(ValueError):
        M.chance_level("joint", ["a"])
    with pytest.raises(ValueError):
        M.chance_level("single")


def test_chance_normalised() -> None:
    assert M.chance_normalised(0.5, 1 / 3) == approx(0.25)  # (1/2 - 1/3) / (2/3)
    assert M.chance_normalised(0.2, 0.0) == 0.2
    assert M.chance_normalised(1 / 3, 1 / 3) == approx(0.0)
    assert M.chance_normalised(0.0, 0.5) == -1.0
    assert M.chance_normalised(None, 0.5) is None
    with pytest.raises(ValueError):
        M.chance_normalised(1.0, 1.0)


# ---------------------------------------------------------------- scale


def test_scoring_scale_is_fast() -> None:
    rng = random.Random(0)
    labels = [f"l{i}" for i in range(12)]
    n = 13_000
    gold = [rng.sample(labels, rng.randint(0, 3)) for _ in range(n)]
    pred = [None if rng.random() < 0.05 else rng.sample(labels, rng.randint(0, 3)) for _ in range(n)]
    start = time.perf_counter()
    r = M.multi_label(gold, pred, labels)
    elapsed = time.perf_counter() - start
    y_true, y_pred = _multi_hot(gold, labels), _multi_hot([p or [] for p in pred], labels)
    assert r["macro_f1"] == approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert r["micro_f1"] == approx(f1_score(y_true, y_pred, average="micro", zero_division=0))
    assert elapsed < 2.0  # ~15 ms on 2 cores; generous bound against CI noise
