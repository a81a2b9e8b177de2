"""The generation plan: seeded and deterministic, exact cardinality per language, weights that steer the
combinations, languages independent of each other."""

from __future__ import annotations

from collections import Counter

import pytest

from mmaff.synth.plan import PlanRules, apportion, default_pair_weights, plan_corpus
from mmaff.synth.prompts import generation_messages, judge_messages, load_profiles

EMOTIONS = ("joy", "sadness", "anger", "fear", "surprise", "disgust", "love", "gratitude", "frustration", "contempt")
PROFILES = load_profiles()


def _rules(plan=None) -> PlanRules:
    return PlanRules.from_mapping(plan, EMOTIONS, list(PROFILES["text_types"]), list(PROFILES["length_bands"]))


def _plan(counts, seed=7, plan=None):
    return plan_corpus(counts, seed, _rules(plan), EMOTIONS, PROFILES["languages"])


def test_plan_is_deterministic_and_seeded():
    assert _plan({"en": 200, "hi": 50}) == _plan({"en": 200, "hi": 50})
    assert _plan({"en": 200}) != _plan({"en": 200}, seed=8)


def test_adding_a_language_leaves_the_others_unchanged():
    alone = _plan({"de": 100})
    together = _plan({"ja": 80, "de": 100})
    assert [s for s in together if s.language == "de"] == alone


def test_cardinality_is_exact_per_language():
    samples = _plan({"en": 1000, "sw": 37})
    for lang, n in (("en", 1000), ("sw", 37)):
        sizes = Counter(len(s.emotions) for s in samples if s.language == lang)
        assert sizes == Counter(apportion(n, {0: 0.15, 1: 0.45, 2: 0.30, 3: 0.10}))
    assert Counter(len(s.emotions) for s in samples if s.language == "en") == {0: 150, 1: 450, 2: 300, 3: 100}
    assert len({s.id for s in samples}) == 1037 and samples[0].id == "en-000000"


def test_pair_weights_steer_co_occurrence():
    samples = _plan({"en": 3000}, plan={"cardinality": {2: 1.0}})
    pairs = Counter(frozenset(s.emotions) for s in samples)
    same = sum(n for p, n in pairs.items() if p <= {"joy", "love", "gratitude"})
    across = sum(n for p, n in pairs.items() if {"joy", "anger"} == p)
    assert same > 10 * across
    blocked = _plan({"en": 500}, plan={"cardinality": {2: 1.0}, "pair_weights": {"joy+love": 0}})
    assert not any(set(s.emotions) == {"joy", "love"} for s in blocked)
    assert default_pair_weights(EMOTIONS)[("anger", "joy")] == 0.1


def test_emotion_weight_zero_never_planned():
    samples = _plan({"fr": 400}, plan={"emotion_weights": {"contempt": 0}})
    assert not any("contempt" in s.emotions for s in samples)


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        ({"cardinalty": {}}, "unknown key 'cardinalty'"),
        ({"emotion_weights": {"joyy": 1}}, "unknown name 'joyy'"),
        ({"pair_weights": {"joy-love": 1}}, r"'<emotion>\+<emotion>'"),
        ({"text_types": {"review": -1}}, ">= 0"),
    ],
)
def test_bad_plan_is_one_line_error(plan, message):
    with pytest.raises(ValueError, match=message):
        _rules(plan)


def test_every_language_has_a_profile_and_prompts_render():
    languages = "ar bn de en es fr hi id it ja ko nl pa pl pt ru sw ta tr uk ur vi zh".split()
    assert sorted(PROFILES["languages"]) == languages
    for sample in _plan(dict.fromkeys(languages, 3)):
        system, user = generation_messages(sample)
        assert system["role"] == "system" and f"({sample.language})" in user["content"]
        assert ("none (neutral)" in user["content"]) == (not sample.emotions)
    judge = judge_messages("hi", "मैं बहुत खुश हूँ", list(EMOTIONS))[-1]["content"]
    assert "Hindi" in judge and "<<<\nमैं बहुत खुश हूँ\n>>>" in judge
