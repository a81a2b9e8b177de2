"""Templates through the loader: shared parts are written once, prompts and answers are pinned per family version,
and a broken template fails with an error that names its file."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import jinja2
import jinja2.meta
import pytest
import yaml

from mmaff.data.answers import render_answer
from mmaff.data.registry import load_registry
from mmaff.data.templates import (
    DEFAULT_STYLE,
    PromptRenderer,
    TemplateError,
    load_template,
    prompt_context,
    render_given,
    template_sources,
)
from mmaff.paths import TEMPLATES_DIR

REGISTRY = load_registry()
STYLE_DIR = TEMPLATES_DIR / DEFAULT_STYLE
FAMILIES = sorted(p.stem for p in STYLE_DIR.glob("*.yaml") if not p.name.startswith("_"))

# Examples per family: registry subtasks covering each family's target types and media. A pin is the family's
# version and the sha256 of its prompts (with text, without text) and gold answers for these examples.
EXAMPLES = {
    "affective_state": [("masive", "ASI")],
    "emotion_classification": [("semeval2018", "E-c"), ("ewect", "EC"), ("emotic", "EC"), ("meld", "EC")],
    "emotion_intensity": [("semeval2018", "EI-reg"), ("semeval2018", "EI-oc"), ("cfaps", "EI")],
    "joint": [("semeval2018", "V-reg+E-c"), ("meld", "EC+SP"), ("chsims", "SP+SI")],
    "sentiment_intensity": [("semeval2018", "V-reg"), ("chsims", "SI")],
    "sentiment_polarity": [("semeval2018", "V-oc"), ("mms", "SP"), ("meld", "SP")],
    "two_step": [("semeval2018", "V-reg>E-c"), ("semeval2018", "E-c>V-reg")],
    "vad": [("emotic", "VAD")],
}
PINNED = {
    "affective_state": (1, "b3ad8d872353ada1f64736fcd463fe1de1cb3de01a97e6248ae1143b0f7cda40"),
    "emotion_classification": (1, "02ecaba53cde65f7da1a3942bb7cbf9e658390bd64be00e66abbb0b3c4eb6e58"),
    "emotion_intensity": (1, "4aebce3f9acd9d12cac9073fd345e93c4ead56d6456252292fd6af91bc02d59e"),
    "joint": (2, "d655e57c3aff658d5485cde0989273a2e2a309a408be7f88239b93a2efaafa10"),
    "sentiment_intensity": (1, "789fd472ca06d6f9ec2078aba7e4050c003b5eecf066750eb5bdf1ffd35e18bb"),
    "sentiment_polarity": (1, "b09d5f9984806bb4f29ad91d653fb4e70459c4c7ea297c01324304faa413b9f7"),
    "two_step": (2, "dd62afd0515816024d01480764dd0ca3fd00bf6b6d6a9ec19f0f54543271bb1d"),
    "vad": (1, "4b10be5906d823113bc04a3db507b4a6a7d36d7a5ef091f8b65c85a8871bd9f3"),
}
TEXTS = ("It was a long day, but worth it. {{ not_jinja }}", "")

# Lines and phrases every family shares: each is written in exactly one template file.
SHARED = [
    "You are a helpful assistant for affective analysis.",
    "'Text' if medium == 'text' else 'Content'",
    "If no emotion is expressed",
    "{{ label.id }}. {{ label.name }}",
    "(most negative) to",
    "the number only",
    '"class: name"',
    '"number. emotion"',
    "format: numbered_labels",
    "format: number,",
    "title: Emotions",
]


def golds(subtask, subtasks) -> list:
    """Two gold values per subtask (the first and last of its space), for the answers."""
    t = subtask.target_type
    if t == "single":
        return [subtask.label_set.labels[0], subtask.label_set.labels[-1]]
    if t == "multi":
        labels = list(subtask.label_set.labels)
        return [labels[:2], ([] if subtask.label_set.none else labels[-1:])]
    if t in ("real", "vad"):
        lo, hi = subtask.range
        return [float(lo), round((lo + hi) / 2 + 0.1234, 3)] if t == "real" else [dict.fromkeys(subtask.dims, hi)]
    if t == "ordinal":
        return [min(subtask.classes), max(subtask.classes)]
    if t == "open":
        return [["tired", "feliz de verdad"]]
    if t == "joint":
        parts = [subtasks[p] for p in subtask.parts]
        return [{p.task: golds(p, subtasks)[i] for p in parts} for i in (0, -1)]
    raise AssertionError(t)


def rendered(family: str) -> list[str]:
    """Prompts and answers of the family's examples, as a record shows them (system, user, assistant)."""
    lines = []
    for dataset, name in EXAMPLES[family]:
        spec = REGISTRY[dataset]
        subtask = spec.subtasks[name]
        template = load_template(subtask.template)
        assert template.family == family
        givens: list = [(None, None)]
        if subtask.given:
            given_sub = spec.subtasks[subtask.given]
            givens = [({given_sub.task: g}, None) for g in golds(given_sub, spec.subtasks)]
            givens = [(g, render_given(template, spec, subtask, g)) for g, _ in givens]
        for (given, given_answer), text in ((g, t) for g in givens for t in TEXTS):
            ctx = prompt_context(spec, subtask, text, {"emotion": "joy"}, given, given_answer, spec.languages[0])
            # as records.py renders: one shape per prompt key when there is text, in full when there is none
            prompt = PromptRenderer().render(template, ctx) if text else template.user.render(ctx).strip()
            lines += [f"# {dataset}/{name}", f"system: {template.system}", prompt]
        answer_spec, space = template.answer_spec(subtask, spec.subtasks), subtask.label_space(spec.subtasks)
        lines += [render_answer(gold, answer_spec, space) for gold in golds(subtask, spec.subtasks)]
    return lines


def test_examples_cover_every_family():
    assert sorted(EXAMPLES) == sorted(PINNED) == FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_prompts_and_answers_are_pinned(family):
    """A wording change must bump the family's version (records carry it), then re-pin here."""
    digest = hashlib.sha256("\n".join(rendered(family)).encode()).hexdigest()
    assert (load_template(family).version, digest) == PINNED[family], (
        f"templates/{DEFAULT_STYLE}/{family}.yaml renders differently from its pin: if the change is on purpose, "
        "bump its version, add a changelog line and re-pin"
    )


def test_pinned_prompt_reads_as_written():
    spec = REGISTRY["ewect"]
    template = load_template("emotion_classification")
    ctx = prompt_context(spec, spec.subtasks["EC"], "今天很开心", {}, None, None, "zh")
    assert PromptRenderer().render(template, ctx) == (
        "Task: Identify the emotion expressed in the Weibo post. Choose exactly one of:\n"
        "0. neutral\n1. happiness\n2. sadness\n3. anger\n4. fear\n5. surprise\n"
        "Text: 今天很开心\n"
        'Answer with one "number. emotion".'
    )
    assert template.system == "You are a helpful assistant for affective analysis."


def load_family_source(family: str) -> str:
    return yaml.safe_load((STYLE_DIR / f"{family}.yaml").read_text(encoding="utf-8"))["user"]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_includes_shared_parts(family):
    env = jinja2.Environment()
    source = load_family_source(family)
    assert set(jinja2.meta.find_referenced_templates(env.parse(source))) & {"_parts/content.jinja"}


@pytest.mark.parametrize("shared", SHARED)
def test_shared_text_is_written_once(shared):
    holders = [p.relative_to(STYLE_DIR) for p in template_sources() if shared in p.read_text(encoding="utf-8")]
    assert len(holders) == 1, (shared, holders)


def test_sources_hold_every_included_partial():
    """The build's cache key hashes `template_sources`: a partial missing from it would leave stale stages."""
    sources = {p.relative_to(STYLE_DIR).as_posix() for p in template_sources()}
    env = jinja2.Environment()
    for family in FAMILIES:
        assert f"{family}.yaml" in sources
        assert set(jinja2.meta.find_referenced_templates(env.parse(load_family_source(family)))) <= sources
    assert "_style.yaml" in sources


def test_sentinel_shape_holds_for_every_family():
    """records.py renders one shape per prompt key and substitutes the text: every family must stay linear in it."""
    for family in FAMILIES:
        for dataset, name in EXAMPLES[family]:
            spec = REGISTRY[dataset]
            subtask = spec.subtasks[name]
            template = load_template(family)
            given_answer = None
            if subtask.given:
                given_sub = spec.subtasks[subtask.given]
                given = {given_sub.task: golds(given_sub, spec.subtasks)[0]}
                given_answer = render_given(template, spec, subtask, given)
            else:
                given = None
            ctx = prompt_context(spec, subtask, "text", {"emotion": "joy"}, given, given_answer, "en")
            assert PromptRenderer().shape(template, ctx) is not None, (family, dataset, name)


# ---------------------------------------------------------------- broken templates name their file


@pytest.fixture
def style_copy(tmp_path) -> Path:
    """A copy of the style under a fresh root, to break one file at a time."""
    shutil.copytree(STYLE_DIR, tmp_path / DEFAULT_STYLE)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def ewect_context() -> tuple:
    spec = REGISTRY["ewect"]
    return spec, prompt_context(spec, spec.subtasks["EC"], "hello", {}, None, None, "zh")


def test_unknown_include_names_the_family_file(style_copy):
    family = style_copy / DEFAULT_STYLE / "emotion_classification.yaml"
    edit(family, "'_parts/options.jinja'", "'_parts/choices.jinja'")
    with pytest.raises(
        TemplateError,
        match=r"emotion_classification\.yaml \(user prompt\): includes "
        r"'_parts/choices\.jinja', which is not in .*mmaffben",
    ):
        load_template("emotion_classification", root=style_copy)


def test_unknown_include_in_a_partial_names_the_partial(style_copy):
    edit(
        style_copy / DEFAULT_STYLE / "_parts" / "content.jinja",
        "{% if text %}",
        "{% include 'gone.jinja' %}\n{% if text %}",
    )
    with pytest.raises(TemplateError, match=r"_parts/content\.jinja: includes 'gone\.jinja'"):
        load_template("vad", root=style_copy)


def test_undefined_variable_names_file_and_line(style_copy):
    family = style_copy / DEFAULT_STYLE / "emotion_classification.yaml"
    edit(family, "{% include '_parts/options.jinja' %}", "{{ mood }}\n  {% include '_parts/options.jinja' %}")
    template = load_template("emotion_classification", root=style_copy)
    _, ctx = ewect_context()
    with pytest.raises(
        TemplateError, match=r"emotion_classification\.yaml \(user prompt\), line 3: 'mood' is undefined"
    ):
        PromptRenderer().render(template, ctx)
    with pytest.raises(TemplateError, match="'mood' is undefined"):
        template.user.render(ctx)  # records.py renders text-less prompts directly


def test_undefined_variable_in_a_partial_names_the_partial(style_copy):
    edit(style_copy / DEFAULT_STYLE / "_parts" / "content.jinja", "{{ text }}", "{{ text }} ({{ source }})")
    template = load_template("emotion_classification", root=style_copy)
    _, ctx = ewect_context()
    with pytest.raises(TemplateError, match=r"_parts/content\.jinja, line 3: 'source' is undefined"):
        PromptRenderer().render(template, ctx)


def test_syntax_error_in_a_partial_names_the_partial(style_copy):
    edit(style_copy / DEFAULT_STYLE / "_parts" / "options.jinja", "{% endfor %}", "{% endfro %}")
    with pytest.raises(TemplateError, match=r"_parts/options\.jinja, line \d+: "):
        load_template("sentiment_polarity", root=style_copy)


def test_unknown_answer_format_names_the_family_file(style_copy):
    edit(style_copy / DEFAULT_STYLE / "vad.yaml", "{vad: vad}", "{vad: triple}")
    with pytest.raises(TemplateError, match=r"vad\.yaml: no answer format 'triple' in _style\.yaml"):
        load_template("vad", root=style_copy)


def test_family_may_set_its_own_system_prompt(style_copy):
    family = style_copy / DEFAULT_STYLE / "vad.yaml"
    edit(family, "user: |-", "system: You rate faces.\nuser: |-")
    assert load_template("vad", root=style_copy).system == "You rate faces."
    assert load_template("joint", root=style_copy).system == load_template("joint").system


def test_shared_files_are_not_families():
    with pytest.raises(TemplateError, match="no template"):
        load_template("_style")
