"""The OpenAI-compatible client sends its key to `--base-url` only, keeps answers from there only, and never shows
the key, a base-URL password or an echoing server's body unredacted (issue #10, security)."""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mmaff.eval.generate import generate
from mmaff.eval.generate import main as generate_main
from mmaff.eval.openai_backend import APIError, OpenAIChatGenerator
from mmaff.eval.predictions import PredictionWriter, read_predictions, run_path

API_KEY = "sk-live-KEY0123456789abcdef"
PASSWORD = "pw-S3cret-xyz987"

# (method, path, headers) -> (status, extra headers, JSON body)
Reply = tuple[int, dict[str, str], dict[str, Any]]


class RecordingServer:
    """A loopback HTTP server answering GET and POST with `reply`, recording every request it gets."""

    def __init__(self, reply: Callable[[str, str, dict[str, str]], Reply]) -> None:
        server = self
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                # names are case-insensitive (httpx2 sends them lower-case): recorded as Title-Case
                headers = {name.title(): value for name, value in self.headers.items()}
                with server.lock:
                    server.requests.append({"method": self.command, "path": self.path, "headers": headers})
                status, extra, body = reply(self.command, self.path, headers)
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **extra}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = answer  # noqa: N815 - http.server API

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _answer(text: str) -> Reply:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
    return 200, {}, {"choices": [choice], "usage": {"prompt_tokens": 3}}


def _record(number: int) -> dict[str, Any]:
    def turn(role: str, text: str) -> dict[str, Any]:
        return {"role": role, "content": [{"type": "text", "text": text}]}

    return {
        "id": f"toy/test/{number}",
        "dataset": "meld",  # a task's record: generation takes its decoding from eval/tasks/meld/SP.yaml
        "subtask": "SP",
        "modality": "text",
        "target_type": "single",
        "images": [],
        "videos": [],
        "media": [],
        "messages": [turn("system", "Classify."), turn("user", f"text {number}"), turn("assistant", "1. joy")],
    }


def _toy_corpus(root: Path, records: int = 1) -> Path:
    (root / "test").mkdir(parents=True)
    (root / "manifest.json").write_text(json.dumps({"corpus": "toy"}))
    lines = "".join(json.dumps(_record(n)) + "\n" for n in range(records))
    (root / "test" / "toy.jsonl").write_text(lines)
    return root


# -------------------------------------------------------------------------------------------------- redirects


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_port_is_not_followed_and_its_answer_not_kept(tmp_path, status) -> None:
    elsewhere = RecordingServer(lambda *_: _answer("1. joy (from the other server)"))
    target = f"{elsewhere.base_url}/chat/completions"
    api = RecordingServer(lambda *_: (status, {"Location": target}, {"moved": True}))
    out = tmp_path / "preds.jsonl"
    try:
        client = OpenAIChatGenerator(api.base_url, "m", API_KEY, max_retries=2, timeout=5)
        with PredictionWriter(out) as writer, pytest.raises(APIError) as failure:
            generate([_record(0)], client, writer)
    finally:
        api.close()
        elsewhere.close()
    assert [r["headers"].get("Authorization") for r in elsewhere.requests if "Authorization" in r["headers"]] == []
    assert elsewhere.requests == []  # not even without the key: the answer of another host is never taken
    assert read_predictions(out).rows == {}
    message = str(failure.value)
    assert f"HTTP {status}" in message and "redirect" in message and f"127.0.0.1:{elsewhere.port}" in message
    assert len(api.requests) == 1  # a redirect is an answer, not a transient failure: no retry
    assert API_KEY not in message


def test_the_location_of_a_refused_redirect_is_shown_without_its_userinfo() -> None:
    location = f"http://mallory:{PASSWORD}@127.0.0.1:9/v1/chat/completions"
    api = RecordingServer(lambda *_: (307, {"Location": location}, {}))
    try:
        client = OpenAIChatGenerator(api.base_url, "m", API_KEY, max_retries=0, timeout=5)
        with pytest.raises(APIError, match="redirect") as failure:
            client.request(_record(0))
    finally:
        api.close()
    assert PASSWORD not in str(failure.value) and "<redacted>@127.0.0.1:9" in str(failure.value)


# -------------------------------------------------------------------------------------- secrets in messages


def _echoing_server() -> RecordingServer:
    """Answers the first request 500 and then 401, each time echoing the Authorization header and the key."""

    def reply(method: str, path: str, headers: dict[str, str]) -> Reply:
        auth = headers.get("Authorization", "")
        key = auth.removeprefix("Bearer ")
        body = {"error": {"message": f"Incorrect API key provided: {key}. You sent {auth!r}. " + "x" * 9000}}
        status = 500 if len(server.requests) == 1 else 401
        return status, {"Retry-After": "0"}, body

    server = RecordingServer(reply)
    return server


def test_no_key_or_base_url_password_reaches_logs_errors_or_the_run_file(tmp_path, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    corpus = _toy_corpus(tmp_path / "corpus")
    server = _echoing_server()
    monkeypatch.setenv("MMAFF_SAFETY_KEY", API_KEY)
    base_url = server.base_url.replace("://", f"://alice:{PASSWORD}@")
    out = tmp_path / "preds.jsonl"
    argv = ["--backend", "openai", "--base-url", base_url, "--model", "m", "--api-key-env", "MMAFF_SAFETY_KEY"]
    argv += ["--corpus", str(corpus), "--out", str(out), "--max-retries", "2", "--timeout", "5"]
    try:
        with pytest.raises(APIError) as failure:
            generate_main(argv)
    finally:
        server.close()
    assert [r["headers"]["Authorization"] for r in server.requests] == [f"Bearer {API_KEY}"] * 2  # the key is used
    message = str(failure.value)
    assert "HTTP 401" in message and "Incorrect API key provided" in message and len(message) < 1000
    captured = capfd.readouterr()
    run_text = run_path(out).read_text()
    shown = {"error": message, "logs": caplog.text, "stdout": captured.out, "stderr": captured.err, "run": run_text}
    assert "HTTP 500" in caplog.text  # the retried failure was logged, redacted
    for where, text in shown.items():
        assert API_KEY not in text, where
        assert PASSWORD not in text, where
    run = json.loads(run_text)
    assert f"127.0.0.1:{server.port}/v1" in " ".join(run["command"]) and "MMAFF_SAFETY_KEY" in run["command"]
    assert run["endpoint"] == f"{server.base_url}/chat/completions"


def test_base_url_userinfo_is_sent_as_basic_auth_and_never_recorded(tmp_path, monkeypatch) -> None:
    expected = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    server = RecordingServer(
        lambda m, p, headers: _answer("1. joy") if headers.get("Authorization") == expected else (401, {}, {})
    )
    corpus = _toy_corpus(tmp_path / "corpus", records=2)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "preds.jsonl"
    base_url = server.base_url.replace("://", f"://alice:{PASSWORD}@")
    try:
        report = generate_main(["--backend", "openai", "--base-url", base_url, "--model", "m"] + [
            "--corpus", str(corpus), "--out", str(out), "--max-retries", "0",
        ])  # fmt: skip
    finally:
        server.close()
    assert report.written == 2 and {r["prediction"] for r in read_predictions(out).rows.values()} == {"1. joy"}
    for path in (out, run_path(out)):
        text = path.read_text()
        assert PASSWORD not in text and "alice:" not in text, path
    assert "<redacted>@127.0.0.1" in run_path(out).read_text()


def test_the_sdk_and_http_debug_logs_show_no_key_or_password(caplog) -> None:
    """httpcore2 logs every response's headers at DEBUG: a server echoing the key in a header, or redirecting to
    a URL with a password, must not put them in the logs (nor may the SDK's own log lines)."""
    caplog.set_level(logging.DEBUG)
    location = f"http://mallory:{PASSWORD}@127.0.0.1:9/v1/chat/completions"

    def reply(method: str, path: str, headers: dict[str, str]) -> Reply:
        echoed = {"X-Echo": headers.get("Authorization", ""), "Location": location, "retry-after-ms": "1"}
        return 500, echoed, {"error": {"message": f"you sent {headers.get('Authorization')}"}}

    server = RecordingServer(reply)
    try:
        base_url = server.base_url.replace("://", f"://alice:{PASSWORD}@")
        client = OpenAIChatGenerator(base_url, "m", API_KEY, max_retries=1, timeout=5)
        with pytest.raises(APIError, match="gave up after 2 attempts") as failure:
            client.request(_record(0))
    finally:
        server.close()
    assert len(server.requests) == 2 and server.requests[0]["headers"]["Authorization"] == f"Bearer {API_KEY}"
    headers_logged = [r for r in caplog.records if "receive_response_headers.complete" in r.getMessage()]
    assert headers_logged and all("X-Echo" in r.getMessage() for r in headers_logged)  # the leak path is live
    names = {r.name.partition(".")[0] for r in caplog.records}
    assert {"openai", "httpx2", "httpcore2", "mmaff"} <= names
    for text in (caplog.text, str(failure.value)):
        assert API_KEY not in text and PASSWORD not in text
    assert "Bearer <redacted>" in caplog.text and "<redacted>@127.0.0.1:9" in caplog.text


def test_a_loopback_server_is_reached_without_the_environment_proxy(monkeypatch) -> None:
    server = RecordingServer(lambda *_: _answer("1. joy"))
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there: a proxied request would fail
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    try:
        answer = OpenAIChatGenerator(server.base_url, "m", API_KEY, max_retries=0, timeout=5).request(_record(0))
    finally:
        server.close()
    assert answer.text == "1. joy" and len(server.requests) == 1
