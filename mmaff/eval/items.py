"""What scoring, reports and plots share: a corpus record reduced to what scoring needs, and a model's reply.

A leaf module (no imports from the rest of `mmaff.eval`), so that `score`, `report` and `plots` can all name
these types without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Item:
    """One corpus record reduced to what scoring needs."""

    id: str
    task: str  # <dataset>/<subtask>
    language: str
    gold: Any
    emotion: str | None
    template: str  # style/family
    target_type: str = ""
    label_space: Any = None
    answer: str = ""  # the gold answer text (what paper_compat parses as the notebook does)
    subset: str = ""  # the record's subset: its language, or a source part such as EWECT's "usual" / "virus"


Reply = str | list[str]
"""The generated text, or ranked beams (best first) from top-k decoding."""


def top_reply(reply: Reply) -> str:
    """The reply read as one answer: the best beam of a ranked list."""
    return reply if isinstance(reply, str) else (reply[0] if reply else "")
