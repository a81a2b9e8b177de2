"""Templates as data: `templates/<style>/<family>.yaml` render prompts and answers and declare parsing.

A family file holds `name`, `version`, `changelog`, a Jinja `user` prompt and the answer format per target type
(`answers`) or the tasks its reply is made of (`parts`, for joint and two-step families). What the families of a
style share is written once: `templates/<style>/_style.yaml` holds the system prompt (a family may set its own),
the answer formats by name and the reply parts; `templates/<style>/_parts/*.jinja` hold the prompt lines, which
the `user` prompts include or import through the style's Jinja loader. The same family drives training prompts
(`render_messages`) and evaluation parsing (`Template.parse`).
"""

from __future__ import annotations

import functools
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import orjson
import yaml

from mmaff.data.answers import Parsed, parse_answer, render_answer
from mmaff.data.registry import DatasetSpec, Subtask
from mmaff.paths import PROJECT_ROOT, TEMPLATES_DIR

DEFAULT_STYLE = "mmaffben"
STYLE_FILE = "_style.yaml"
_SENTINELS = ("\x00TEXT-A\x00", "\x00TEXT-B\x00")
SENTINEL = _SENTINELS[0]
_USER_PROMPT = " (user prompt)"  # a family's `user` template is named "<family file> (user prompt)" in errors


class TemplateError(ValueError):
    pass


def _shown(path: str | Path) -> str:
    """A template file as the project names it (templates/mmaffben/joint.yaml), or whole when elsewhere."""
    path = Path(path)
    return str(path.relative_to(PROJECT_ROOT) if path.is_relative_to(PROJECT_ROOT) else path)


def _where(err: jinja2.TemplateError) -> str:
    """The template file and line an error was raised in: the innermost template frame of its traceback (Jinja
    rewrites template frames to carry the template's file name and line)."""
    if isinstance(err, jinja2.TemplateSyntaxError) and err.filename:
        return f"{_shown(err.filename)}, line {err.lineno}"
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.endswith((".jinja", _USER_PROMPT))]
    return f"{_shown(frames[-1].filename)}, line {frames[-1].lineno}" if frames else "a template"


class _Prompt(jinja2.Template):
    """A Jinja template whose rendering errors (undefined variable, missing include) name the file and line."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        try:
            return super().render(*args, **kwargs)
        except jinja2.TemplateError as err:
            raise TemplateError(f"{_where(err)}: {err.message}") from err


@functools.cache
def _style(root: Path, style: str) -> tuple[jinja2.Environment, dict[str, Any]]:
    """The Jinja environment of a style (its folder is the loader's root) and its shared `_style.yaml`."""
    folder = root / style
    shared = _read_yaml(folder / STYLE_FILE) if (folder / STYLE_FILE).exists() else {}
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # an included partial pastes its lines, the last one's newline too (a family's `user` has none: `|-`)
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.template_class = _Prompt
    env.globals["part_titles"] = {task: part["title"] for task, part in shared.get("parts", {}).items()}
    return env, shared


def template_sources(style: str = DEFAULT_STYLE, root: Path = TEMPLATES_DIR) -> list[Path]:
    """Every file that decides a style's prompts and answers (families, `_style.yaml`, partials), sorted."""
    return sorted(p for p in (root / style).rglob("*") if p.is_file() and p.suffix in (".yaml", ".jinja"))


def _read_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    if not isinstance(raw, dict):
        raise TemplateError(f"{_shown(path)}: needs a mapping")
    return raw


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
    if family.startswith("_") or not path.exists():
        raise TemplateError(f"no template {style}/{family} ({path})")
    raw = _read_yaml(path)
    if raw.get("name") != family or not isinstance(raw.get("version"), int):
        raise TemplateError(f"{_shown(path)}: needs name: {family} and an integer version")
    env, shared = _style(root, style)
    formats = shared.get("formats", {})
    answers = {kind: _format(fmt, formats, path) for kind, fmt in raw.get("answers", {}).items()}
    parts = {task: _part(task, shared.get("parts", {}), formats, path) for task in raw.get("parts", [])}
    user = _compile(env, raw["user"], path)
    return Template(style, family, raw["version"], raw.get("system", shared.get("system")), user, answers, parts)


def _format(fmt: str | dict[str, Any], formats: dict[str, dict[str, Any]], path: Path) -> dict[str, Any]:
    """An answer format: a name from `_style.yaml` formats, or written out in the family."""
    if isinstance(fmt, dict):
        return fmt
    if fmt not in formats:
        raise TemplateError(f"{_shown(path)}: no answer format {fmt!r} in {STYLE_FILE} (known: {sorted(formats)})")
    return formats[fmt]


def _part(task: str, parts: dict[str, Any], formats: dict[str, dict[str, Any]], path: Path) -> dict[str, Any]:
    if task not in parts:
        raise TemplateError(f"{_shown(path)}: no part {task!r} in {STYLE_FILE} (known: {sorted(parts)})")
    declared = parts[task]
    return {**declared, "formats": {kind: _format(f, formats, path) for kind, f in declared["formats"].items()}}


def _compile(env: jinja2.Environment, source: str, path: Path) -> jinja2.Template:
    """A family's `user` prompt, with every partial it includes or imports found and parsed now."""
    filename = f"{path}{_USER_PROMPT}"
    try:
        _check_references(env, source, filename, set())
        code = env.compile(source, name=path.name, filename=filename)
    except jinja2.TemplateSyntaxError as err:
        raise TemplateError(f"{_where(err)}: {err.message}") from err
    return env.template_class.from_code(env, code, env.make_globals(None))


def _check_references(env: jinja2.Environment, source: str, filename: str, seen: set[str]) -> None:
    """Fail on a partial that does not exist, naming the file that asks for it (Jinja would only fail when the
    line is rendered, maybe never for a branch the bundled corpus does not take)."""
    for name in jinja2.meta.find_referenced_templates(env.parse(source, filename=filename)):
        if name is None:
            raise TemplateError(f"{_shown(filename)}: includes a template by a computed name; write the name out")
        try:
            partial, partial_file, _ = env.loader.get_source(env, name)
        except jinja2.TemplateNotFound:
            raise TemplateError(
                f"{_shown(filename)}: includes {name!r}, which is not in {_shown(env.loader.searchpath[0])}"
            ) from None
        if name not in seen:
            seen.add(name)
            _check_references(env, partial, partial_file, seen)


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
