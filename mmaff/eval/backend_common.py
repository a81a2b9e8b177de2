"""What every generation backend shares: a record's prompt and videos, its task's decoding (with a run's
overrides, and as a backend applies it), and the `Prediction` a backend returns.

A leaf of `mmaff.eval`'s generation modules: `mmaff.eval.generate` (the driver, HF and vLLM backends) and
`mmaff.eval.openai_backend` both import it, so neither imports the other's internals in a circle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmaff.eval.tasks import Decoding, EvalTask, TaskError, load_tasks, record_task


def task_decodings(
    tasks: Mapping[str, EvalTask] | None = None,
    *,
    max_new_tokens: int | None = None,
    num_beams: int | None = None,
    num_return_sequences: int | None = None,
) -> dict[str, Decoding]:
    """Task name -> its decoding (the task files' unless `tasks` is given), with a run's overrides (None: the
    task's) applied to every task."""
    tasks = load_tasks() if tasks is None else tasks
    overrides = {
        "max_new_tokens": max_new_tokens,
        "num_beams": num_beams,
        "num_return_sequences": num_return_sequences,
    }
    try:
        return {name: task.generation.override(**overrides) for name, task in tasks.items()}
    except ValueError as err:
        raise ValueError(f"decoding overrides {overrides}: {err}") from None


def decoding_of(decodings: Mapping[str, Decoding], record: dict[str, Any]) -> Decoding:
    """The decoding of the record's task."""
    try:
        return decodings[record_task(record)]
    except KeyError:
        raise TaskError(
            f"{record['id']}: no eval task {record_task(record)} (eval/tasks/<dataset>/<subtask>.yaml)"
        ) from None


# ---------------------------------------------------------------------------------------------------- records


def prompt_messages(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's messages without the final assistant turn, content parts without None-valued keys (Arrow)."""
    messages = record["messages"]
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    if not messages or messages[-1]["role"] != "user":
        raise ValueError(f"{record['id']}: the prompt must end with a user turn")
    return [
        {"role": m["role"], "content": [{k: v for k, v in part.items() if v is not None} for part in m["content"]]}
        for m in messages
    ]


def video_media(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The media entries of the record's videos, in the order of `record["videos"]`."""
    return [m for m in record["media"] if m["kind"] == "video"]


@dataclass
class Prediction:
    """One backend answer: text (a ranked list for top-k decoding), seconds spent, extra fields for the row."""

    id: str
    text: str | list[str] | dict[str, float]  # text, ranked beams (top-k), or label -> score (mmaff.eval.likelihood)
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def one_reply(decoding: Decoding) -> Decoding:
    """The decoding of a backend without beam search: greedy, one reply."""
    return decoding.override(num_beams=1, num_return_sequences=1)


def recorded_decoding(asked: Decoding, applied: Decoding, why: str) -> dict[str, Any]:
    """The run file's entry for a task: the decoding applied, with a note (`why`) where it is not the task's."""
    settings = applied.as_dict()
    if applied != asked:
        settings["note"] = f"the task asks for {asked.num_beams} beams; {why}"
    return settings
