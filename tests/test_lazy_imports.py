"""The API evaluation path needs neither torch nor transformers (nor datasets): `python -m mmaff.generate --backend
openai` over the whole bundled test split (text, images, video frames) runs in a process where importing them
fails, against a loopback server, and writes a prediction per record."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from helpers import LoopbackJSONServer

from mmaff.encode.corpus import read_records

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("torch", "transformers", "torchvision", "datasets", "accelerate", "trl", "vllm")

# Runs `python -m mmaff.generate` with a meta-path hook in front that refuses the blocked packages.
RUN_BLOCKED = """
import importlib.abc, runpy, sys

BLOCKED = set(sys.argv[1].split(","))


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
        return None


sys.meta_path.insert(0, Refuse())
try:
    import torch  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("the import hook does not block torch")
sys.argv = ["mmaff.generate", *sys.argv[2:]]
runpy.run_module("mmaff.generate", run_name="__main__", alter_sys=True)
loaded = sorted({name.partition(".")[0] for name in sys.modules} & BLOCKED)
print("BLOCKED_LOADED=" + ",".join(loaded), file=sys.stderr)
"""


class EchoServer(LoopbackJSONServer):
    """Answers every chat completion with "1. joy" and keeps the requests."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__()

    def respond(self, handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        with self.lock:
            self.requests.append(payload)
        choice = {"index": 0, "message": {"role": "assistant", "content": "1. joy"}, "finish_reason": "stop"}
        self.send(handler, 200, {"choices": [choice], "usage": {"prompt_tokens": 1}})


def _image_parts(payload: dict[str, Any]) -> int:
    user_parts = [part for m in payload["messages"] if m["role"] == "user" for part in m["content"]]
    return sum(part["type"] == "image_url" for part in user_parts)


def test_openai_backend_runs_without_torch_transformers_or_datasets(sample_corpus, tmp_path) -> None:
    records = read_records(sample_corpus, "test")
    assert {r["modality"] for r in records} == {"text", "image", "video"}
    out = tmp_path / "predictions.jsonl"
    server = EchoServer()
    argv = ["--backend", "openai", "--base-url", server.base_url, "--model", "echo", "--corpus", str(sample_corpus)]
    argv += ["--split", "test", "--out", str(out), "--concurrency", "2", "--max-retries", "0"]
    try:
        done = subprocess.run(
            [sys.executable, "-c", RUN_BLOCKED, ",".join(BLOCKED), *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr[-4000:]
    assert "BLOCKED_LOADED=\n" in done.stderr  # nothing blocked was even attempted past the hook
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(row["id"] for row in rows) == sorted(r["id"] for r in records)
    assert {row["prediction"] for row in rows} == {"1. joy"}
    assert len(server.requests) == len(records)
    images = [_image_parts(payload) for payload in server.requests]
    assert 1 in images and max(images) > 1  # an image goes as one part, a video as its sampled frames
