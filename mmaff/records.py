"""Example -> corpus record: ids, label spaces, rendered messages, validation; plus dedup keys."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any
from urllib.parse import quote

from mmaff.answers import render_answer
from mmaff.registry import DatasetSpec
from mmaff.schema import Example, RecordError, check_gold, validate_record
from mmaff.templates import PromptRenderer, load_template, prompt_context, render_given

_NON_WORD = re.compile(r"[\W_]+")


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def normalise_for_dedup(text: str) -> str:
    """NFKC, case-folded, punctuation/whitespace/emoji removed: "Great!!  " and "great" collide."""
    return _NON_WORD.sub("", unicodedata.normalize("NFKC", text).casefold())


def record_id(dataset: str, example: Example) -> str:
    subset = example.subset or example.language
    parts = [dataset, subset, example.subtask, *example.facet.values(), example.source_id]
    return "/".join(quote(str(p), safe="-_.~:@+>=,") for p in parts)


class RecordMaker:
    """Builds validated records for one dataset with one template style."""

    def __init__(self, spec: DatasetSpec, style: str) -> None:
        self.spec = spec
        self.style = style
        self.renderer = PromptRenderer()
        self.templates = {name: load_template(st.template, style) for name, st in spec.subtasks.items()}
        self.spaces = {name: st.label_space(spec.subtasks) for name, st in spec.subtasks.items()}

    def make(self, example: Example) -> dict[str, Any]:
        """Raise RecordError if the example cannot become a valid record."""
        spec, subtask = self.spec, self.spec.subtasks.get(example.subtask)
        if subtask is None:
            raise RecordError(f"unknown subtask {example.subtask!r} for {spec.key}")
        space, template = self.spaces[example.subtask], self.templates[example.subtask]
        check_gold(example.gold, subtask.target_type, space)
        if example.text is not None and not example.text.strip():
            raise RecordError("empty text", "empty_text")
        given_answer = render_given(template, spec, subtask, example.given) if subtask.given else None
        ctx = prompt_context(spec, subtask, example.text, example.facet, example.given, given_answer, example.language)
        answer = render_answer(example.gold, template.answer_spec(subtask, spec.subtasks), space)
        media = [{"type": "image"} for _ in example.images] + [{"type": "video"} for _ in example.videos]
        messages = []
        if template.system:
            messages.append({"role": "system", "content": [{"type": "text", "text": template.system}]})
        messages.append({"role": "user", "content": [*media, {"type": "text", "text": self.renderer.render(template, ctx)}]})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        record = {
            "id": record_id(spec.key, example),
            "dataset": spec.key,
            "subset": example.subset or example.language,
            "subtask": example.subtask,
            "task": subtask.task,
            "target_type": subtask.target_type,
            "language": example.language,
            "modality": spec.modality,
            "split": example.split or "train",  # seeded splits are assigned later; validated with a placeholder
            "messages": messages,
            "images": example.images,
            "videos": example.videos,
            "text": example.text,
            "gold": example.gold,
            "given": example.given,
            "label_space": space,
            "template": {"name": template.name, "version": template.version},
            "source": {"file": example.file, "line": example.line, "source_id": example.source_id, **example.facet,
                       **example.meta, **({} if example.primary else {"derived": True})},
        }
        validate_record(record)
        return record
