"""A loopback fake of the Hugging Face Hub endpoints `huggingface_hub.HfApi` uses to create a repository and upload a
folder (whoami-v2, repos/create, validate-yaml,
preupload, commit, repo info), for tests of the push commands without the network.

    with FakeHub(tokens={"hf_good"}) as hub:
        HfApi(endpoint=hub.url, token="hf_good").upload_folder(...)   # or HF_ENDPOINT=hub.url in a subprocess
        hub.commits[0]["files"]   # {path: bytes} of the commit; hub.repos: {"dataset/org/name": {"private": ...}}

Every file is answered `uploadMode: regular`, so its bytes travel inside the commit (no LFS / Xet transfer)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

_REPO = r"/api/(?P<type>models|datasets|spaces)/(?P<repo>[^/]+/[^/]+)"


class FakeHub:
    """Start/stop as a context manager; `url` is the endpoint; `commits`, `repos` and `requests` record what came."""

    def __init__(self, tokens: set[str] | frozenset[str] = frozenset({"hf_fake_write_token"}), user: str = "tester"):
        self.tokens, self.user = set(tokens), user
        self.commits: list[dict[str, Any]] = []
        self.repos: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _authorised(self) -> bool:
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
                if token in hub.tokens:
                    return True
                self._reply(401, {"error": "Invalid credentials in Authorization header"})
                return False

            def do_GET(self) -> None:  # noqa: N802
                self._route("GET", b"")

            def do_POST(self) -> None:  # noqa: N802
                self._route("POST", self._body())

            def _route(self, method: str, body: bytes) -> None:
                path = self.path.split("?")[0]
                with hub._lock:
                    hub.requests.append((method, path))
                if not self._authorised():
                    return
                if path == "/api/whoami-v2":
                    role = {"role": "write"}
                    return self._reply(200, {"type": "user", "name": hub.user, "auth": {"accessToken": role}})
                if path == "/api/validate-yaml":
                    return self._validate(json.loads(body)["content"])
                if path == "/api/repos/create":
                    return self._create(json.loads(body))
                match = re.fullmatch(_REPO + r"/(?P<op>preupload|commit)/(?P<rev>[^/]+)", path)
                if match and match["op"] == "preupload":
                    files = json.loads(body)["files"]
                    modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                    return self._reply(200, {"files": modes, "commitOid": None})
                if match and match["op"] == "commit":
                    return self._commit(match["type"][:-1], match["repo"], body)
                match = re.fullmatch(_REPO + r"(/revision/(?P<rev>[^/]+))?", path)
                if match and f"{match['type'][:-1]}/{match['repo']}" in hub.repos:
                    return self._reply(200, {"id": match["repo"], "sha": hub._head(match["repo"]), "siblings": []})
                self._reply(404, {"error": f"fake Hub: {method} {path} is not implemented"})

            def _validate(self, content: str) -> None:
                """The README's metadata must be a YAML mapping (the real Hub checks much more)."""
                front = content.split("---\n")
                try:
                    ok = len(front) >= 3 and isinstance(yaml.safe_load(front[1]), dict)
                except yaml.YAMLError:
                    ok = False
                if not ok:
                    return self._reply(400, {"errors": [{"message": "README.md: no YAML metadata mapping"}]})
                self._reply(200, {"errors": [], "warnings": []})

            def _create(self, request: dict[str, Any]) -> None:
                kind = request.get("type", "model")
                repo = f"{request.get('organization') or hub.user}/{request['name']}"
                key = f"{kind}/{repo}"
                if key in hub.repos:
                    return self._reply(409, {"error": "You already created this repo", "url": f"{hub.url}/{repo}"})
                private = request.get("visibility", "private" if request.get("private") else "public") != "public"
                hub.repos[key] = {"private": private, "type": kind}
                prefix = "" if kind == "model" else f"{kind}s/"
                self._reply(200, {"url": f"{hub.url}/{prefix}{repo}", "name": repo})

            def _commit(self, kind: str, repo: str, body: bytes) -> None:
                header, files = {}, {}
                for line in body.decode().splitlines():
                    item = json.loads(line)
                    if item["key"] == "header":
                        header = item["value"]
                    elif item["key"] == "file":
                        files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
                    else:
                        return self._reply(400, {"error": f"fake Hub: commit operation {item['key']} not implemented"})
                sha = hashlib.sha1(body).hexdigest()
                with hub._lock:
                    hub.commits.append({"repo": f"{kind}/{repo}", "oid": sha, "header": header, "files": files})
                prefix = "" if kind == "model" else f"{kind}s/"
                self._reply(
                    200, {"success": True, "commitOid": sha, "commitUrl": f"{hub.url}/{prefix}{repo}/commit/{sha}"}
                )

        return Handler

    def _head(self, repo: str) -> str:
        shas = [c["oid"] for c in self.commits if c["repo"].endswith(f"/{repo}")]
        return shas[-1] if shas else "0" * 40
