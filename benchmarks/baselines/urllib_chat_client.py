"""FROZEN BASELINE: the transport of the pre-SDK OpenAI-compatible client (urllib on threads, hand-written retries),
kept ONLY for `benchmarks/bench_api_client.py`'s comparison with today's client on the `openai` SDK
(`mmaff.eval.openai_backend`). Not used by mmaff; do not fix or extend it.

The request body (messages, media, decoding) is today's, inherited from `mmaff.eval.openai_backend`, so the two
clients differ only in how a request travels. The methods below are copied verbatim from `mmaff/eval/generate.py`
at commit fd0648a (the last one before the SDK client), apart from `payload`, which flattens today's SDK
arguments into the JSON body as the old client built it.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from mmaff.eval.backend_common import Prediction, decoding_of
from mmaff.eval.openai_backend import LOOPBACK, MAX_SERVER_MESSAGE, RETRY_STATUS, APIError
from mmaff.eval.openai_backend import OpenAIChatGenerator as SDKChatGenerator
from mmaff.redact import redact_url

log = logging.getLogger(__name__)


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class OpenAIChatGenerator(SDKChatGenerator):
    """Today's request body over the old urllib transport."""

    def __init__(self, *args: Any, backoff: float = 1.0, max_backoff: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backoff, self.max_backoff = backoff, max_backoff
        host = urllib.parse.urlsplit(self.url).hostname
        handlers = [urllib.request.ProxyHandler({})] if host in LOOPBACK else []  # a local server: no proxy
        self._opener = urllib.request.build_opener(*handlers, _RefuseRedirects)

    def payload(self, record: dict[str, Any]) -> dict[str, Any]:
        arguments = self.arguments(record)
        return {**{k: v for k, v in arguments.items() if k != "extra_body"}, **arguments["extra_body"]}

    # -- one request, with retries -------------------------------------------------------------------------------
    def _post(self, body: bytes) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self._authorization:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with self._opener.open(request, timeout=self.timeout) as response:
            if response.geturl() != self.url:  # cannot happen without redirects; never keep another host's answer
                raise APIError(f"the answer came from {redact_url(response.geturl())}, not {self.url}")
            return json.loads(response.read())

    def _wait(self, attempt: int, retry_after: str | None) -> float:
        try:
            wait_s = float(retry_after) if retry_after is not None else self.backoff * 2**attempt
        except ValueError:
            wait_s = self.backoff * 2**attempt
        return min(max(wait_s, 0.0), self.max_backoff)

    def request(self, record: dict[str, Any]) -> Prediction:
        """One completion for one record; retries as described in the class docstring."""
        start = time.perf_counter()
        payload = self.payload(record)
        body = json.dumps(payload).encode("utf-8")
        last = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                answer = self._post(body)
            except urllib.error.HTTPError as err:
                if 300 <= err.code < 400:
                    location = self.redact(redact_url(err.headers.get("Location") or "?"))
                    raise APIError(
                        f"{record['id']}: HTTP {err.code} from {self.url}: a redirect to {location}, not followed "
                        "(requests and the API key go to --base-url only; pass the final address as --base-url)"
                    ) from None
                message = self.redact(_server_message(err))
                if err.code not in RETRY_STATUS and err.code < 500:
                    raise APIError(f"{record['id']}: HTTP {err.code} from {self.url}: {message}") from None
                last, retry_after = f"HTTP {err.code}: {message}", err.headers.get("Retry-After")
            except ValueError as err:  # a 200 whose body is not JSON
                reason = self.redact(err)[:MAX_SERVER_MESSAGE]
                raise APIError(f"{record['id']}: the response of {self.url} is not JSON: {reason}") from None
            except (TimeoutError, ConnectionError, urllib.error.URLError, OSError) as err:
                last = f"{type(err).__name__}: {self.redact(getattr(err, 'reason', err))}"
            else:
                return self._prediction(record, answer, payload, attempt + 1, time.perf_counter() - start)
            if attempt < self.max_retries:
                wait_s = self._wait(attempt, retry_after)
                log.warning("%s: %s; retry %d in %.2fs", record["id"], last, attempt + 1, wait_s)
                time.sleep(wait_s)
        raise APIError(f"{record['id']}: gave up after {self.max_retries + 1} attempts to {self.url}; last: {last}")

    def _prediction(
        self, record: dict[str, Any], answer: dict[str, Any], payload: dict[str, Any], attempts: int, seconds: float
    ) -> Prediction:
        returned = self.applied(decoding_of(self.decodings, record)).num_return_sequences
        try:
            choices = sorted(answer["choices"], key=lambda c: c.get("index", 0))
            choice = choices[0]
            texts = [(c["message"]["content"] or "").strip() for c in choices[:returned]]
        except (KeyError, IndexError, TypeError, AttributeError) as err:
            shown = self.redact(answer)[:MAX_SERVER_MESSAGE]
            raise APIError(f"{record['id']}: unexpected response from {self.url}: {shown}") from err
        if len(texts) < returned:
            raise APIError(
                f"{record['id']}: asked {self.url} for {returned} ranked replies (use_beam_search), got {len(texts)}"
            )
        usage = answer.get("usage") or {}
        extra = {
            "finish": choice.get("finish_reason"),
            "max_new_tokens": payload["max_tokens"],
            "prompt_tokens": usage.get("prompt_tokens"),
            "attempts": attempts,
        }
        return Prediction(record["id"], texts if returned > 1 else texts[0], seconds, extra)

    def predict(self, records: Sequence[dict[str, Any]]) -> Iterator[list[Prediction]]:
        """Requests on `concurrency` threads (at most twice that many queued); each answer is yielded when it
        arrives. After a failure no new request starts; those in flight finish, then the first error is raised."""
        pending: set[Future] = set()
        todo = iter(records)
        error: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:

            def refill() -> None:
                while error is None and len(pending) < 2 * self.concurrency:
                    record = next(todo, None)
                    if record is None:
                        return
                    pending.add(pool.submit(self.request, record))

            refill()
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    pending.discard(future)
                    try:
                        prediction = future.result()
                    except Exception as err:  # noqa: BLE001 - re-raised below, after the in-flight requests
                        error = error or err
                        continue
                    yield [prediction]
                refill()
        if error is not None:
            raise error


def _server_message(err: urllib.error.HTTPError) -> str:
    """The server's error message (OpenAI's ``{"error": {"message": ...}}`` or the raw body), cut to
    `MAX_SERVER_MESSAGE` characters; the caller redacts it."""
    try:
        body = err.read().decode("utf-8", "replace")
    except OSError:
        return str(err.reason or "")[:MAX_SERVER_MESSAGE]
    try:
        detail = json.loads(body)
        if isinstance(detail, dict) and isinstance(detail.get("error"), dict):
            message = str(detail["error"].get("message", body))
        else:
            message = str(detail.get("message", body)) if isinstance(detail, dict) else body
    except ValueError:
        message = body
    return message[:MAX_SERVER_MESSAGE] + (" [...]" if len(message) > MAX_SERVER_MESSAGE else "")
