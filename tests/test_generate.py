"""Generation: HF batching invariance, resumable prediction files, the OpenAI-compatible client, shard merging."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from helpers import LoopbackJSONServer

from mmaff.data.media import smart_resize
from mmaff.eval.generate import (
    HFGenerator,
    Prediction,
    generate,
    generate_data_parallel,
    prompt_messages,
    shard_path,
    task_decodings,
)
from mmaff.eval.openai_backend import APIError, OpenAIChatGenerator
from mmaff.eval.predictions import PredictionFileError, PredictionWriter, done_ids, merge_shards, read_predictions
from mmaff.eval.tasks import record_task

# ------------------------------------------------------------------------------------------------- fixtures


def _pick(records: list[dict[str, Any]], per_kind: int) -> list[dict[str, Any]]:
    """Up to `per_kind` records of each (modality, target type): every modality, several target types."""
    seen: Counter = Counter()
    chosen = []
    for record in sorted(records, key=lambda r: r["id"]):
        key = (record["modality"], record["target_type"])
        if seen[key] < per_kind:
            seen[key] += 1
            chosen.append(record)
    return chosen


# ------------------------------------------------------------------------------------------------ HF backend

DECODINGS = task_decodings()  # the task files'
# greedy, and short: the tiny model never stops early
SMALL_LIMITS = {
    name: d.override(max_new_tokens=min(d.max_new_tokens, 12), num_beams=1) for name, d in DECODINGS.items()
}


def test_hf_greedy_outputs_do_not_depend_on_the_batch(varied_model_dir, corpus, test_records) -> None:
    records = _pick(test_records, per_kind=2)
    assert {r["modality"] for r in records} == {"text", "image", "video"}
    kwargs = {"decoder": "pyav", "decodings": SMALL_LIMITS, "dtype": "float32", "device": "cpu"}
    single = HFGenerator(varied_model_dir, corpus.root, corpus.budget, batch_size=1, **kwargs)
    # batch 4 also counts prompts over 90 tokens: counted, never cut (its outputs must still match batch 1)
    batched = HFGenerator(varied_model_dir, corpus.root, corpus.budget, batch_size=4, max_prompt_tokens=90, **kwargs)

    batches = batched.batches(records)
    assert all(len({batched.decoding_of(r) for r in b}) == 1 for b in batches)
    assert any(len({r["modality"] for r in b}) > 1 for b in batches)  # mixed-modality, left-padded batches
    assert max(len(b) for b in batches) == 4

    one = {p.id: p for batch in single.predict(records) for p in batch}
    four = {p.id: p for batch in batched.predict(records) for p in batch}
    ids = {r["id"] for r in records}
    assert set(one) == set(four) == ids
    assert all(isinstance(p.text, str) for p in [*one.values(), *four.values()])
    assert {i: one[i].text for i in ids} == {i: four[i].text for i in ids}
    assert len({p.text for p in one.values()}) >= len(ids) // 2, "outputs barely depend on the input"
    for record in records:
        extra = four[record["id"]].extra
        assert extra["max_new_tokens"] == SMALL_LIMITS[record_task(record)].max_new_tokens
        assert extra["prompt_tokens"] == one[record["id"]].extra["prompt_tokens"]
    assert sorted(batched.too_long) == sorted(i for i in ids if four[i].extra["prompt_tokens"] > 90)
    assert batched.too_long and not single.too_long


def test_hf_prompt_is_the_training_sample_up_to_the_answer(varied_model_dir, corpus, test_records) -> None:
    """Same template, same media tensors as training: the prompt's tokens are the training sample's unlabelled
    prefix, which ends with the assistant header."""
    import torch

    generator = HFGenerator(varied_model_dir, corpus.root, corpus.budget, decoder="pyav", device="cpu")
    for modality in ("text", "image", "video"):
        record = next(r for r in test_records if r["modality"] == modality)
        prompt = generator.encode(record)
        full = generator.encoder.encode(record)
        n = len(prompt)
        assert torch.equal(full.input_ids[:n], prompt.input_ids)
        assert (full.labels[:n] == -100).all() and (full.labels[n:] != -100).any()
        assert generator.render(record).endswith("<|im_start|>assistant\n")
        for name in ("pixel_values", "pixel_values_videos", "video_grid_thw", "second_per_grid_ts"):
            a, b = getattr(full, name), getattr(prompt, name)
            assert (a is None and b is None) or torch.equal(a, b), (modality, name)
    assert prompt_messages(record)[-1]["role"] == "user"


def test_hf_beams_return_ranked_lists(varied_model_dir, corpus, test_records) -> None:
    records = [r for r in test_records if r["modality"] == "image"][:2]
    generator = HFGenerator(
        varied_model_dir,
        corpus.root,
        corpus.budget,
        batch_size=2,
        decoder="pyav",
        device="cpu",
        decodings=task_decodings(max_new_tokens=3, num_beams=3, num_return_sequences=3),
    )
    predictions = [p for batch in generator.predict(records) for p in batch]
    assert [p.id for p in predictions] and all(isinstance(p.text, list) and len(p.text) == 3 for p in predictions)
    assert all(isinstance(t, str) for p in predictions for t in p.text)


# ----------------------------------------------------------------------------------------- resumable files


class EchoBackend:
    """Answers "answer <id>" in batches; can crash after some batches; records every id it was asked for."""

    name, model_name = "echo", "echo-model"

    def __init__(self, batch_size: int = 3, crash_after_batches: int | None = None) -> None:
        self.batch_size, self.crash_after = batch_size, crash_after_batches
        self.calls: list[str] = []

    def predict(self, records) -> Iterator[list[Prediction]]:
        for number, start in enumerate(range(0, len(records), self.batch_size)):
            if self.crash_after is not None and number == self.crash_after:
                raise RuntimeError("simulated crash")
            batch = records[start : start + self.batch_size]
            self.calls.extend(r["id"] for r in batch)
            yield [Prediction(r["id"], f"answer {r['id']}", 0.01, {"k": 1}) for r in batch]


def _items(n: int) -> list[dict[str, Any]]:
    return [{"id": f"set/x/{i:03d}", "target_type": "single"} for i in range(n)]


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_crashed_run_resumes_without_duplicates_or_regeneration(tmp_path) -> None:
    path, items = tmp_path / "preds.jsonl", _items(10)
    crashing = EchoBackend(batch_size=3, crash_after_batches=2)
    with PredictionWriter(path) as writer, pytest.raises(RuntimeError, match="simulated crash"):
        generate(items, crashing, writer)
    assert len(_rows(path)) == 6 and done_ids(path) == set(crashing.calls)

    again = EchoBackend(batch_size=3)
    with PredictionWriter(path) as writer:
        report = generate(items, again, writer)
    assert again.calls == [i["id"] for i in items[6:]]  # done items are not regenerated
    assert (report.skipped, report.written, report.total) == (6, 4, 10)
    rows = _rows(path)
    assert sorted(r["id"] for r in rows) == [i["id"] for i in items]  # all present, none twice
    row = rows[0]
    assert row == {"id": row["id"], "prediction": f"answer {row['id']}", "model": "echo-model", "backend": "echo",
                   "seconds": 0.01, "k": 1}  # fmt: skip

    with PredictionWriter(path) as writer, pytest.raises(ValueError, match="already holds 10"):
        generate(items, EchoBackend(), writer, skip_done=False)


SLOW_RUN = """
import sys, time
from mmaff.eval.generate import Prediction, generate
from mmaff.eval.predictions import PredictionWriter

class Slow:
    name, model_name = "slow", "slow-model"
    def predict(self, records):
        for r in records:
            time.sleep(0.03)
            yield [Prediction(r["id"], "answer " + r["id"], 0.03)]

items = [{"id": f"set/x/{i:03d}", "target_type": "single"} for i in range(int(sys.argv[2]))]
with PredictionWriter(sys.argv[1]) as writer:
    generate(items, Slow(), writer)
"""


def test_a_killed_process_resumes(tmp_path) -> None:
    path, script, n = tmp_path / "preds.jsonl", tmp_path / "slow_run.py", 200
    script.write_text(SLOW_RUN, encoding="utf-8")
    process = subprocess.Popen([sys.executable, str(script), str(path), str(n)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not path.exists() or path.read_bytes().count(b"\n") < 5):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    before = done_ids(path)
    assert 5 <= len(before) < n

    backend = EchoBackend(batch_size=50)
    with PredictionWriter(path) as writer:
        generate(_items(n), backend, writer)
    assert sorted(backend.calls) == sorted(i["id"] for i in _items(n) if i["id"] not in before)
    assert len(_rows(path)) == n and len(done_ids(path)) == n


def test_a_truncated_last_line_is_dropped_and_a_corrupt_middle_line_is_an_error(tmp_path, caplog) -> None:
    path = tmp_path / "preds.jsonl"
    with PredictionWriter(path) as writer:
        generate(_items(3), EchoBackend(), writer)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"id": "set/x/003", "predic')  # killed mid-write
    assert done_ids(path) == {"set/x/000", "set/x/001", "set/x/002"}
    assert "truncated last line" in caplog.text
    with PredictionWriter(path) as writer:  # cuts the half line off, then appends after it
        assert writer.dropped_tail.startswith(b'{"id": "set/x/003"')
        generate(_items(5), EchoBackend(), writer)
    assert [r["id"] for r in _rows(path)] == [i["id"] for i in _items(5)]

    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1][:-5]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(PredictionFileError, match=r"preds.jsonl:2: corrupt line"):
        done_ids(path)
    with pytest.raises(PredictionFileError, match=r"preds.jsonl:2: corrupt line"):
        PredictionWriter(path)


def test_a_valid_last_line_without_newline_is_kept(tmp_path) -> None:
    path = tmp_path / "preds.jsonl"
    path.write_bytes(b'{"id": "set/x/000", "prediction": "a"}')
    with PredictionWriter(path) as writer:
        generate(_items(2), EchoBackend(), writer)
    assert [r["id"] for r in _rows(path)] == ["set/x/000", "set/x/001"]


def test_duplicate_ids_are_an_error(tmp_path) -> None:
    path = tmp_path / "preds.jsonl"
    path.write_text('{"id": "a", "prediction": "x"}\n{"id": "b", "prediction": "y"}\n{"id": "a", "prediction": "z"}\n')
    with pytest.raises(PredictionFileError, match=r":3: duplicate id 'a' \(first on line 1\)"):
        done_ids(path)
    with PredictionWriter(tmp_path / "other.jsonl") as writer:
        writer.write([{"id": "a", "prediction": "x"}])
        with pytest.raises(PredictionFileError, match="already predicted"):
            writer.write([{"id": "a", "prediction": "x"}])
    with pytest.raises(ValueError, match="duplicate record ids"):
        generate(_items(2) * 2, EchoBackend(), PredictionWriter(tmp_path / "third.jsonl"))


# ------------------------------------------------------------------------------------------- data parallel


def test_merge_shards_by_id_and_reject_conflicts(tmp_path, caplog) -> None:
    a, b, out = tmp_path / "p.rank0.jsonl", tmp_path / "p.rank1.jsonl", tmp_path / "p.jsonl"
    a.write_text('{"id": "c", "prediction": "3"}\n{"id": "a", "prediction": "1"}\n')
    b.write_text('{"id": "b", "prediction": "2"}\n{"id": "a", "prediction": "1"}\n')  # same answer: kept once
    assert merge_shards([a, b], out) == 3
    assert [(r["id"], r["prediction"]) for r in _rows(out)] == [("a", "1"), ("b", "2"), ("c", "3")]

    b.write_text('{"id": "b", "prediction": "2"}\n{"id": "a", "prediction": "other"}\n')
    with pytest.raises(PredictionFileError, match="'a': conflicting predictions"):
        merge_shards([a, b], out)
    b.write_text('{"id": "b", "prediction": "2"}\n{"id": "d", "pre')  # a crashed earlier run: "d" is not done
    assert merge_shards([a, b], out) == 3 and "truncated last line" in caplog.text
    assert "d" not in done_ids(out)


@dataclass
class FakeState:
    """What `generate_data_parallel` uses of accelerate's PartialState, for running ranks one after another."""

    process_index: int
    num_processes: int

    @property
    def is_main_process(self) -> bool:
        return self.process_index == 0

    def wait_for_everyone(self) -> None:
        pass


def test_data_parallel_ranks_share_the_ids_and_rank0_merges(tmp_path) -> None:
    out, items = tmp_path / "preds.jsonl", _items(11)
    backends = {rank: EchoBackend() for rank in (0, 1)}
    for rank in (1, 0):  # rank 0 last: it merges
        generate_data_parallel(items, backends[rank], out, state=FakeState(rank, 2))
    assert not set(backends[0].calls) & set(backends[1].calls)
    assert sorted(backends[0].calls + backends[1].calls) == [i["id"] for i in items]
    assert len(_rows(shard_path(out, 1))) == 5 and shard_path(out, 1).name == "preds.rank1.jsonl"
    assert [r["id"] for r in _rows(out)] == [i["id"] for i in items]

    rerun = EchoBackend()  # a rerun with one process finds everything done (shards of the 2-process run)
    report = generate_data_parallel(items, rerun, out, state=FakeState(0, 1))
    assert rerun.calls == [] and report.skipped == 11 and len(_rows(out)) == 11


# ------------------------------------------------------------------------------------ OpenAI-compatible API


def _key(messages: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


def _canned(messages: list[dict[str, Any]], max_tokens: int) -> str:
    images = sum(
        p.get("type") == "image_url" for m in messages if isinstance(m["content"], list) for p in m["content"]
    )
    return f"canned {_key(messages)} {images} {max_tokens}"


class FakeChatServer(LoopbackJSONServer):
    """A loopback `/v1/chat/completions`: checks the request shape (422 if wrong), answers `_canned(...)` with
    padding, and misbehaves per request key as `plan` says, one behaviour per attempt: "429", "500", "timeout"
    (answers after `stall` seconds), "drop" (closes the connection without an answer), "400", "409"."""

    def __init__(self, plan: dict[str, list[str]], stall: float) -> None:
        self.plan, self.stall = plan, stall
        self.attempts: Counter = Counter()
        self.payloads: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        super().__init__()

    def respond(self, handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        if handler.path != "/v1/chat/completions":
            return self.send(handler, 404, {"error": {"message": f"no route {handler.path}"}})
        problem = self.shape_problem(handler, payload)
        if problem:
            return self.send(handler, 422, {"error": {"message": problem}})
        key = _key(payload["messages"])
        with self.lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
            self.payloads[key] = payload
        plan = self.plan.get(key, [])
        behaviour = plan[attempt] if attempt < len(plan) else "ok"
        if behaviour == "timeout":
            time.sleep(self.stall)
        elif behaviour == "drop":
            handler.close_connection = True
            return None
        elif behaviour in ("429", "500", "400", "409"):
            headers = {"Retry-After": "0"} if behaviour == "429" else {}
            message = f"transient {behaviour}" if behaviour in ("429", "500") else "test refusal"
            return self.send(handler, int(behaviour), {"error": {"message": message}}, headers)
        content = "  " + _canned(payload["messages"], payload["max_tokens"]) + "\n"
        choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        self.send(handler, 200, {"choices": [choice], "usage": {"prompt_tokens": 7}})

    @staticmethod
    def shape_problem(handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> str | None:
        if handler.headers.get("Authorization") != "Bearer sk-test":
            return "missing bearer token"
        if payload.get("model") != "judge-model" or payload.get("temperature") != 0:
            return f"model/temperature: {payload.get('model')!r} {payload.get('temperature')!r}"
        if not isinstance(payload.get("max_tokens"), int) or payload["max_tokens"] <= 0:
            return "max_tokens"
        messages = payload.get("messages") or []
        if messages[0]["role"] != "system" or not isinstance(messages[0]["content"], str):
            return "system turn"
        if messages[-1]["role"] != "user" or any(m["role"] == "assistant" for m in messages):
            return "the prompt must end with the user turn, without the gold answer"
        for part in messages[-1]["content"]:
            if part["type"] == "text" and isinstance(part["text"], str):
                continue
            if part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/png;base64,"):
                continue
            if part["type"] == "video_url" and part["video_url"]["url"].startswith("data:video/mp4;base64,"):
                continue
            return f"bad content part {str(part)[:80]}"
        return None


def _probe(corpus) -> OpenAIChatGenerator:
    """A client that is never asked anything: it computes the messages a client sends (deterministic)."""
    return OpenAIChatGenerator("http://127.0.0.1:9/v1", "judge-model", corpus_root=corpus.root, budget=corpus.budget)


def _client(server: FakeChatServer, corpus, **kwargs: Any) -> OpenAIChatGenerator:
    options = {"concurrency": 3, "timeout": 1.0, "max_retries": 3, "decoder": "pyav", **kwargs}
    return OpenAIChatGenerator(
        server.base_url, "judge-model", "sk-test", corpus_root=corpus.root, budget=corpus.budget, **options
    )


@pytest.fixture
def api_records(test_records) -> list[dict[str, Any]]:
    records = []
    for modality in ("text", "image", "video"):
        records += [r for r in test_records if r["modality"] == modality][:3]
    return records


def test_openai_client_shapes_requests_and_retries_429_500_and_timeouts(tmp_path, corpus, api_records) -> None:
    probe = _probe(corpus)
    keys = {r["id"]: _key(probe.messages(r)) for r in api_records}
    assert len(set(keys.values())) == len(api_records)
    text, image, video = (next(r for r in api_records if r["modality"] == m) for m in ("text", "image", "video"))
    plan = {keys[image["id"]]: ["429"], keys[text["id"]]: ["500", "500"], keys[video["id"]]: ["timeout"]}
    server = FakeChatServer(plan, stall=3.0)
    try:
        path = tmp_path / "api.jsonl"
        with PredictionWriter(path) as writer:
            report = generate(api_records, _client(server, corpus), writer)
    finally:
        server.close()
    assert report.written == len(api_records)
    rows = {r["id"]: r for r in _rows(path)}
    for record in api_records:
        messages = probe.messages(record)
        limit = DECODINGS[record_task(record)].max_new_tokens
        assert rows[record["id"]]["prediction"] == _canned(messages, limit)  # stripped
        assert rows[record["id"]]["backend"] == "openai" and rows[record["id"]]["model"] == "judge-model"
        assert server.payloads[keys[record["id"]]]["max_tokens"] == limit
    assert rows[image["id"]]["attempts"] == 2 and rows[text["id"]]["attempts"] == 3
    assert rows[video["id"]]["attempts"] == 2  # the stalled attempt timed out, the retry answered
    assert server.attempts[keys[video["id"]]] == 2

    sent = server.payloads[keys[image["id"]]]["messages"]
    urls = [p["image_url"]["url"] for p in sent[-1]["content"] if p["type"] == "image_url"]
    assert len(urls) == 1 and sent[-1]["content"][-1]["type"] == "text"
    from PIL import Image

    decoded = Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1])))
    media = image["media"][0]
    budget = corpus.budget
    height, width = smart_resize(media["height"], media["width"], budget.image_min_pixels, budget.image_max_pixels)
    assert decoded.size == (width, height)
    frames = [p for p in server.payloads[keys[video["id"]]]["messages"][-1]["content"] if p["type"] == "image_url"]
    assert len(frames) == video["media"][0]["sampled_frames"]


def test_openai_client_sends_the_mp4_in_video_url_mode(corpus, api_records) -> None:
    video = next(r for r in api_records if r["modality"] == "video")
    client = OpenAIChatGenerator("http://127.0.0.1:9/v1", "m", corpus_root=corpus.root, video_mode="video_url")
    parts = client.messages(video)[-1]["content"]
    videos = [p for p in parts if p["type"] == "video_url"]
    assert len(videos) == 1 and not any(p["type"] == "image_url" for p in parts)
    data = base64.b64decode(videos[0]["video_url"]["url"].split(",", 1)[1])
    assert data == (corpus.root / video["videos"][0]).read_bytes()


def test_openai_client_does_not_retry_a_400_and_names_the_id(tmp_path, corpus, api_records) -> None:
    probe = _probe(corpus)
    bad = api_records[4]
    server = FakeChatServer({_key(probe.messages(bad)): ["400"]}, stall=0)
    path = tmp_path / "api.jsonl"
    try:
        with PredictionWriter(path) as writer, pytest.raises(APIError) as failure:
            generate(api_records, _client(server, corpus, concurrency=1), writer)
        assert bad["id"] in str(failure.value) and "HTTP 400" in str(failure.value)
        assert "test refusal" in str(failure.value)
        assert server.attempts[_key(probe.messages(bad))] == 1
        done = done_ids(path)  # answers before the failure, and those in flight with it, were kept
        assert {r["id"] for r in api_records[:4]} <= done and bad["id"] not in done
        assert len(done) < len(api_records) - 1  # no new request started after the failure

        server.plan = {}  # the server is fixed: a rerun asks only for the rest
        asked_before = sum(server.attempts.values())
        with PredictionWriter(path) as writer:
            report = generate(api_records, _client(server, corpus), writer)
        assert report.skipped == len(done)
        assert sum(server.attempts.values()) - asked_before == len(api_records) - len(done)
    finally:
        server.close()
    assert sorted(read_predictions(path).rows) == sorted(r["id"] for r in api_records)


def test_openai_client_sends_extra_body_fields_and_records_them(corpus, api_records) -> None:
    server = FakeChatServer({}, stall=0)
    record = api_records[0]
    try:
        client = _client(server, corpus, extra_body={"top_k": 1, "seed": 7})
        answer = client.request(record)
    finally:
        server.close()
    (payload,) = server.payloads.values()
    assert payload["top_k"] == 1 and payload["seed"] == 7 and answer.extra["attempts"] == 1
    assert client.decoding == {"temperature": 0, "video_mode": "frames", "beam_search": "none", "top_k": 1, "seed": 7}


def test_openai_client_retries_a_dropped_connection_but_not_a_409(corpus, api_records) -> None:
    """A connection closed without an answer is a network failure (retried); a 409 is a client error here,
    though the SDK alone would retry it (OpenAI's lock timeouts)."""
    probe = _probe(corpus)
    dropped, conflict = api_records[0], api_records[1]
    plan = {_key(probe.messages(dropped)): ["drop"], _key(probe.messages(conflict)): ["409", "409"]}
    server = FakeChatServer(plan, stall=0)
    try:
        client = _client(server, corpus, max_retries=2)
        assert client.request(dropped).extra["attempts"] == 2
        with pytest.raises(APIError, match=rf"{conflict['id']}: HTTP 409 from .*: test refusal") as failure:
            client.request(conflict)
    finally:
        server.close()
    assert server.attempts[_key(probe.messages(conflict))] == 1 and "gave up" not in str(failure.value)


def test_openai_client_gives_up_after_max_retries(corpus, api_records) -> None:
    probe = _probe(corpus)
    record = api_records[0]
    server = FakeChatServer({_key(probe.messages(record)): ["500"] * 5}, stall=0)
    try:
        with pytest.raises(APIError, match=rf"{record['id']}: gave up after 3 attempts.*HTTP 500: transient 500"):
            _client(server, corpus, max_retries=2).request(record)
    finally:
        server.close()


# ------------------------------------------------------------------------------------------------------ vLLM


def test_vllm_backend_explains_how_to_install_it(corpus) -> None:
    pytest.importorskip("transformers")
    try:
        import vllm  # noqa: F401
    except ImportError:
        from mmaff.eval.generate import VLLMGenerator

        with pytest.raises(ImportError, match="pip install vllm"):
            VLLMGenerator("no-model", corpus.root, corpus.budget)
    else:
        pytest.skip("vllm is installed; the GPU backend is not exercised on CPU")
