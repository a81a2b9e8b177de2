"""Templates and answer formats: every registry subtask renders, and its answers parse back to the gold."""

from __future__ import annotations

import itertools

import pytest

from mmaff.data.answers import format_number, parse_answer, render_answer
from mmaff.data.registry import load_registry
from mmaff.data.schema import check_gold
from mmaff.data.templates import PromptRenderer, load_template, prompt_context, render_given

REGISTRY = load_registry()
SUBTASKS = [(key, name) for key, spec in REGISTRY.items() for name in spec.subtasks]


def sample_golds(subtask, subtasks):
    """A handful of valid gold values covering the edges of the subtask's label space."""
    t = subtask.target_type
    if t == "single":
        return list(subtask.label_set.labels)
    if t == "multi":
        labels = list(subtask.label_set.labels)
        golds = [[label] for label in labels] + [labels[:3], [labels[0], labels[-1]]]
        return golds + ([[]] if subtask.label_set.none else [])
    if t == "real":
        lo, hi = subtask.range
        return [float(lo), float(hi), round((lo + hi) / 2 + 0.1234, 3)]
    if t == "ordinal":
        return sorted(subtask.classes)
    if t == "vad":
        lo, hi = subtask.range
        return [dict.fromkeys(subtask.dims, float(lo)), dict(zip(subtask.dims, (float(hi), 0.25, -0.5)))]
    if t == "open":
        return [["tired"], ["cansada", "feliz de verdad"]]
    if t == "joint":
        parts = [subtasks[p] for p in subtask.parts]
        return [
            dict(zip([p.task for p in parts], combo))
            for combo in itertools.product(*(sample_golds(p, subtasks)[:3] for p in parts))
        ]
    raise AssertionError(t)


@pytest.mark.parametrize(("dataset", "name"), SUBTASKS)
def test_answers_round_trip(dataset, name):
    spec = REGISTRY[dataset]
    subtask = spec.subtasks[name]
    template = load_template(subtask.template)
    space = subtask.label_space(spec.subtasks)
    answer_spec = template.answer_spec(subtask, spec.subtasks)
    for gold in sample_golds(subtask, spec.subtasks):
        check_gold(gold, subtask.target_type, space)
        answer = render_answer(gold, answer_spec, space)
        parsed = template.parse(answer, subtask, spec.subtasks)
        assert parsed.status == "strict", (answer, parsed)
        assert parsed.value == gold or (subtask.target_type == "real" and abs(parsed.value - gold) < 1e-3), (
            answer,
            parsed,
        )


@pytest.mark.parametrize(("dataset", "name"), SUBTASKS)
def test_prompts_render_labels_and_text(dataset, name):
    spec = REGISTRY[dataset]
    subtask = spec.subtasks[name]
    template = load_template(subtask.template)
    given, given_answer = None, None
    if subtask.given:
        given_sub = spec.subtasks[subtask.given]
        given = {given_sub.task: sample_golds(given_sub, spec.subtasks)[0]}
        given_answer = render_given(template, spec, subtask, given)
    ctx = prompt_context(
        spec, subtask, "An example text", {"emotion": "anger"}, given, given_answer, spec.languages[0]
    )
    prompt = PromptRenderer().render(template, ctx)
    assert "An example text" in prompt and "{{" not in prompt and not prompt.endswith("\n")
    asked = spec.subtasks[subtask.asks] if subtask.asks else subtask
    if asked.label_set is not None:
        for i, label in zip(asked.label_set.ids, asked.label_set.labels):
            assert f"{i}. {label}" in prompt
    if given_answer:
        assert given_answer in prompt
    if asked.label_set is not None and asked.label_set.none:
        assert (
            f'answer "{asked.label_set.none["id"]}. {asked.label_set.none["name"]}"' in prompt
            or subtask.target_type == "joint"
        )
    if subtask.target_type == "joint":
        for part in subtask.parts:
            none = spec.subtasks[part].label_set.none if spec.subtasks[part].label_set else None
            assert not none or f"or {none['id']}. {none['name']} if none is expressed" in prompt


def test_sentinel_renderer_equals_full_render():
    spec = REGISTRY["semeval2018"]
    subtask = spec.subtasks["EI-oc"]
    template = load_template(subtask.template)
    renderer = PromptRenderer()
    for text in ["plain", "with {{ braces }} and \\n", "emoji 😀 and 中文"]:
        ctx = prompt_context(spec, subtask, text, {"emotion": "joy"}, None, None, "en")
        assert renderer.render(template, ctx) == template.user.render(ctx).strip()


@pytest.mark.parametrize(
    ("reply", "expected", "status"),
    [
        ("3. anger", "anger", "strict"),
        ("  3. anger\n", "anger", "strict"),
        ("anger", "anger", "lenient"),
        ("The emotion is anger.", "anger", "lenient"),
        ("3", "anger", "lenient"),
        ("3. joy", None, "failed"),  # id and name disagree and both are labels
        ("anger or fear", None, "failed"),
        ("", None, "failed"),
    ],
)
def test_parse_single(reply, expected, status):
    space = REGISTRY["ewect"].subtasks["EC"].label_space({})
    parsed = parse_answer(reply, {"format": "numbered_label"}, space)
    assert (parsed.value, parsed.status) == (expected, status)


@pytest.mark.parametrize(
    ("reply", "expected", "status"),
    [
        ("1. joy, 9. optimism", ["joy", "optimism"], "strict"),
        ("9. optimism, 1. joy", ["joy", "optimism"], "strict"),
        ("0. neutral", [], "strict"),
        ("joy and optimism", ["joy", "optimism"], "lenient"),
        ("1. happiness, 16. doubt/confusion", None, "failed"),  # neither is an E-c label or id
        ("neutral", [], "lenient"),
        ("I cannot tell", None, "failed"),
    ],
)
def test_parse_multi(reply, expected, status):
    space = REGISTRY["semeval2018"].subtasks["E-c"].label_space({})
    parsed = parse_answer(reply, {"format": "numbered_labels", "separator": ", "}, space)
    assert (parsed.value, parsed.status) == (expected, status)


@pytest.mark.parametrize(
    ("reply", "expected", "status"),
    [
        ("0.734", 0.734, "strict"),
        (".5", 0.5, "strict"),
        ("Intensity score: 0.65", 0.65, "lenient"),
        ("On a scale from 0 to 1 I rate it 0.8", None, "failed"),  # several numbers, no cue
        ("1.7", None, "failed"),  # out of range is a failure, never clipped
        ("high", None, "failed"),
    ],
)
def test_parse_number(reply, expected, status):
    parsed = parse_answer(reply, {"format": "number", "decimals": 3}, {"min": 0.0, "max": 1.0})
    assert (parsed.value, parsed.status) == (expected, status)


def test_parse_ordinal_and_sections():
    spec = REGISTRY["semeval2018"]
    v_oc = spec.subtasks["V-oc"]
    space = v_oc.label_space(spec.subtasks)
    assert parse_answer("-2: moderately negative", {"format": "ordinal"}, space).value == -2
    assert parse_answer("-2", {"format": "ordinal"}, space).status == "strict"
    assert parse_answer("I would say class -3", {"format": "ordinal"}, space).value == -3
    assert parse_answer("between 2 and 3", {"format": "ordinal"}, space).status == "failed"
    joint = spec.subtasks["V-reg+E-c"]
    template = load_template(joint.template)
    reply = "Sentiment intensity: 0.25\nEmotions: 3. anger, 6. disgust"
    parsed = template.parse(reply, joint, spec.subtasks)
    assert parsed.value == {"SI": 0.25, "EC": ["anger", "disgust"]} and parsed.status == "strict"
    assert template.parse("Emotions: 3. anger", joint, spec.subtasks).status == "failed"


def test_format_number():
    assert [format_number(x, 3) for x in (0.7340, 1, -0.2, 0.0004, -0.0001)] == ["0.734", "1.0", "-0.2", "0.0", "0.0"]


def test_parse_vad():
    space = {"dims": ["valence", "arousal", "dominance"], "min": -1.0, "max": 1.0}
    spec = {"format": "vad", "decimals": 2}
    gold = {"valence": 0.5, "arousal": -1.0, "dominance": 0.25}
    answer = render_answer(gold, spec, space)
    assert answer == "valence: 0.5, arousal: -1.0, dominance: 0.25"
    assert parse_answer(answer, spec, space).status == "strict"
    assert parse_answer("Valence: -1, Arousal: 0.2, Dominance: 0", spec, space).value == {
        "valence": -1.0,
        "arousal": 0.2,
        "dominance": 0.0,
    }
