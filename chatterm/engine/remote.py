"""The remote engine: models served over the OpenAI-compatible chat API (llama-server, vLLM,
Ollama, llama-cpp-python's server), behind the same contract as the local engine, so the TUI,
history, personas and lab work unchanged when a model outgrows the laptop.

HTTP goes through httpx2 (httpx on Python 3.10), imported only when a remote model is used. It
is already installed with huggingface-hub, and we need only plain streaming POSTs; the
``openai`` SDK would add pydantic models that hide the non-standard fields these servers send
(llama-server's ``timings``, vLLM's ``max_model_len``), retries with backoff that turn "server
down" into a long wait, and about half a second of imports.

Error contract: building a :class:`RemoteEngine` asks the server for ``/models``, so a server
that is down, refuses the key or lacks the model raises :class:`ModelError` (exit 3) before
anything is sent. ``generate`` itself never raises for network or server failures: it yields
what it received, then ``Finished("error", error=<one line>)``, so every front end keeps the
partial answer and the user's message on one path.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from chatterm import __version__
from chatterm.config import Config, Endpoint
from chatterm.engine.base import RenderedPrompt, TokenPiece
from chatterm.engine.events import (
    Candidate,
    ChatMessage,
    Event,
    Finished,
    PromptReady,
    Stats,
    Token,
)
from chatterm.errors import ChattermError, ModelError
from chatterm.sampling import SamplingSettings

CONNECT_TIMEOUT = 5.0
PROBE_TIMEOUT = 30.0  # llama-cpp-python answers /models only between generations
LIST_TIMEOUT = 3.0
POLL_S = 0.05  # how often a waiting consumer looks at its cancel event
INSTALL_HINT = "pip install 'chatterm[remote]'"

# Settings outside the OpenAI schema, with the value that means "off": unsent or ignored at
# that value nothing is lost, so only other values are reported.
NEUTRAL: dict[str, float] = {"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0}
LLAMA_CPP_FIELDS = {"top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repeat_penalty"}


@dataclass(frozen=True)
class ServerKind:
    """What one server family accepts beyond the OpenAI schema."""

    name: str
    extra_fields: Mapping[str, str]  # our setting -> the server's request field
    shows_tokens: bool = False  # llama-server's /tokenize and /apply-template


KINDS: dict[str, ServerKind] = {
    k.name: k
    for k in (
        ServerKind("llama-server", LLAMA_CPP_FIELDS, shows_tokens=True),
        ServerKind("llama-cpp-python", LLAMA_CPP_FIELDS),
        ServerKind(
            "vllm", {"top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repetition_penalty"}
        ),
        # Ollama's /v1 API reads only the OpenAI fields and drops the rest without a word.
        ServerKind("ollama", {}),
        # Unknown servers get llama.cpp's names; one that rejects them is retried without.
        ServerKind("openai-compatible", LLAMA_CPP_FIELDS),
    )
}


def detect_kind(model_entry: Mapping[str, Any], base_url: str) -> ServerKind:
    """Guess the server family from a ``/models`` entry (``owned_by`` differs per family)."""
    owner = str(model_entry.get("owned_by", "")).lower()
    if owner == "llamacpp":
        return KINDS["llama-server"]
    if owner == "vllm":
        return KINDS["vllm"]
    if owner == "me":
        return KINDS["llama-cpp-python"]
    if owner in ("library", "ollama") or ":11434" in base_url:
        return KINDS["ollama"]
    return KINDS["openai-compatible"]


class RemoteFeatureError(ChattermError):
    """The server cannot do what a local model can (show tokens, render the prompt)."""


def _httpx() -> Any:
    """The HTTP client module; a missing one is a one-line error that says how to install it."""
    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ModelError(f"remote endpoints need an HTTP client: {INSTALL_HINT}")


def api_key(endpoint: Endpoint) -> str | None:
    """The key from the environment variable the endpoint names (never from config.toml)."""
    if not endpoint.api_key_env:
        return None
    value = os.environ.get(endpoint.api_key_env, "").strip()
    if not value:
        raise ModelError(
            f"endpoint {endpoint.name!r} reads its API key from ${endpoint.api_key_env}, "
            "which is not set"
        )
    return value


def _client(endpoint: Endpoint, read_timeout: float) -> Any:
    httpx = _httpx()
    headers = {"User-Agent": f"chatterm/{__version__}", "Accept": "application/json"}
    key = api_key(endpoint)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return httpx.Client(
        headers=headers, timeout=httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT)
    )


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_detail(body: bytes | str) -> str:
    """The server's own words from an error body: OpenAI's ``{"error": {"message"}}``,
    Ollama's ``{"error": "…"}``, FastAPI's ``{"detail": …}``, else the text itself."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        return _one_line(text) or "no details"
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value.get("msg") or value
            if isinstance(value, list):  # FastAPI validation errors
                value = "; ".join(
                    f"{'.'.join(map(str, v.get('loc', [])))}: {v.get('msg', v)}"
                    if isinstance(v, dict)
                    else str(v)
                    for v in value
                )
            if value:
                return _one_line(str(value))
    return _one_line(text)


def http_error(endpoint: Endpoint, model: str, status: int, detail: str) -> str:
    """A one-line message for an HTTP error status, saying what to do about it."""
    name = endpoint.name
    if status in (401, 403):
        if endpoint.api_key_env:
            return (
                f"endpoint {name!r} refused the API key in ${endpoint.api_key_env} "
                f"({status}: {detail})"
            )
        return (
            f"endpoint {name!r} needs an API key ({status}: {detail}); set api_key_env under "
            f"[endpoints.{name}] in config.toml to the name of a variable holding it"
        )
    if status == 404:
        return (
            f"endpoint {name!r} answered 404 for model {model!r} ({detail}); check the name "
            "with `chatterm models` and that base_url ends in /v1"
        )
    if status >= 500:
        return f"endpoint {name!r} failed with HTTP {status} ({detail})"
    return f"endpoint {name!r} refused the request with HTTP {status} ({detail})"


def transport_error(endpoint: Endpoint, exc: BaseException, *, mid_answer: bool) -> str:
    """A one-line message for a failed connection, timeout or broken stream."""
    httpx = _httpx()
    name, url = endpoint.name, endpoint.base_url
    reason = _one_line(str(exc) or type(exc).__name__, 120)
    if isinstance(exc, httpx.ConnectTimeout):
        return (
            f"endpoint {name!r} at {url} did not accept a connection within {CONNECT_TIMEOUT:g} s"
        )
    if isinstance(exc, httpx.ConnectError):
        return f"cannot reach endpoint {name!r} at {url} ({reason}); is the server running?"
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"endpoint {name!r} sent nothing for {endpoint.timeout:g} s; for a slow server raise "
            f"timeout under [endpoints.{name}] in config.toml"
        )
    if mid_answer:
        return f"the connection to endpoint {name!r} broke mid-answer ({reason})"
    return f"request to endpoint {name!r} at {url} failed ({reason})"


def _get_json(client: Any, endpoint: Endpoint, url: str, timeout: float) -> Any:
    """GET ``url`` and decode JSON, turning every failure into a one-line :class:`ModelError`."""
    httpx = _httpx()
    try:
        response = client.get(url, timeout=httpx.Timeout(timeout, connect=CONNECT_TIMEOUT))
    except httpx.HTTPError as exc:
        raise ModelError(transport_error(endpoint, exc, mid_answer=False)) from None
    if response.status_code == 404:
        raise ModelError(
            f"endpoint {endpoint.name!r} has no {url} (404); does base_url end in /v1?"
        )
    if response.status_code != 200:
        detail = error_detail(response.content)
        raise ModelError(http_error(endpoint, "", response.status_code, detail))
    try:
        return response.json()
    except ValueError:
        raise ModelError(f"endpoint {endpoint.name!r} sent a non-JSON answer for {url}") from None


def _model_entries(data: Any) -> list[dict[str, Any]]:
    entries = data.get("data") if isinstance(data, dict) else None
    return [e for e in entries or [] if isinstance(e, dict) and "id" in e]


def list_remote_models(
    config: Config,
    *,
    timeout: float = LIST_TIMEOUT,
    errors: dict[str, str] | None = None,
) -> dict[str, list[str]]:
    """Model ids each configured endpoint serves (``/v1/models``), asked in parallel with a
    short timeout. Use them as ``ENDPOINT/ID``. An endpoint that cannot be listed maps to an
    empty list, and its one-line reason goes into ``errors`` when a dict is given.
    """

    def one(endpoint: Endpoint) -> tuple[list[str], str | None]:
        try:
            client = _client(endpoint, timeout)
        except ModelError as exc:
            return [], str(exc)
        try:
            data = _get_json(client, endpoint, f"{endpoint.base_url}/models", timeout)
            return [str(e["id"]) for e in _model_entries(data)], None
        except ModelError as exc:
            return [], str(exc)
        finally:
            client.close()

    endpoints = list(config.endpoints.values())
    if not endpoints:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(endpoints))) as pool:
        results = list(pool.map(one, endpoints))
    listing: dict[str, list[str]] = {}
    for endpoint, (ids, error) in zip(endpoints, results):
        listing[endpoint.name] = ids
        if error and errors is not None:
            errors[endpoint.name] = error
    return listing


class _Stream:
    """One streamed request, read on a helper thread into a queue.

    The consumer waits on the queue in short slices, so a ``cancel`` event set by another
    thread, Ctrl-C, or closing the generator stops it at once even while the server is silent
    (a long prefill); ``close`` then shuts the socket down, which wakes the reader blocked in
    ``recv`` and tells the server to stop generating.
    """

    def __init__(self, client: Any, url: str, body: dict[str, Any]) -> None:
        self.items: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._closing = threading.Event()
        self._sock: socket.socket | None = None
        self._sock_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._read, args=(client, url, body), name="chatterm-remote", daemon=True
        )
        self._thread.start()

    def _read(self, client: Any, url: str, body: dict[str, Any]) -> None:
        put = self.items.put
        try:
            with client.stream("POST", url, json=body) as response:
                if response.status_code != 200:
                    put(("status", (response.status_code, response.read())))
                    return
                network = response.extensions.get("network_stream")
                with self._sock_lock:
                    if self._closing.is_set():
                        return
                    self._sock = network.get_extra_info("socket") if network else None
                put(("open", None))
                for line in response.iter_lines():
                    if self._closing.is_set():
                        return
                    put(("line", line))
                with self._sock_lock:  # the connection goes back to the pool intact
                    self._sock = None
            put(("end", None))
        except Exception as exc:  # reported to the consumer, who turns it into one line
            if not self._closing.is_set():
                put(("error", exc))

    def get(self, cancel: threading.Event | None) -> tuple[str, Any] | None:
        """The next item, or ``None`` once ``cancel`` is set."""
        while True:
            if cancel is not None and cancel.is_set():
                return None
            try:
                return self.items.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def drain(self, timeout: float = 1.0) -> None:
        """After ``[DONE]``, let the reader reach the body's end (briefly), so the connection
        returns to the pool instead of being shut down."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, _ = self.items.get(timeout=left)
            except queue.Empty:
                return
            if kind in ("end", "error"):
                return

    def close(self) -> None:
        self._closing.set()
        with self._sock_lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):  # already closed by the server
                sock.shutdown(socket.SHUT_RDWR)


@dataclass
class _Reply:
    """What one streamed answer has delivered so far."""

    start: float
    tokens: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    finish: str | None = None
    done: bool = False
    error: str | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    saw_logprobs: bool = False
    in_reasoning: bool = False


class RemoteEngine:
    """A model on an OpenAI-compatible server; see :class:`chatterm.engine.base.Engine`.

    ``notes`` collects one-line remarks about settings the server does not apply (each
    reported once); front ends show them with :meth:`pop_notes`. ``last_usage`` and
    ``last_timings`` hold the server's own numbers from the latest reply, when it sent them.
    """

    def __init__(self, endpoint: Endpoint, model: str, *, n_ctx: int | None = None) -> None:
        self.endpoint = endpoint
        self.model = model
        self.name = f"{endpoint.name}/{model}"
        self.notes: list[str] = []
        self.last_usage: dict[str, Any] | None = None
        self.last_timings: dict[str, Any] | None = None
        self._pending_notes: list[str] = []
        self._reported: set[str] = set()
        self._dropped: set[str] = set()  # request fields this server refused
        self._lock = threading.Lock()
        self._client = _client(endpoint, endpoint.timeout)
        self._n_ctx = n_ctx or 4096
        self.n_ctx_known = False
        try:
            self.kind = self._probe()
        except BaseException:
            self._client.close()
            raise

    # -- facts ---------------------------------------------------------------------------

    @property
    def n_ctx(self) -> int:
        """The server's window when it says (vLLM, llama-server), else the configured one."""
        return self._n_ctx

    @property
    def root_url(self) -> str:
        """The server root, where llama-server keeps /props, /tokenize and /apply-template."""
        base = self.endpoint.base_url
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def _probe(self) -> ServerKind:
        url = f"{self.endpoint.base_url}/models"
        data = _get_json(self._client, self.endpoint, url, PROBE_TIMEOUT)
        entries = _model_entries(data)
        ids = [str(e["id"]) for e in entries]
        entry = next((e for e in entries if str(e["id"]) == self.model), None)
        if entry is None and ids:
            shown = ", ".join(ids[:8]) + (", …" if len(ids) > 8 else "")
            raise ModelError(
                f"endpoint {self.endpoint.name!r} has no model {self.model!r}; it serves: {shown}"
            )
        kind = detect_kind(entry or {}, self.endpoint.base_url)
        n_ctx = (entry or {}).get("max_model_len")  # vLLM
        if kind.name == "llama-server":
            n_ctx = self._llama_server_ctx() or n_ctx
        if isinstance(n_ctx, int) and n_ctx > 0:
            self._n_ctx, self.n_ctx_known = n_ctx, True
        return kind

    def _llama_server_ctx(self) -> int | None:
        try:
            props = _get_json(self._client, self.endpoint, f"{self.root_url}/props", PROBE_TIMEOUT)
        except ModelError:
            return None
        settings = props.get("default_generation_settings") if isinstance(props, dict) else None
        for source in (settings, props):
            if isinstance(source, dict) and isinstance(source.get("n_ctx"), int):
                return int(source["n_ctx"])
        return None

    # -- notes ---------------------------------------------------------------------------

    def _note(self, key: str, text: str) -> None:
        if key not in self._reported:
            self._reported.add(key)
            self.notes.append(text)
            self._pending_notes.append(text)

    def pop_notes(self) -> list[str]:
        """Notes added since the last call, for a front end to show once."""
        notes, self._pending_notes = self._pending_notes, []
        return notes

    # -- requests ------------------------------------------------------------------------

    def request_body(
        self, messages: Sequence[ChatMessage], sampling: SamplingSettings, top_logprobs: int
    ) -> tuple[dict[str, Any], list[str]]:
        """The chat-completions request for these settings, and the settings it cannot carry
        to this server (as ``name=value``; settings at their neutral value are not listed)."""
        s = sampling
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": s.temperature,
            "top_p": s.top_p,
            "max_tokens": s.max_tokens,
            "presence_penalty": s.presence_penalty,
            "frequency_penalty": s.frequency_penalty,
        }
        if s.seed >= 0:
            body["seed"] = s.seed
        if s.stop:
            body["stop"] = list(s.stop)
        if top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = top_logprobs
        unapplied = []
        for setting, neutral in NEUTRAL.items():
            value = getattr(s, setting)
            field = self.kind.extra_fields.get(setting)
            if field is None or field in self._dropped:
                if value != neutral:
                    unapplied.append(f"{setting}={value:g}")
            else:
                body[field] = value
        for field in self._dropped:
            body.pop(field, None)
        return body, unapplied

    def _report_unapplied(self, unapplied: list[str]) -> None:
        new = [u for u in unapplied if u.split("=")[0] not in self._reported]
        if new:
            for u in new:
                self._reported.add(u.split("=")[0])
            text = (
                f"endpoint {self.endpoint.name!r} ({self.kind.name}) does not apply "
                f"{', '.join(new)}; the reply is sampled without "
                f"{'it' if len(new) == 1 else 'them'}"
            )
            self.notes.append(text)
            self._pending_notes.append(text)

    def _refused_fields(self, body: Mapping[str, Any], detail: str) -> set[str]:
        """Optional request fields a 400/422 answer names, which a retry can leave out."""
        optional = set(self.kind.extra_fields.values()) | {"stream_options"}
        return {f for f in optional if f in body and f in detail}

    # -- generation ----------------------------------------------------------------------

    def generate(
        self,
        messages: Sequence[ChatMessage],
        sampling: SamplingSettings,
        *,
        top_logprobs: int = 0,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        """Stream a reply from the server; see :class:`chatterm.engine.base.Engine`.

        Yields ``PromptReady`` first (prompt tokens are known only from the server's usage at
        the end, so it says 0), a ``Token`` per streamed piece (with ``prob``/``top`` when the
        server returns logprobs), then one ``Finished``. Network and server failures end with
        ``Finished("error", error=…)`` after whatever arrived; nothing is raised for them.
        """
        with self._lock:
            yield from self._generate(list(messages), sampling, top_logprobs, cancel)

    def _generate(
        self,
        messages: list[ChatMessage],
        sampling: SamplingSettings,
        top_logprobs: int,
        cancel: threading.Event | None,
    ) -> Iterator[Event]:
        reply = _Reply(start=time.perf_counter())
        yield PromptReady(0, 0, self.n_ctx)
        url = f"{self.endpoint.base_url}/chat/completions"
        stream: _Stream | None = None
        cancelled = False
        pending: list[str] = []  # SSE data lines of the event being read
        try:
            for attempt in range(2):
                body, unapplied = self.request_body(messages, sampling, top_logprobs)
                self._report_unapplied(unapplied)
                stream = _Stream(self._client, url, body)
                item = stream.get(cancel)
                if item is not None and item[0] == "status" and attempt == 0:
                    status, content = item[1]
                    refused = self._refused_fields(body, error_detail(content))
                    if status in (400, 422) and refused:
                        self._dropped |= refused
                        stream.close()
                        continue
                break
            assert stream is not None
            while item is not None:
                kind, value = item
                if kind == "status":
                    status, content = value
                    reply.error = http_error(
                        self.endpoint, self.model, status, error_detail(content)
                    )
                elif kind == "error":
                    reply.error = transport_error(self.endpoint, value, mid_answer=reply.tokens > 0)
                elif kind == "end":
                    if pending:
                        yield from self._event("\n".join(pending), reply)
                    if not reply.done and reply.finish is None and reply.error is None:
                        reply.error = (
                            f"endpoint {self.endpoint.name!r} ended the answer early "
                            "(the stream closed without a finish reason)"
                        )
                elif kind == "line":
                    if value == "":
                        if pending:
                            data, pending = "\n".join(pending), []
                            yield from self._event(data, reply)
                    elif value.startswith("data:"):
                        pending.append(value[6:] if value.startswith("data: ") else value[5:])
                    elif value.startswith("error:"):  # some servers name errors as events
                        reply.error = f"endpoint {self.endpoint.name!r}: " + error_detail(
                            value[6:].strip()
                        )
                if reply.error or reply.done or kind in ("end", "status", "error"):
                    break
                item = stream.get(cancel)
            else:
                cancelled = True
            if reply.done:
                stream.drain()
        finally:
            if stream is not None:
                stream.close()
        if reply.in_reasoning:
            yield Token("</think>", -1)
        yield self._finish(reply, cancelled, top_logprobs)

    def _event(self, data: str, reply: _Reply) -> Iterator[Token]:
        """Turn one SSE ``data`` payload into tokens and bookkeeping."""
        if data.strip() == "[DONE]":
            reply.done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            reply.error = f"endpoint {self.endpoint.name!r} sent a malformed event: {data[:80]!r}"
            return
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            reply.error = f"endpoint {self.endpoint.name!r}: " + error_detail(json.dumps(chunk))
            return
        if isinstance(chunk.get("usage"), dict):
            reply.usage = chunk["usage"]
        if isinstance(chunk.get("timings"), dict):  # llama-server
            reply.timings = chunk["timings"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
            content = delta.get("content") or ""
            if reasoning:  # thinking models: keep it, marked as the local engine shows it
                if not reply.in_reasoning:
                    reply.in_reasoning = True
                    yield Token("<think>", -1)
                yield from self._tokens(reasoning, None, reply)
            if content:
                if reply.in_reasoning:
                    reply.in_reasoning = False
                    yield Token("</think>", -1)
                logprobs = choice.get("logprobs") or {}
                entries = logprobs.get("content") if isinstance(logprobs, dict) else None
                yield from self._tokens(content, entries, reply)
            if choice.get("finish_reason"):
                reply.finish = str(choice["finish_reason"])

    def _tokens(self, text: str, entries: list[Any] | None, reply: _Reply) -> Iterator[Token]:
        now = time.perf_counter()
        if not reply.first_at:
            reply.first_at = now
        reply.last_at = now
        entries = [e for e in entries or [] if isinstance(e, dict)]
        if entries:
            reply.saw_logprobs = True
        # A chunk may carry several tokens (vLLM batches them): split when they add up.
        if len(entries) > 1 and "".join(str(e.get("token", "")) for e in entries) == text:
            for entry in entries:
                reply.tokens += 1
                prob, top = _probabilities(entry)
                yield Token(str(entry.get("token", "")), _token_id(entry), prob, top)
            return
        reply.tokens += max(1, len(entries))
        if entries:
            prob, top = _probabilities(entries[0])
            yield Token(text, _token_id(entries[0]), prob, top)
        else:
            yield Token(text, -1)

    def _finish(self, reply: _Reply, cancelled: bool, top_logprobs: int) -> Finished:
        end = time.perf_counter()
        usage = reply.usage or {}
        self.last_usage, self.last_timings = reply.usage, reply.timings
        if top_logprobs and reply.tokens and not reply.saw_logprobs:
            self._note(
                "logprobs",
                f"endpoint {self.endpoint.name!r} ({self.kind.name}) sent no token "
                "probabilities, so none are shown",
            )
        generated = _int(usage.get("completion_tokens")) or reply.tokens
        prompt_tokens = _int(usage.get("prompt_tokens"))
        details = usage.get("prompt_tokens_details") or {}
        cached = _int(details.get("cached_tokens") if isinstance(details, dict) else None)
        cached = cached or _int((reply.timings or {}).get("cache_n"))
        ttft = reply.first_at - reply.start if reply.first_at else 0.0
        decode_s = reply.last_at - reply.first_at
        stats = Stats(
            prompt_tokens=prompt_tokens,
            cached_tokens=cached,
            generated_tokens=generated,
            ttft_s=ttft,
            # Measured here: includes the network and any queueing on the server.
            prompt_tps=(prompt_tokens - cached) / ttft if prompt_tokens and ttft > 0 else 0.0,
            decode_tps=(generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
            total_s=end - reply.start,
        )
        if reply.error:
            return Finished("error", stats, reply.error)
        if cancelled:
            return Finished("cancelled", stats)
        return Finished("length" if reply.finish == "length" else "stop", stats)

    # -- prompt and tokens ---------------------------------------------------------------

    def _unsupported(self, what: str) -> RemoteFeatureError:
        return RemoteFeatureError(
            f"endpoint {self.endpoint.name!r} ({self.kind.name}) cannot show {what}: the remote "
            "engine can do that only on llama-server, which exposes /tokenize and /apply-template"
        )

    def _post_root(self, path: str, payload: dict[str, Any], what: str) -> Any:
        httpx = _httpx()
        url = f"{self.root_url}{path}"
        try:
            response = self._client.post(url, json=payload)
        except httpx.HTTPError as exc:
            raise RemoteFeatureError(
                transport_error(self.endpoint, exc, mid_answer=False)
            ) from None
        if response.status_code in (404, 405, 501):
            raise self._unsupported(what)
        if response.status_code != 200:
            detail = error_detail(response.content)
            raise RemoteFeatureError(
                http_error(self.endpoint, self.model, response.status_code, detail)
            )
        try:
            return response.json()
        except ValueError:
            raise RemoteFeatureError(
                f"endpoint {self.endpoint.name!r} sent a non-JSON answer for {url}"
            ) from None

    def render(
        self, messages: Sequence[ChatMessage], *, add_generation_prompt: bool = True
    ) -> RenderedPrompt:
        """The prompt as the server's chat template renders it (llama-server only)."""
        if not self.kind.shows_tokens:
            raise self._unsupported("the rendered prompt")
        payload = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "add_generation_prompt": add_generation_prompt,
        }
        data = self._post_root("/apply-template", payload, "the rendered prompt")
        text = str(data.get("prompt", "")) if isinstance(data, dict) else ""
        tokens = self._post_root(
            "/tokenize", {"content": text, "add_special": True, "parse_special": True}, "tokens"
        )
        ids = tokens.get("tokens", []) if isinstance(tokens, dict) else []
        return RenderedPrompt(text, tuple(int(t) for t in ids if isinstance(t, int)))

    def tokenize(self, text: str, *, special: bool = False) -> list[TokenPiece]:
        """How the server's tokenizer splits ``text`` (llama-server only)."""
        if not self.kind.shows_tokens:
            raise self._unsupported("tokens")
        payload = {
            "content": text,
            "add_special": False,
            "parse_special": special,
            "with_pieces": True,
        }
        data = self._post_root("/tokenize", payload, "tokens")
        pieces = []
        for item in data.get("tokens", []) if isinstance(data, dict) else []:
            if isinstance(item, int):
                pieces.append(TokenPiece(item, ""))
                continue
            piece = item.get("piece", "")
            if isinstance(piece, list):  # bytes that are not valid UTF-8 on their own
                shown = "".join(f"<0x{b:02X}>" for b in piece if isinstance(b, int))
                pieces.append(TokenPiece(_token_id(item), shown, byte_fallback=True))
            else:
                pieces.append(TokenPiece(_token_id(item), str(piece)))
        return pieces

    def close(self) -> None:
        self._client.close()


def _token_id(entry: Mapping[str, Any]) -> int:
    """llama-server sends token ids with logprobs; other servers send text only (-1)."""
    value = entry.get("id")
    return value if isinstance(value, int) else -1


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _probabilities(entry: Mapping[str, Any]) -> tuple[float | None, tuple[Candidate, ...]]:
    """``exp(logprob)`` for the chosen token and its top alternatives, as the local engine
    reports them."""

    def prob(value: Any) -> float | None:
        return math.exp(value) if isinstance(value, (int, float)) else None

    top = []
    for alt in entry.get("top_logprobs") or []:
        if isinstance(alt, dict) and (p := prob(alt.get("logprob"))) is not None:
            top.append(Candidate(_token_id(alt), str(alt.get("token", "")), p))
    return prob(entry.get("logprob")), tuple(top)
