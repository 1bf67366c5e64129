"""The remote engine: models served over the OpenAI-compatible chat API (llama-server, vLLM,
Ollama, llama-cpp-python's server), behind the same contract as the local engine, so the TUI,
history, personas and lab work unchanged when a model outgrows the laptop. HTTP lives in
:mod:`chatterm.engine.remote_http`, reading an answer in :mod:`chatterm.engine.remote_reply`.

Error contract: building a :class:`RemoteEngine` asks the server for ``/models``, so a server
that is down, refuses the key or lacks the model raises :class:`ModelError` (exit 3) before
anything is sent. ``generate`` itself never raises for network or server failures: it yields
what it received, then ``Finished("error", error=<one line>)``, so every front end keeps the
partial answer and the user's message on one path.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatterm.config import Endpoint
from chatterm.engine.base import RenderedPrompt, TokenPiece
from chatterm.engine.events import ChatMessage, Event, PromptReady
from chatterm.engine.remote_http import (
    INSTALL_HINT,
    StreamedRequest,
    error_detail,
    get_json,
    http_error,
    httpx_module,
    list_remote_models,
    make_client,
    model_entries,
    transport_error,
)
from chatterm.engine.remote_reply import ReplyReader, token_id
from chatterm.errors import ChattermError, ModelError
from chatterm.sampling import SamplingSettings

__all__ = ["INSTALL_HINT", "KINDS", "RemoteEngine", "RemoteFeatureError", "list_remote_models"]

PROBE_TIMEOUT = 30.0  # llama-cpp-python answers /models only between generations

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
        self._client = make_client(endpoint, endpoint.timeout)
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
        data = get_json(self._client, self.endpoint, url, PROBE_TIMEOUT)
        entries = model_entries(data)
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
            props = get_json(self._client, self.endpoint, f"{self.root_url}/props", PROBE_TIMEOUT)
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
        reader = ReplyReader(self.endpoint.name)
        yield PromptReady(0, 0, self.n_ctx)
        stream: StreamedRequest | None = None
        cancelled = False
        try:
            stream, item = self._send(messages, sampling, top_logprobs, cancel)
            while item is not None:
                kind, value = item
                if kind == "status":
                    status, content = value
                    detail = error_detail(content)
                    reader.error = http_error(self.endpoint, self.model, status, detail)
                elif kind == "error":
                    mid_answer = reader.tokens > 0
                    reader.error = transport_error(self.endpoint, value, mid_answer=mid_answer)
                elif kind == "end":
                    yield from reader.end()
                elif kind == "line":
                    yield from reader.line(value)
                if reader.error or reader.done or kind in ("end", "status", "error"):
                    break
                item = stream.get(cancel)
            else:
                cancelled = True
            if reader.done:
                stream.drain()
        finally:
            if stream is not None:
                stream.close()
        yield from reader.close_reasoning()
        self.last_usage, self.last_timings = reader.usage, reader.timings
        if top_logprobs and reader.tokens and not reader.saw_logprobs:
            self._note(
                "logprobs",
                f"endpoint {self.endpoint.name!r} ({self.kind.name}) sent no token "
                "probabilities, so none are shown",
            )
        yield reader.finished(cancelled)

    def _send(
        self,
        messages: list[ChatMessage],
        sampling: SamplingSettings,
        top_logprobs: int,
        cancel: threading.Event | None,
    ) -> tuple[StreamedRequest, tuple[str, Any] | None]:
        """Start the request and wait for its first item (``None`` if cancelled). A server
        that refuses optional fields by name (400/422) gets the request once more without."""
        url = f"{self.endpoint.base_url}/chat/completions"
        for attempt in range(2):
            body, unapplied = self.request_body(messages, sampling, top_logprobs)
            self._report_unapplied(unapplied)
            stream = StreamedRequest(self._client, url, body)
            item = stream.get(cancel)
            if attempt == 0 and item is not None and item[0] == "status":
                status, content = item[1]
                refused = self._refused_fields(body, error_detail(content))
                if status in (400, 422) and refused:
                    self._dropped |= refused
                    stream.close()
                    continue
            break
        return stream, item

    # -- prompt and tokens ---------------------------------------------------------------

    def _unsupported(self, what: str) -> RemoteFeatureError:
        return RemoteFeatureError(
            f"endpoint {self.endpoint.name!r} ({self.kind.name}) cannot show {what}: the remote "
            "engine can do that only on llama-server, which exposes /tokenize and /apply-template"
        )

    def _post_root(self, path: str, payload: dict[str, Any], what: str) -> Any:
        httpx = httpx_module()
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
                pieces.append(TokenPiece(token_id(item), shown, byte_fallback=True))
            else:
                pieces.append(TokenPiece(token_id(item), str(piece)))
        return pieces

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        """Nothing to do here: a server keeps (or drops) its own prompt cache."""
        return 0

    def close(self) -> None:
        self._client.close()
