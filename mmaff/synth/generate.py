"""Requests to the OpenAI-compatible server through the project's backend (`mmaff.eval.openai_backend`), answers
kept in an append-only JSONL cache keyed by the request id, so a killed run loses only what was in flight and a
rerun asks only for what is missing (never twice for one id).

The cache is in arrival order (it depends on the server's timing); everything written from it is in plan order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mmaff.eval.openai_backend import OpenAIChatGenerator

# JSON schemas of the answers, for servers that constrain decoding (`structured` in the recipe)
TEXT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
    "additionalProperties": False,
}
STRUCTURED = ("none", "json_schema", "guided_json")


def structured_arguments(mode: str, schema: dict[str, Any], name: str) -> dict[str, Any]:
    """Create-arguments asking the server for JSON of `schema`: OpenAI's ``response_format`` json_schema (OpenAI,
    vLLM, SGLang) or vLLM's ``guided_json`` extra parameter; nothing for ``none``."""
    if mode == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}}
    if mode == "guided_json":
        return {"extra_body": {"guided_json": schema}}
    return {}


def read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """id -> answer row of a cache file; a torn last line (a kill during a write) is cut off first."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    rows = (json.loads(line) for line in data[:end].decode("utf-8").splitlines() if line.strip())
    return {row["id"]: row for row in rows}


def answer_all(backend: OpenAIChatGenerator, requests: Sequence[dict[str, Any]], cache: Path) -> dict[str, Any]:
    """Answers to every request (cached ones not asked again), each appended to `cache` as it arrives."""
    done = read_cache(cache)
    todo = [r for r in requests if r["id"] not in done]
    if todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with open(cache, "a", encoding="utf-8") as f:
            for row in _rows(backend.chat(todo)):
                f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                f.flush()
                done[row["id"]] = row
    return done


def _rows(predictions: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for p in predictions:
        yield {
            "id": p.id,
            "text": p.text,
            "refused": p.extra.get("refused"),
            "finish": p.extra.get("finish"),
            "prompt_tokens": p.extra.get("prompt_tokens"),
            "completion_tokens": p.extra.get("completion_tokens"),
        }
