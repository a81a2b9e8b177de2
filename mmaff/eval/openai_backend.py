"""Generation on an OpenAI-compatible ``/v1/chat/completions`` server (OpenAI, ``vllm serve``, SGLang, ...), through
the official `openai` SDK: `openai.AsyncOpenAI` over an `httpx2.AsyncClient` that this module configures (no
redirects, no proxy for loopback hosts, one connection per request in flight), requests in flight on an asyncio
event loop in a worker thread, answers handed to the caller as they arrive.

`openai` and `httpx2` are imported when a client first talks to a server: building requests, `--help` and the rest
of the API path stay light (and import no torch: tests/test_lazy_imports.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import io
import logging
import mimetypes
import queue
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmaff.data.media import MediaBudget, smart_resize
from mmaff.encode.media_loader import MediaLoader
from mmaff.eval.backend_common import (
    Prediction,
    decoding_of,
    one_reply,
    prompt_messages,
    recorded_decoding,
    task_decodings,
    video_media,
)
from mmaff.eval.tasks import Decoding
from mmaff.redact import redact_text, redact_url

if TYPE_CHECKING:
    import httpx2
    import openai
    from PIL import Image

log = logging.getLogger(__name__)


class APIError(RuntimeError):
    """A request that failed for good (a 4xx other than 408/429, a redirect, or retries exhausted); names the
    record id, the server and its message, secrets redacted."""


RETRY_STATUS = frozenset({408, 429})  # plus every 5xx (the SDK's policy, less its 409: see `_OneServerClient`)
MAX_SERVER_MESSAGE = 300  # characters of a server's error body kept in errors and logs
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
VIDEO_MODES = ("frames", "video_url")
SERVER_BEAM_SEARCH = ("none", "vllm")  # how a server is asked for beams (OpenAIChatGenerator)
# the loggers of the SDK and its HTTP layer: httpcore2 logs response headers at DEBUG (an echoed key, a Location)
SDK_LOGGERS = ("openai", "httpx2", "httpcore2")

_record_id: contextvars.ContextVar[str] = contextvars.ContextVar("record_id", default="?")  # per request task
_DONE = object()  # end of the answers in `OpenAIChatGenerator.predict`'s queue


# ----------------------------------------------------------------------------------------------- request body


def _png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _budgeted(image: Image.Image, min_pixels: int, max_pixels: int) -> Image.Image:
    """The image resized as the Qwen2.5-VL processor would (sides multiples of 28, area within the budget)."""
    from PIL import Image

    height, width = smart_resize(image.height, image.width, min_pixels, max_pixels)
    return image if image.size == (width, height) else image.resize((width, height), Image.Resampling.BICUBIC)


def _split_userinfo(base_url: str) -> tuple[str, str | None, str | None]:
    """`base_url` without its ``user:password@``, and the (unquoted) user and password if it had them."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.username is None and parts.password is None:
        return base_url, None, None
    netloc = parts.netloc.rpartition("@")[2]
    user, password = (urllib.parse.unquote(v) if v is not None else None for v in (parts.username, parts.password))
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), user, password


# ---------------------------------------------------------------------------------------------------- logging


class _RedactSecrets(logging.Filter):
    """Rewrites every record of the loggers it sits on with the known secrets and URL userinfo redacted. One
    instance for the process (a logger's filters apply to its own records only, so it sits on each SDK logger)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message, self.secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_LOG_FILTER = _RedactSecrets()


def _guard_sdk_logs(secrets: Iterable[str | None]) -> None:
    """Puts `_LOG_FILTER`, knowing `secrets`, on every logger of the SDK and its HTTP layer created so far."""
    _LOG_FILTER.secrets.update(s for s in secrets if s)
    for name in list(logging.Logger.manager.loggerDict):
        if name.partition(".")[0] in SDK_LOGGERS:
            logging.getLogger(name).addFilter(_LOG_FILTER)  # a no-op where it already is


# ------------------------------------------------------------------------------------------------ the clients


def _http_client(url: str, concurrency: int, timeout: float, on_attempt: Any) -> httpx2.AsyncClient:
    """The SDK's HTTP client: redirects never followed (the request and its key go to `url`'s host only), no
    proxy from the environment for a loopback host, a keep-alive connection per request in flight, and
    `on_attempt(request, response | None, error | None)` called after every attempt (retries included)."""
    import httpx2

    class Client(httpx2.AsyncClient):
        async def send(self, request: httpx2.Request, **kwargs: Any) -> httpx2.Response:
            try:
                response = await super().send(request, **kwargs)
            except httpx2.TransportError as err:
                on_attempt(request, None, err)
                raise
            on_attempt(request, response, None)
            return response

    return Client(
        follow_redirects=False,
        trust_env=urllib.parse.urlsplit(url).hostname not in LOOPBACK,
        timeout=timeout,
        limits=httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


def _sdk_client(base_url: str, **options: Any) -> openai.AsyncOpenAI:
    """`openai.AsyncOpenAI` that retries 408 / 429 / 5xx and network failures but not the SDK's other 4xx (409).
    Its API key is a placeholder: each request names its own ``Authorization`` (`OpenAIChatGenerator._headers`),
    which replaces the SDK's (``Bearer <OPENAI_API_KEY>`` or one from ``OPENAI_CUSTOM_HEADERS``, for any server)."""
    import openai

    class OneServerClient(openai.AsyncOpenAI):
        def _should_retry(self, response: httpx2.Response) -> bool:
            return response.status_code != 409 and super()._should_retry(response)

    return OneServerClient(base_url=base_url, api_key="not-sent", **options)


def _server_message(body: object) -> str:
    """The server's error message (OpenAI's ``{"error": {"message": ...}}``, a ``message``, or the raw body), cut
    to `MAX_SERVER_MESSAGE` characters; the caller redacts it."""
    message = body
    if isinstance(body, dict):
        detail = body.get("error") if isinstance(body.get("error"), dict) else body
        message = detail.get("message", body)
    text = "" if message is None else str(message)
    return text[:MAX_SERVER_MESSAGE] + (" [...]" if len(text) > MAX_SERVER_MESSAGE else "")


def _attempts(request: httpx2.Request) -> int:
    """Attempts made so far for this request (the SDK numbers its retries in a header)."""
    return int(request.headers.get("x-stainless-retry-count", 0)) + 1


class OpenAIChatGenerator:
    """Client of an OpenAI-compatible ``/v1/chat/completions`` endpoint, on the `openai` SDK.

    `base_url` includes the version prefix, as in the SDK (``https://api.openai.com/v1``,
    ``http://localhost:8000/v1``). Requests: the prompt messages with ``temperature: 0`` and the ``max_tokens`` of
    the record's task; images as PNG data URLs in ``image_url`` parts, resized to the corpus's image budget first;
    `extra_body` is added to every request (and recorded with the run's decoding).

    Beams (`beam_search`): chat completions have no beam search, so by default (``"none"``) a task asking for
    beams gets one greedy reply (a string, so its Acc@3/5 are not computed), and the run file records that task
    with ``num_beams: 1`` and a note. ``"vllm"`` sends vLLM's extra parameters ``use_beam_search: true`` and
    ``n: num_beams`` (vLLM's beam width is ``n``; its choices come best first) and keeps the first
    ``num_return_sequences`` choices, ranked; other servers reject or ignore those parameters.

    Videos (`video_mode`):

    * ``"frames"`` (default): the corpus's sampled frames (as in training), each resized to the per-frame video
      budget, sent as consecutive ``image_url`` parts. Accepted by every server taking several images per
      message: OpenAI (GPT-4o / 4o-mini), vLLM (raise ``--limit-mm-per-prompt`` image count), SGLang. The model
      sees separate images, not a video (no temporal positions for Qwen2.5-VL).
    * ``"video_url"``: the mp4 itself as a ``data:video/mp4;base64,...`` URL in a ``video_url`` part, a vLLM
      extension (SGLang accepts it too for video models); OpenAI rejects it. The server samples the frames with its
      own settings (fps, frame cap, pixels), which may differ from the corpus budget.

    Concurrency: at most `concurrency` requests in flight (each building its body in a thread, then awaiting the
    server), on an event loop in a worker thread; `predict` yields each answer as it arrives, so a killed run
    loses only the requests in flight. After a failure no new request starts; those in flight finish and are
    yielded, then the first error is raised (a rerun resumes).

    Failures (the SDK's retry loop, `max_retries` retries): 408 / 429 / 5xx, timeouts and connection errors are
    retried with the SDK's backoff (0.5 s doubling up to 8 s, with jitter) or after the server's ``Retry-After`` /
    ``retry-after-ms`` (a ``Retry-After`` over 120 s is not waited for: the request fails at once); any other 4xx
    (409 included, which the SDK alone would retry) fails at once. Each failed attempt is logged with the record
    id. A failure raises `APIError` naming the id and the server's message. `timeout` is per attempt (connect,
    each read and write).

    Security: redirects are never followed (a 3xx is an error naming the status and the redacted Location), so the
    API key goes to `base_url`'s scheme, host and port only and only its answers are kept. A ``user:password@``
    in `base_url` is sent as HTTP Basic auth when no API key is given (dropped, with a warning, when one is) and is
    never recorded; with neither, no ``Authorization`` header is sent (the SDK's ``OPENAI_API_KEY`` fallback is
    not used). Error bodies are cut to `MAX_SERVER_MESSAGE` characters, and the key, the password and any URL
    userinfo are redacted from every message, from this module's log lines and from those of the SDK, httpx2 and
    httpcore2 (at any level), and from the run file. A loopback `base_url` never goes through a proxy from the
    environment."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        corpus_root: str | Path = ".",
        budget: MediaBudget | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 6,
        video_mode: str = "frames",
        decoder: str = "auto",
        decodings: Mapping[str, Decoding] | None = None,
        beam_search: str = "none",
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if video_mode not in VIDEO_MODES:
            raise ValueError(f"video_mode must be one of {VIDEO_MODES}")
        if beam_search not in SERVER_BEAM_SEARCH:
            raise ValueError(f"beam_search must be one of {SERVER_BEAM_SEARCH}")
        for flag, value, ok in (
            ("--concurrency", concurrency, concurrency >= 1),
            ("--max-retries", max_retries, max_retries >= 0),
            ("--timeout", timeout, timeout > 0),
        ):
            if not ok:
                raise ValueError(f"{flag} {value}: out of range (concurrency >= 1, retries >= 0, timeout > 0)")
        base_url, user, password = _split_userinfo(base_url)
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--base-url {redact_url(base_url)}: not an http(s)://host[:port]/v1 URL")
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model_name = model
        self.api_key = api_key
        self.secrets = [api_key, password]
        self._authorization = f"Bearer {api_key}" if api_key else None
        if user is not None and api_key:
            log.warning("%s: the user:password in the base URL is not used (an API key is given)", self.url)
        elif user is not None:
            basic = base64.b64encode(f"{user}:{password or ''}".encode()).decode("ascii")
            self._authorization = f"Basic {basic}"
        self.budget = budget or MediaBudget()
        self.media = MediaLoader(corpus_root, self.budget, decoder)
        self.concurrency, self.timeout, self.max_retries = concurrency, timeout, max_retries
        self.video_mode = video_mode
        self.decodings = dict(task_decodings() if decodings is None else decodings)
        self.beam_search = beam_search
        self.extra_body = extra_body or {}
        self.decoding = {"temperature": 0, "video_mode": video_mode, "beam_search": beam_search, **self.extra_body}

    def redact(self, text: object) -> str:
        """Text shown to the user or logged, without the API key, the password or URL userinfo."""
        return redact_text(str(text), self.secrets)

    # -- request body --------------------------------------------------------------------------------------------
    def _image_part(self, path: str) -> dict[str, Any]:
        image = _budgeted(self.media.image(path), self.budget.image_min_pixels, self.budget.image_max_pixels)
        return {"type": "image_url", "image_url": {"url": _png_data_url(image)}}

    def _video_parts(self, path: str, info: dict[str, Any]) -> list[dict[str, Any]]:
        if self.video_mode == "video_url":
            mime = mimetypes.guess_type(path)[0] or "video/mp4"
            data = base64.b64encode((self.media.root / path).read_bytes()).decode("ascii")
            return [{"type": "video_url", "video_url": {"url": f"data:{mime};base64,{data}"}}]
        from PIL import Image

        frames, _ = self.media.frames(path, info)
        budget = (self.budget.video_min_pixels, self.budget.video_max_pixels)
        return [
            {"type": "image_url", "image_url": {"url": _png_data_url(_budgeted(Image.fromarray(f), *budget))}}
            for f in frames
        ]

    def messages(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The prompt in the API's format: system/assistant turns as strings, user turns as content parts."""
        images, videos = iter(record["images"]), iter(zip(record["videos"], video_media(record)))
        converted = []
        for message in prompt_messages(record):
            if message["role"] != "user":
                text = "".join(part.get("text", "") for part in message["content"])
                converted.append({"role": message["role"], "content": text})
                continue
            parts: list[dict[str, Any]] = []
            for part in message["content"]:
                if part["type"] == "text":
                    parts.append({"type": "text", "text": part["text"]})
                elif part["type"] == "image":
                    parts.append(self._image_part(next(images)))
                elif part["type"] == "video":
                    parts.extend(self._video_parts(*next(videos)))
                else:
                    raise ValueError(f"{record['id']}: unknown content part {part['type']!r}")
            converted.append({"role": "user", "content": parts})
        return converted

    def applied(self, decoding: Decoding) -> Decoding:
        """The decoding this client can ask the server for: without server beam search, one greedy reply."""
        return decoding if self.beam_search == "vllm" else one_reply(decoding)

    def decoding_for(self, task: str) -> dict[str, Any]:
        """What the run file records for `task`: the decoding applied, and a note where it is not the task's."""
        asked = self.decodings[task]
        why = "chat completions have none: one greedy reply (--server-beam-search vllm asks vLLM for beams)"
        return recorded_decoding(asked, self.applied(asked), why)

    def arguments(self, record: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for the record (vLLM's beam parameters and
        `extra_body` in ``extra_body``: the SDK merges it into the JSON body)."""
        decoding = self.applied(decoding_of(self.decodings, record))
        beams = {"use_beam_search": True, "n": decoding.num_beams} if decoding.num_beams > 1 else {}
        return {
            "model": self.model_name,
            "messages": self.messages(record),
            "temperature": 0,
            "max_tokens": decoding.max_new_tokens,
            "extra_body": {**beams, **self.extra_body},
        }

    # -- talking to the server -----------------------------------------------------------------------------------
    def _client(self) -> openai.AsyncOpenAI:
        """A client for one event loop (its connections belong to the loop that first uses them)."""
        http = _http_client(self.url, self.concurrency, self.timeout, self._log_attempt)
        _guard_sdk_logs(self.secrets)  # after the SDK and its HTTP layer have created their loggers
        return _sdk_client(self.base_url, http_client=http, max_retries=self.max_retries, timeout=self.timeout)

    def _headers(self) -> dict[str, Any]:
        """The request's ``Authorization``: the API key, else the base URL's user:password, else none."""
        import openai

        return {"Authorization": self._authorization or openai.Omit()}

    def _log_attempt(self, request: httpx2.Request, response: httpx2.Response | None, error: Exception | None) -> None:
        """A warning for each failed attempt, naming the record (the SDK's own log lines do not)."""
        if response is not None and response.status_code < 400:
            return
        if response is not None:
            reason = f"HTTP {response.status_code}: {self.redact(_server_message(_json_or_text(response)))}"
        else:
            reason = f"{type(error).__name__}: {self.redact(error)[:MAX_SERVER_MESSAGE]}"
        attempt = _attempts(request)
        log.warning(
            "%s: attempt %d of %d to %s: %s", _record_id.get(), attempt, self.max_retries + 1, self.url, reason
        )

    async def _complete(self, client: openai.AsyncOpenAI, record: dict[str, Any]) -> Prediction:
        """One completion for one record: the body (built in a thread when it encodes media), the SDK's request
        (with its retries), the SDK's errors turned into one `APIError` naming the record."""
        import openai

        _record_id.set(record["id"])  # this task's context: read by `_log_attempt`
        start = time.perf_counter()
        if record["images"] or record["videos"]:  # media encoding (PNG, video frames) off the event loop
            arguments = await asyncio.to_thread(self.arguments, record)
        else:  # a text body takes microseconds: a thread hop would cost more than it saves
            arguments = self.arguments(record)
        try:
            raw = await client.chat.completions.with_raw_response.create(**arguments, extra_headers=self._headers())
        except openai.APIStatusError as err:
            raise self._status_error(record["id"], err) from None
        except openai.APIConnectionError as err:  # timeouts included
            cause = err.__cause__ or err
            last = f"{type(cause).__name__}: {self.redact(cause)[:MAX_SERVER_MESSAGE]}"
            raise APIError(
                f"{record['id']}: gave up after {_attempts(err.request)} attempts to {self.url}; last: {last}"
            ) from None
        if str(raw.http_response.url) != self.url:  # cannot happen without redirects; never keep another's answer
            raise APIError(f"{record['id']}: the answer came from {redact_url(str(raw.http_response.url))}")
        return self._prediction(record, raw, arguments["max_tokens"], time.perf_counter() - start)

    def _status_error(self, record_id: str, err: openai.APIStatusError) -> APIError:
        status = err.status_code
        if 300 <= status < 400:
            location = self.redact(redact_url(err.response.headers.get("location") or "?"))
            return APIError(
                f"{record_id}: HTTP {status} from {self.url}: a redirect to {location}, not followed "
                "(requests and the API key go to --base-url only; pass the final address as --base-url)"
            )
        message = f"HTTP {status}: {self.redact(_server_message(err.body))}"
        attempts = _attempts(err.response.request)
        if status in RETRY_STATUS or status >= 500:
            return APIError(f"{record_id}: gave up after {attempts} attempts to {self.url}; last: {message}")
        return APIError(f"{record_id}: {message.replace(':', f' from {self.url}:', 1)}")

    def _prediction(self, record: dict[str, Any], raw: Any, max_tokens: int, seconds: float) -> Prediction:
        returned = self.applied(decoding_of(self.decodings, record)).num_return_sequences
        try:
            completion = raw.parse()
            choices = sorted(completion.choices, key=lambda c: c.index or 0)
            texts = [(c.message.content or "").strip() for c in choices[:returned]]
            finish = choices[0].finish_reason
        except ValueError as err:  # a 200 whose body is not JSON
            reason = self.redact(err)[:MAX_SERVER_MESSAGE]
            raise APIError(f"{record['id']}: the response of {self.url} is not JSON: {reason}") from None
        except (AttributeError, IndexError, TypeError) as err:
            shown = self.redact(raw.http_response.text)[:MAX_SERVER_MESSAGE]
            raise APIError(f"{record['id']}: unexpected response from {self.url}: {shown}") from err
        if len(texts) < returned:
            raise APIError(
                f"{record['id']}: asked {self.url} for {returned} ranked replies (use_beam_search), got {len(texts)}"
            )
        usage = completion.usage
        extra = {
            "finish": finish,
            "max_new_tokens": max_tokens,
            "prompt_tokens": usage.prompt_tokens if usage is not None else None,
            "attempts": raw.retries_taken + 1,
        }
        return Prediction(record["id"], texts if returned > 1 else texts[0], seconds, extra)

    def request(self, record: dict[str, Any]) -> Prediction:
        """One completion for one record, on a client of its own (see the class docstring for the retries)."""

        async def one() -> Prediction:
            async with self._client() as client:
                return await self._complete(client, record)

        return asyncio.run(one())

    # -- many requests -------------------------------------------------------------------------------------------
    async def _answer_all(
        self, records: Sequence[dict[str, Any]], answers: queue.Queue, stop: threading.Event, complete: Any = None
    ) -> None:
        """Puts each prediction on `answers` as it arrives, at most `concurrency` requests in flight; after a
        failure (or `stop`) starts no new request, lets those in flight finish, then puts the first error."""
        todo = iter(records)
        pending: set[asyncio.Task[Prediction]] = set()
        error: BaseException | None = None
        async with self._client() as client:
            try:
                while True:
                    while error is None and not stop.is_set() and len(pending) < self.concurrency:
                        record = next(todo, None)
                        if record is None:
                            break
                        pending.add(asyncio.create_task((complete or self._complete)(client, record)))
                    if not pending:
                        break
                    finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in finished:
                        if task.exception() is not None:
                            error = error or task.exception()
                        else:
                            answers.put(task.result())
            finally:  # pending only when cancelled (the caller stopped early): do not leave them running
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        if error is not None:
            answers.put(error)

    def predict(self, records: Sequence[dict[str, Any]], complete: Any = None) -> Iterator[list[Prediction]]:
        """Each answer as it arrives (a batch of one); the first error once the requests in flight are done. If
        the caller stops early (an error while writing, Ctrl-C), the requests in flight are cancelled. `complete`
        (default: a corpus record's completion) answers one item (`chat` passes plain chat requests)."""
        answers: queue.Queue = queue.Queue()
        stop = threading.Event()
        loop = asyncio.new_event_loop()
        main = loop.create_task(self._answer_all(records, answers, stop, complete))
        main.add_done_callback(lambda task: answers.put(task.exception() if not task.cancelled() else None))
        main.add_done_callback(lambda _: answers.put(_DONE))
        worker = threading.Thread(target=_run_until_done, args=(loop, main), name="openai-backend", daemon=True)
        worker.start()
        try:
            while (answer := answers.get()) is not _DONE:
                if isinstance(answer, BaseException):
                    raise answer
                if answer is not None:
                    yield [answer]
        finally:
            stop.set()
            if not main.done():
                loop.call_soon_threadsafe(main.cancel)
            worker.join()

    # -- plain chat requests (mmaff.synth) ------------------------------------------------------------------------
    def chat(self, requests: Sequence[dict[str, Any]]) -> Iterator[Prediction]:
        """Plain chat completions, each answer as it arrives, with the same client, concurrency, retries and
        security as `predict`. A request is ``{"id": ..., "messages": [...], **create-arguments}`` (temperature,
        top_p, max_tokens, response_format, seed, extra_body: merged over the client's `extra_body`). A request
        the server refuses for good with 400 / 422 (a content filter, a prompt it will not answer) is not an error
        of the run: its `Prediction` has text "" and ``extra["refused"]`` (the server's message); any other
        failure raises `APIError` as in `predict`. `extra` holds finish, prompt_tokens, completion_tokens and
        attempts."""
        for batch in self.predict(requests, complete=self._complete_chat):
            yield from batch

    async def _complete_chat(self, client: openai.AsyncOpenAI, request: dict[str, Any]) -> Prediction:
        import openai

        _record_id.set(request["id"])
        start = time.perf_counter()
        arguments = {"model": self.model_name, **{k: v for k, v in request.items() if k != "id"}}
        arguments["extra_body"] = {**self.extra_body, **request.get("extra_body", {})}
        try:
            raw = await client.chat.completions.with_raw_response.create(**arguments, extra_headers=self._headers())
        except openai.APIStatusError as err:
            if err.status_code in (400, 422):
                refused = f"HTTP {err.status_code}: {self.redact(_server_message(err.body))}"
                return Prediction(request["id"], "", time.perf_counter() - start, {"refused": refused})
            raise self._status_error(request["id"], err) from None
        except openai.APIConnectionError as err:
            cause = err.__cause__ or err
            last = f"{type(cause).__name__}: {self.redact(cause)[:MAX_SERVER_MESSAGE]}"
            raise APIError(
                f"{request['id']}: gave up after {_attempts(err.request)} attempts to {self.url}; last: {last}"
            ) from None
        try:
            completion = raw.parse()
            choice = completion.choices[0]
            text = (choice.message.content or "").strip()
        except (ValueError, AttributeError, IndexError, TypeError):
            shown = self.redact(raw.http_response.text)[:MAX_SERVER_MESSAGE]
            raise APIError(f"{request['id']}: unexpected response from {self.url}: {shown}") from None
        usage = completion.usage
        extra = {
            "finish": choice.finish_reason,
            "prompt_tokens": usage.prompt_tokens if usage is not None else None,
            "completion_tokens": usage.completion_tokens if usage is not None else None,
            "attempts": raw.retries_taken + 1,
        }
        return Prediction(request["id"], text, time.perf_counter() - start, extra)


def _run_until_done(loop: asyncio.AbstractEventLoop, main: asyncio.Task) -> None:
    """The worker thread of `OpenAIChatGenerator.predict`: runs `main` (cancelled: quietly), then closes the
    loop as `asyncio.run` would (its body-building threads included)."""
    try:
        loop.run_until_complete(main)
    except asyncio.CancelledError:
        pass
    finally:
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _json_or_text(response: httpx2.Response) -> object:
    """A response's body (read by `httpx2.AsyncClient.send`: the SDK does not stream chat completions), parsed
    as JSON where it is JSON."""
    try:
        return response.json()
    except ValueError:
        return response.text
