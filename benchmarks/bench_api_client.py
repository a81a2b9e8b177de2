"""OpenAI-compatible backend: the client on the `openai` SDK vs the old urllib client, requests/s at concurrency 1/16/64.

A loopback OpenAI-compatible server (asyncio, HTTP/1.1 keep-alive, in its own process so that it does not share the
clients' GIL) answers every ``POST /v1/chat/completions`` after a fixed simulated latency (``--latency``, 50 ms)
with a small body echoing the prompt. The NEW client (`mmaff.eval.openai_backend.OpenAIChatGenerator`) and the OLD
one (`benchmarks/baselines/urllib_chat_client.py`, the frozen pre-SDK client) each run the same ``--records`` text
records through ``predict`` at each concurrency, as `mmaff.eval.generate` drives a backend (client construction
included; the SDK's one-time import is warmed up first). Every answer is checked against the record it belongs to.

First the server alone: the requests/s it gives a bare asyncio keep-alive client at the highest concurrency (near
the ceiling: the server is not the bottleneck). Then per cell: requests/s (median of the runs: at least one, and
more until ``--min-seconds`` of runs or 3 runs), the ratio new/old, the ceiling ``concurrency / latency`` a client
could reach, the server process's CPU use during the runs, and the client process's CPU time per request.

    .venv/bin/python benchmarks/bench_api_client.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/baselines

from baselines.urllib_chat_client import OpenAIChatGenerator as UrllibChatClient  # noqa: E402

from mmaff.eval.openai_backend import OpenAIChatGenerator  # noqa: E402

# ------------------------------------------------------------------------------------------------- the server


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float) -> None:
    """HTTP/1.1 with keep-alive: chat completions answered after `latency` seconds, ``GET /stats`` at once."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", 0)))
            if method == "GET" and path == "/stats":
                answer = {"cpu_seconds": time.process_time()}
            else:
                await asyncio.sleep(latency)
                prompt = json.loads(body)["messages"][-1]["content"][-1]["text"]
                message = {"role": "assistant", "content": f"echo {prompt}"}
                answer = {
                    "id": "bench",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "bench",
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
                }
            data = json.dumps(answer).encode()
            close = headers.get("connection", "").lower() == "close"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n"
                % (len(data), b"close" if close else b"keep-alive")
                + data
            )
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(latency: float) -> None:
    server = await asyncio.start_server(lambda r, w: _handle(r, w, latency), "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--latency", str(latency)], stdout=subprocess.PIPE, text=True
    )
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}"


async def _bare_load(port: int, connections: int, per_connection: int) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "u"}]}]}).encode()
    request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Length: %d\r\n\r\n" % len(body) + body

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(per_connection):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))


def server_alone(root: str, connections: int, requests: int) -> float:
    """Requests/s the server gives a bare asyncio keep-alive client (no HTTP library, no JSON parsing): what it
    can serve at this concurrency, to compare with the clients' rates."""
    start = time.perf_counter()
    asyncio.run(_bare_load(int(root.rsplit(":", 1)[1]), connections, max(1, requests // connections)))
    return connections * max(1, requests // connections) / (time.perf_counter() - start)


def server_cpu(root: str) -> float:
    with urllib.request.urlopen(f"{root}/stats", timeout=10) as response:
        return json.loads(response.read())["cpu_seconds"]


# ------------------------------------------------------------------------------------------------ the clients


def text_records(n: int) -> list[dict[str, Any]]:
    def turn(role: str, text: str) -> dict[str, Any]:
        return {"role": role, "content": [{"type": "text", "text": text}]}

    return [
        {
            "id": f"bench/test/{i}",
            "dataset": "meld",  # a real task (eval/tasks/meld/SP.yaml): its max_new_tokens
            "subtask": "SP",
            "modality": "text",
            "target_type": "single",
            "images": [],
            "videos": [],
            "media": [],
            "messages": [turn("system", "Classify the sentiment."), turn("user", f"utterance {i}")],
        }
        for i in range(n)
    ]


def run_once(client: Any, records: list[dict[str, Any]], root: str) -> dict[str, float]:
    cpu_server, cpu_client = server_cpu(root), time.process_time()
    start = time.perf_counter()
    answers = {p.id: p.text for batch in client.predict(records) for p in batch}
    seconds = time.perf_counter() - start
    cpu_client, cpu_server = time.process_time() - cpu_client, server_cpu(root) - cpu_server
    expected = {r["id"]: f"echo {r['messages'][-1]['content'][0]['text']}" for r in records}
    if answers != expected:
        raise SystemExit(f"{type(client).__module__}: {len(answers)} answers, not the {len(records)} expected")
    return {
        "rate": len(records) / seconds,
        "server_cpu": cpu_server / seconds,
        "client_cpu": cpu_client / len(records),
    }


def measure(client: Any, records: list[dict[str, Any]], root: str, min_seconds: float) -> dict[str, float]:
    runs, spent = [], 0.0
    while not runs or (spent < min_seconds and len(runs) < 3):
        runs.append(run_once(client, records, root))
        spent += len(records) / runs[-1]["rate"]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]} | {"runs": len(runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=800, help="text records per run")
    parser.add_argument("--latency", type=float, default=0.05, help="the server's simulated seconds per answer")
    parser.add_argument("--concurrency", default="1,16,64", help="comma list")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="repeat a cell until this much (<= 3 runs)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the server process
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.latency))
        return
    logging.basicConfig(level=logging.ERROR)
    process, root = start_server(args.latency)
    records = text_records(args.records)
    try:
        OpenAIChatGenerator(f"{root}/v1", "bench", max_retries=0).request(records[0])  # warm up: SDK imports
        print(f"{args.records} text records per run, server latency {args.latency * 1000:.0f} ms")
        most = max(int(c) for c in args.concurrency.split(","))
        rate = server_alone(root, most, args.records)
        print(f"the server alone (a bare asyncio client, {most} keep-alive connections): {rate:.1f} req/s, "
              f"ceiling {most / args.latency:.0f}")  # fmt: skip
        print("| concurrency | old urllib req/s | new SDK req/s | new/old | ceiling req/s | server CPU old/new |"
              " client CPU ms/req old/new |")  # fmt: skip
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            options = {"concurrency": concurrency, "max_retries": 0, "timeout": 30.0}
            old = measure(UrllibChatClient(f"{root}/v1", "bench", **options), records, root, args.min_seconds)
            new = measure(OpenAIChatGenerator(f"{root}/v1", "bench", **options), records, root, args.min_seconds)
            print(
                f"| {concurrency} | {old['rate']:.1f} | {new['rate']:.1f} | {new['rate'] / old['rate']:.2f} | "
                f"{concurrency / args.latency:.0f} | {old['server_cpu']:.0%} / {new['server_cpu']:.0%} | "
                f"{old['client_cpu'] * 1000:.2f} / {new['client_cpu'] * 1000:.2f} |",
                flush=True,
            )
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
