"""Templates as data: `templates/<style>/<family>.yaml` render prompts and answers and declare parsing.

A family file holds `name`, `version`, `changelog`, a `system` prompt, a Jinja `user` prompt and the
answer format per target type (`answers`) or per task (`parts`, for joint and two-step families). The
same file drives training prompts (`render_messages`) and evaluation parsing (`Template.parse`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import orjson
import yaml

from mmaff.data.answers import Parsed, parse_answer, render_answer
from mmaff.data.registry import DatasetSpec, Subtask
from mmaff.paths import TEMPLATES_DIR

DEFAULT_STYLE = "mmaffben"
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False)
_SENTINELS = ("\x00TEXT-A\x00", "\x00TEXT-B\x00")
SENTINEL = _SENTINELS[0]


class TemplateError(ValueError):
    pass


@dataclass
class Template:
    style: str
    family: str
    version: int
    system: str | None
    user: jinja2.Template
    answers: dict[str, dict[str, Any]]
    parts: dict[str, dict[str, Any]]
    # (answer spec, label space) per subtask, for `parse`: id(subtask), id(subtasks) -> (subtask, subtasks, spec,
    # space); the registry objects are kept in the entry, so an id is never reused while its entry exists
    _parse_specs: dict[tuple[int, int], tuple[Any, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def name(self) -> str:
        return f"{self.style}/{self.family}"

    def part_spec(self, part: Subtask) -> dict[str, Any]:
        """The answer format of one part of a joint or two-step reply: by task, then by target type."""
        declared = self.parts.get(part.task, {})
        formats = declared.get("formats", {})
        if part.target_type not in formats:
            raise TemplateError(f"template {self.name} has no {part.target_type!r} format for {part.task} parts")
        return {**({"title": declared["title"]} if "title" in declared else {}), **formats[part.target_type]}

    def answer_spec(self, subtask: Subtask, subtasks: dict[str, Subtask]) -> dict[str, Any]:
        if subtask.target_type == "joint":
            parts = {subtasks[p].task: self.part_spec(subtasks[p]) for p in subtask.parts}
            return {"format": "sections", "parts": parts}
        if subtask.asks:
            return self.part_spec(subtasks[subtask.asks])
        if subtask.target_type not in self.answers:
            raise TemplateError(f"template {self.name} has no answer format for {subtask.target_type!r}")
        return self.answers[subtask.target_type]

    def parse(self, reply: str, subtask: Subtask, subtasks: dict[str, Subtask]) -> Parsed:
        """Parse one reply. The answer spec and label space of (subtask, subtasks) are made once and reused (the
        registry is read-only), because scoring parses hundreds of thousands of replies to a few subtasks."""
        key = (id(subtask), id(subtasks))
        entry = self._parse_specs.get(key)
        if entry is None or entry[0] is not subtask or entry[1] is not subtasks:
            if len(self._parse_specs) >= 4096:  # registries loaded over and over (tests): stay bounded
                self._parse_specs.clear()
            entry = (subtask, subtasks, self.answer_spec(subtask, subtasks), subtask.label_space(subtasks))
            self._parse_specs[key] = entry
        return parse_answer(reply, entry[2], entry[3])


@functools.cache
def load_template(family: str, style: str = DEFAULT_STYLE, root: Path = TEMPLATES_DIR) -> Template:
    path = root / style / f"{family}.yaml"
    if not path.exists():
        raise TemplateError(f"no template {style}/{family} ({path})")
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    if raw.get("name") != family or not isinstance(raw.get("version"), int):
        raise TemplateError(f"{path}: needs name: {family} and an integer version")
    try:
        user = _ENV.from_string(raw["user"])
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{path}:{err.lineno}: {err.message}") from err
    return Template(
        style, family, raw["version"], raw.get("system"), user, raw.get("answers", {}), raw.get("parts", {})
    )


def _part_context(subtask: Subtask) -> dict[str, Any]:
    ctx: dict[str, Any] = {"task": subtask.task, "target_type": subtask.target_type}
    if subtask.label_set is not None:
        ctx["labels"] = [{"id": i, "name": n} for i, n in zip(subtask.label_set.ids, subtask.label_set.labels)]
        ctx["none_label"] = subtask.label_set.none  # not "none": that is a Jinja literal
    if subtask.range is not None:
        ctx["range_min"], ctx["range_max"] = subtask.range
    if subtask.classes is not None:
        ctx["classes"] = [{"value": v, "name": n} for v, n in sorted(subtask.classes.items(), reverse=True)]
    if subtask.dims is not None:
        ctx["dims"] = list(subtask.dims)
    return ctx


class PromptRenderer:
    """Renders user prompts, reusing one render per prompt shape when the template is linear in `text`.

    Most prompts differ only in the input text, so a shape is rendered once with a sentinel text and later
    prompts are made by substitution. Linearity is checked per shape by rendering two sentinels; a template
    that transforms the text (filters, length tests) falls back to a full render every time.
    """

    def __init__(self) -> None:
        self._shapes: dict[Any, str | None] = {}

    def shape(self, template: Template, ctx: dict[str, Any]) -> str | None:
        a, b = (template.user.render({**ctx, "text": s}).strip() for s in _SENTINELS)
        return a if SENTINEL in a and a.replace(*_SENTINELS) == b else None

    def render(
        self, template: Template, ctx: dict[str, Any], shape_key: Any = None, remember: dict[Any, str] | None = None
    ) -> str:
        key = (
            shape_key
            if shape_key is not None
            else template.name.encode()
            + orjson.dumps({k: v for k, v in ctx.items() if k != "text"}, option=orjson.OPT_SORT_KEYS)
        )
        if key not in self._shapes:
            self._shapes[key] = self.shape(template, ctx)
            if remember is not None and self._shapes[key] is not None:
                remember[key] = self._shapes[key]
        shape = self._shapes[key]
        return template.user.render(ctx).strip() if shape is None else shape.replace(SENTINEL, ctx["text"])


def prompt_context(
    spec: DatasetSpec,
    subtask: Subtask,
    text: str | None,
    facet: dict[str, str],
    given: dict[str, Any] | None,
    given_answer: str | None,
    language: str,
) -> dict[str, Any]:
    subtasks = spec.subtasks
    asked = subtasks[subtask.asks] if subtask.asks else subtask
    ctx: dict[str, Any] = {
        "text": text if text is not None else "",
        "medium": spec.prompt.get("medium", spec.modality),
        "subject": spec.prompt.get("subject", spec.prompt.get("medium", spec.modality)),
        "who": spec.prompt.get("who", f"the author of the {spec.prompt.get('subject', spec.modality)}"),
        "language": language,
        **_part_context(asked),
        **facet,
    }
    if subtask.target_type == "joint":
        ctx["parts"] = [_part_context(subtasks[p]) for p in subtask.parts]
    if subtask.given:
        ctx["given"] = {**_part_context(subtasks[subtask.given]), "answer": given_answer}
    return ctx


def render_given(template: Template, spec: DatasetSpec, subtask: Subtask, given: dict[str, Any]) -> str:
    given_sub = spec.subtasks[subtask.given]
    return render_answer(given[given_sub.task], template.part_spec(given_sub), given_sub.label_space(spec.subtasks))
