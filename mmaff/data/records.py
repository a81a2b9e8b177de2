"""Example -> corpus record: ids, label spaces, rendered messages, validation; plus dedup keys."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import quote

import regex
import xxhash

from mmaff.data.answers import render_answer
from mmaff.data.registry import DatasetSpec
from mmaff.data.schema import ID_RE, LANGUAGE_RE, SPLITS, Example, RecordError, check_gold, validate_record
from mmaff.data.templates import SENTINEL, PromptRenderer, load_template, prompt_context, render_given

# What dedup ignores: everything but letters, digits and the combining marks that spell words (Mn, Mc: Thai
# vowels and tone marks, Indic vowel signs and viramas, Arabic harakat), plus variation selectors (emoji
# presentation, Mn) and the Arabic tatweel (a stretched joint, Lm), which are typography.
_NOT_TEXT = regex.compile(r"(?V1)[[^\p{L}\p{N}\p{Mn}\p{Mc}]\p{Variation_Selector}\N{ARABIC TATWEEL}]+")


def hash64(data: str | bytes, seed: int = 0) -> int:
    """64-bit xxh3 of the (UTF-8) data; 0 is reserved for "no value", so it maps to 1."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    return xxhash.xxh3_64_intdigest(data, seed) or 1


_ASCII_NON_WORD = {c: None for c in range(128) if not chr(c).isalnum()}


def normalise_for_dedup(text: str) -> str:
    """NFKC, case-folded, punctuation/whitespace/symbols/emoji/controls removed: "Great!!  " and "great" collide,
    so do full- and half-width forms and composed / decomposed accents.

    Combining marks are kept, in every script: in Thai, Devanagari, Bengali, Tamil, Gurmukhi they are the
    vowels and tone marks (กิน "eat" and กัน "together" differ only by one), and in Arabic/Urdu harakat tell
    words apart (كَتَبَ "he wrote", كُتُب "books"). Latin/Greek/Cyrillic accents are kept too: NFKC composes
    them into letters, which were never folded, and they distinguish words (año / ano). The price: the same
    Arabic text with and without its optional harakat does not collide."""
    if text.isascii():  # NFKC is the identity on ASCII; translate is ~3x faster than the regex there
        return text.lower().translate(_ASCII_NON_WORD)
    return _NOT_TEXT.sub("", unicodedata.normalize("NFKC", text).casefold())


_SAFE_ID_PART = re.compile(r"^[A-Za-z0-9\-_.~:@+>=,]+$")


def _id_part(value: str) -> str:
    return value if _SAFE_ID_PART.match(value) else quote(value, safe="-_.~:@+>=,")


def id_prefix(dataset: str, example: Example) -> str:
    subset = example.subset or example.language
    return "".join(_id_part(str(p)) + "/" for p in (dataset, subset, example.subtask, *example.facet.values()))


class _SubtaskParts:
    """What every record of one subtask shares: template, label space, answer format, system turn."""

    def __init__(self, spec: DatasetSpec, name: str, style: str) -> None:
        self.subtask = spec.subtasks[name]
        self.template = load_template(self.subtask.template, style)
        self.space = self.subtask.label_space(spec.subtasks)
        self.answer_spec = self.template.answer_spec(self.subtask, spec.subtasks)
        self.system = (
            [{"role": "system", "content": [{"type": "text", "text": self.template.system}]}]
            if self.template.system
            else []
        )
        self.template_ref = {"name": self.template.name, "version": self.template.version}
        self.validated = False


class RecordMaker:
    """Builds validated records for one dataset with one template style."""

    def __init__(self, spec: DatasetSpec, style: str) -> None:
        self.spec = spec
        self.renderer = PromptRenderer()
        self.parts = {name: _SubtaskParts(spec, name, style) for name in spec.subtasks}
        self._prompts: dict[tuple, str] = {}
        self._id_prefixes: dict[tuple, str] = {}

    def _prompt(self, example: Example, parts: _SubtaskParts) -> str:
        given_answer = (
            render_given(parts.template, self.spec, parts.subtask, example.given) if parts.subtask.given else None
        )
        ctx_args = (
            self.spec,
            parts.subtask,
            example.text,
            example.facet,
            example.given,
            given_answer,
            example.language,
        )
        if not example.text:  # no text at all (images): the template drops its text line, so no sentinel shape
            return parts.template.user.render(prompt_context(*ctx_args)).strip()
        key = (example.subtask, tuple(example.facet.items()), given_answer, example.language)
        shape = self._prompts.get(key)
        if shape is None:  # one context per prompt shape; the renderer checks the template is linear in `text`
            return self.renderer.render(
                parts.template, prompt_context(*ctx_args), shape_key=key, remember=self._prompts
            )
        return shape.replace(SENTINEL, example.text or "")

    def _id(self, example: Example) -> str:
        key = (example.subset, example.language, example.subtask, tuple(example.facet.values()))
        prefix = self._id_prefixes.get(key)
        if prefix is None:
            prefix = self._id_prefixes[key] = id_prefix(self.spec.key, example)
        return prefix + _id_part(example.source_id)

    def media_path(self, ref: str) -> str:
        """Where a media file lives in the corpus: `media/<dataset>/<ref>`."""
        return f"media/{self.spec.key}/{ref}"

    def check(self, example: Example) -> str:
        """Validate what depends on the example's data and return its record id; RecordError if invalid."""
        parts = self.parts.get(example.subtask)
        if parts is None:
            raise RecordError(f"unknown subtask {example.subtask!r} for {self.spec.key}")
        check_gold(example.gold, parts.subtask.target_type, parts.space)
        if parts.subtask.given and not example.given:
            raise RecordError(f"two-step subtask {example.subtask} needs `given`")
        if example.text is not None and not example.text.strip():
            raise RecordError("empty text", "empty_text")
        if parts.subtask.target_type == "open" and any("," in term or "\n" in term for term in example.gold):
            raise RecordError(f"terms {example.gold!r} contain the answer separator", "bad_term")
        if example.split is not None and example.split not in SPLITS:
            raise RecordError(f"bad split {example.split!r}")
        if not LANGUAGE_RE.match(example.language):
            raise RecordError(f"bad language {example.language!r}", "bad_language")
        for path in (*example.images, *example.videos):
            if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
                raise RecordError(f"media path {path!r} is not relative to the media root", "unsafe_media_path")
        return self._checked_id(example)

    def _checked_id(self, example: Example) -> str:
        """The record id, checked per record (the schema check of whole records runs once per subtask)."""
        if not isinstance(example.source_id, str) or not example.source_id.strip():
            raise RecordError(f"empty source id {example.source_id!r}", "empty_source_id")
        record_id = self._id(example)
        if not ID_RE.match(record_id):
            raise RecordError(f"bad record id {record_id!r}", "bad_record_id")
        return record_id

    def make(self, example: Example, record_id: str, split: str) -> dict[str, Any]:
        """The corpus record of an example that passed `check`."""
        parts = self.parts[example.subtask]
        media = [{"type": "image"} for _ in example.images] + [{"type": "video"} for _ in example.videos]
        messages = [
            *parts.system,
            {"role": "user", "content": [*media, {"type": "text", "text": self._prompt(example, parts)}]},
            {
                "role": "assistant",
                "content": [{"type": "text", "text": render_answer(example.gold, parts.answer_spec, parts.space)}],
            },
        ]
        source = {
            "file": example.file,
            "line": example.line,
            "source_id": example.source_id,
            **example.facet,
            **example.meta,
        }
        if not example.primary:
            source["derived"] = True
        record = {
            "id": record_id,
            "dataset": self.spec.key,
            "subset": example.subset or example.language,
            "subtask": example.subtask,
            "task": parts.subtask.task,
            "target_type": parts.subtask.target_type,
            "language": example.language,
            "modality": self.spec.modality,
            "split": split,
            "messages": messages,
            "images": [self.media_path(ref) for ref in example.images],
            "videos": [self.media_path(ref) for ref in example.videos],
            "visual_tokens": sum(m["tokens"] for m in example.media),
            "media": example.media,
            "text": example.text,
            "gold": example.gold,
            "given": example.given,
            "label_space": parts.space,
            "template": parts.template_ref,
            "source": source,
        }
        if not parts.validated:
            # every record of a subtask is assembled the same way from checked data (`check`), so one full
            # schema validation per subtask and process covers the structure
            validate_record(record)
            parts.validated = True
        return record
