"""Shared test helpers: build datasets into a temp folder and read the results back."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import yaml

from mmaff.data.build import SAMPLE_RAW, build
from mmaff.data.registry import load_registry
from mmaff.data.schema import validate_record

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def write_mixture(path: Path, datasets: dict[str, dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"name": "test", "datasets": datasets}, sort_keys=False), encoding="utf-8")
    return path


class Built:
    """A built corpus read back: records by id, rejects, manifest."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.manifest = orjson.loads((out / "manifest.json").read_bytes())
        self.records: dict[str, dict[str, Any]] = {}
        for path in sorted(out.glob("*/*.jsonl")):
            for line in path.read_bytes().splitlines():
                record = orjson.loads(line)
                assert record["id"] not in self.records, f"duplicate id {record['id']}"
                assert path.parent.name == record["split"], f"{record['id']} in {path}"
                validate_record(record)
                self.records[record["id"]] = record
        self.rejects = [orjson.loads(line) for line in (out / "rejects.jsonl").read_bytes().splitlines()]

    def rejects_at(self, file_suffix: str) -> dict[int, str]:
        return {r["line"]: r["reason"] for r in self.rejects if r["file"].endswith(file_suffix)}

    def by_split(self, split: str) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if r["split"] == split]

    def files(self, dataset: str) -> dict[str, dict[str, Any]]:
        return self.manifest["datasets"][dataset]["files"]


def build_datasets(
    tmp_path: Path, datasets: dict[str, dict[str, Any]], raw_root: Path = SAMPLE_RAW, **kwargs: Any
) -> Built:
    mixture = write_mixture(tmp_path / "mixture.yaml", datasets)
    build(raw_root, tmp_path / "corpus", mixture, workers=1, use_cache=False, log=lambda *_: None, **kwargs)
    return Built(tmp_path / "corpus")


def assert_accounting(built: Built, dataset: str) -> None:
    """Rows in = records out + rejects (+ capped, held out), per file, and the corpus agrees with the manifest."""
    files = built.files(dataset)
    for rel, stats in files.items():
        accounted = stats["written"] + sum(stats["rejected"].values()) + stats["capped"] + stats["held_out"]
        accounted += stats["excluded_subtask"]
        assert accounted == stats["rows"], (rel, stats)
        primary = [r for r in built.records.values() if r["source"]["file"] == rel and not r["source"].get("derived")]
        assert len(primary) == stats["written"], (rel, len(primary), stats)
        lines = [r for r in built.rejects if r["file"] == rel and r["dataset"] == dataset]  # one per row
        assert sum(r["row_rejected"] for r in lines) == sum(stats["rejected"].values()), rel
        derived = sum(len(r["subtasks"]) - (r["row_rejected"] and bool(r["subtasks"])) for r in lines)
        assert derived == stats["derived_rejected"], rel


def registry_spec(dataset: str):
    return load_registry()[dataset]


def csv_rows(path: Path, header: list[str]) -> list[tuple[int, list[str]]]:
    """(start line, fields) of every CSV data row, read independently of the builders (stdlib csv)."""
    import csv

    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        assert next(reader) == header
        rows, start = [], 2
        for row in reader:
            rows.append((start, row))
            start = reader.line_num + 1
    return rows


class LoopbackJSONServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) that hands every POSTed JSON body to `respond`;
    subclasses answer with `send`. `base_url` ends in /v1, as OpenAI-compatible clients expect."""

    def __init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    server.respond(self, payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def respond(self, handler: BaseHTTPRequestHandler, payload: dict[str, Any]) -> None:
        raise NotImplementedError

    @staticmethod
    def send(handler: BaseHTTPRequestHandler, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
