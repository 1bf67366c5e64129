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

import functools
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatterm.config import Endpoint
from chatterm.engine.base import ContextPlan, RenderedPrompt, TokenPiece
from chatterm.engine.context import plan_context
from chatterm.engine.events import ChatMessage, Event, PromptReady
from chatterm.engine.remote_http import (
    INSTALL_HINT,
    Deadline,
    StreamedRequest,
    endpoint_key,
    error_detail,
    fetch,
    get_json,
    get_models,
    http_error,
    httpx_module,
    list_remote_models,
    make_client,
    redact,
    transport_error,
)
from chatterm.engine.remote_reply import KeyFilter, ReplyReader
from chatterm.engine.remote_wire import (
    ModelEntry,
    Usage,
    WireError,
    parse_props_n_ctx,
    parse_template,
    parse_tokenize,
)
from chatterm.errors import EXIT_USAGE, CapabilityError, ChattermError, ModelError
from chatterm.sampling import SamplingSettings

__all__ = ["INSTALL_HINT", "KINDS", "RemoteEngine", "RemoteFeatureError", "list_remote_models"]

PROBE_TIMEOUT = 30.0  # llama-cpp-python answers /models only between generations
FINISH_GRACE_S = 2.0  # after the finish chunk, how long to wait for usage and [DONE]

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
    template_kwargs: bool = True  # reads ``chat_template_kwargs`` (``enable_thinking``)


KINDS: dict[str, ServerKind] = {
    k.name: k
    for k in (
        ServerKind("llama-server", LLAMA_CPP_FIELDS, shows_tokens=True),
        ServerKind("llama-cpp-python", LLAMA_CPP_FIELDS),
        ServerKind(
            "vllm", {"top_k": "top_k", "min_p": "min_p", "repeat_penalty": "repetition_penalty"}
        ),
        # Ollama's /v1 API reads only the OpenAI fields and drops the rest without a word.
        ServerKind("ollama", {}, template_kwargs=False),
        # Unknown servers get llama.cpp's names; one that rejects them is retried without.
        ServerKind("openai-compatible", LLAMA_CPP_FIELDS),
    )
}


def detect_kind(model_entry: ModelEntry | None, base_url: str) -> ServerKind:
    """Guess the server family from a ``/models`` entry (``owned_by`` differs per family)."""
    owner = model_entry.owned_by.lower() if model_entry else ""
    if owner == "llamacpp":
        return KINDS["llama-server"]
    if owner == "vllm":
        return KINDS["vllm"]
    if owner == "me":
        return KINDS["llama-cpp-python"]
    if owner in ("library", "ollama") or ":11434" in base_url:
        return KINDS["ollama"]
    return KINDS["openai-compatible"]


def _message(m: ChatMessage, with_reasoning: bool) -> dict[str, Any]:
    """A message for the chat API. An assistant reply's thinking goes back as
    ``reasoning_content`` only to llama-server, which hands it to templates that read it;
    other servers get the answer alone (DeepSeek's API refuses ``reasoning_content`` in
    requests with a 400)."""
    item: dict[str, Any] = {"role": m.role, "content": m.content}
    if with_reasoning and m.role == "assistant" and m.reasoning:
        item["reasoning_content"] = m.reasoning
    return item


class RemoteFeatureError(CapabilityError):
    """The server cannot do what a local model can (show tokens, render the prompt): a usage
    error (exit 2), like any request the chosen model cannot serve; exit 1 is kept for
    failures of the network, the Hub or the database (:class:`RemoteServerError`)."""

    exit_code = EXIT_USAGE


class RemoteServerError(ChattermError):
    """The server failed or answered in a shape it should not have (exit 1)."""


class RemoteEngine:
    """A model on an OpenAI-compatible server; see :class:`chatterm.engine.base.Engine`.

    ``notes`` collects one-line remarks about settings the server does not apply (each
    reported once); front ends show them with :meth:`pop_notes`. ``last_usage`` holds the
    server's own token counts from the latest reply, when it sent them.
    """

    def __init__(self, endpoint: Endpoint, model: str, *, n_ctx: int | None = None) -> None:
        self.endpoint = endpoint
        self.model = model
        self.name = f"{endpoint.name}/{model}"
        self.model_path: Path | None = None  # the model lives on the server
        self.gpu_note = ""
        self.load_notes: list[str] = []
        self.notes: list[str] = []
        self.last_usage: Usage | None = None
        self._pending_notes: list[str] = []
        self._reported: set[str] = set()
        self._dropped: set[str] = set()  # request fields this server refused
        self._lock = threading.Lock()
        self._client = make_client(endpoint, endpoint.timeout)
        self._key = endpoint_key(endpoint)
        self._redact = functools.partial(redact, key=self._key)
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

    @property
    def _probe_timeout(self) -> float:
        return min(PROBE_TIMEOUT, self.endpoint.timeout)

    def _probe(self) -> ServerKind:
        entries = get_models(self._client, self.endpoint, self._probe_timeout)
        ids = [e.id for e in entries]
        entry = next((e for e in entries if e.id == self.model), None)
        if entry is None and ids:
            shown = ", ".join(ids[:8]) + (", …" if len(ids) > 8 else "")
            raise ModelError(
                f"endpoint {self.endpoint.name!r} has no model {self.model!r}; it serves: {shown}"
            )
        kind = detect_kind(entry, self.endpoint.base_url)
        n_ctx = entry.max_model_len if entry else None  # vLLM
        if kind.name == "llama-server":
            n_ctx = self._llama_server_ctx() or n_ctx
        if n_ctx:
            self._n_ctx, self.n_ctx_known = n_ctx, True
        return kind

    def _llama_server_ctx(self) -> int | None:
        """The window of one of llama-server's slots, from ``/props``."""
        try:
            url = f"{self.root_url}/props"
            props = get_json(self._client, self.endpoint, url, self._probe_timeout)
        except ModelError:
            return None
        return parse_props_n_ctx(props)

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
            "messages": [_message(m, self.kind.shows_tokens) for m in messages],
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
        if s.schema:  # the OpenAI API's structured outputs; the server enforces it
            from chatterm.structured import response_format

            body["response_format"] = response_format(
                s.schema, json_object=self.kind.name == "llama-cpp-python"
            )
        if s.grammar:
            if self.kind.name in ("llama-server", "llama-cpp-python"):
                body["grammar"] = s.grammar  # llama.cpp's servers take GBNF as is
            else:
                unapplied.append("grammar=<GBNF>")
        if s.think is not None:
            if self.kind.template_kwargs and "chat_template_kwargs" not in self._dropped:
                # llama-server and vLLM hand these to the model's chat template.
                body["chat_template_kwargs"] = {"enable_thinking": s.think}
            else:
                unapplied.append(f"think={'on' if s.think else 'off'}")
        if s.thinking_budget:
            # The server decides when thinking ends; a client cannot close the block.
            unapplied.append(f"thinking_budget={s.thinking_budget}")
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
        optional = set(self.kind.extra_fields.values()) | {"stream_options", "chat_template_kwargs"}
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
        endpoint = self.endpoint
        reader = ReplyReader(endpoint.name, max_tokens=sampling.max_tokens, key=self._key)
        held = KeyFilter(self._key)
        yield PromptReady(0, 0, self.n_ctx)
        deadline = time.monotonic() + endpoint.answer_timeout
        stream: StreamedRequest | None = None
        cancelled = ended = False
        try:
            stream, item = self._send(messages, sampling, top_logprobs, cancel, deadline)
            while item is not None:
                kind, value = item
                if kind == "line":
                    yield from held.push(reader.line(value))
                elif kind == "open":
                    reader.opened(value)
                elif kind == "redirected":
                    self._note(
                        "redirect",
                        f"endpoint {endpoint.name!r} redirects to {value}; set its base_url "
                        "to that address to save a round trip",
                    )
                elif kind == "end":
                    ended = True
                    yield from held.push(reader.end())
                    break
                elif kind == "timeout" and reader.finishing:
                    break  # the answer is whole; no usage report or [DONE] came
                else:
                    reader.fail(self._stream_error(kind, value, reader.tokens > 0))
                if reader.error or reader.complete:
                    break
                silence = FINISH_GRACE_S if reader.finishing else endpoint.timeout
                item = stream.get(cancel, silence, deadline)
            else:
                cancelled = True
            if reader.done and not ended:
                stream.drain()
        finally:
            if stream is not None:
                stream.close()
        yield from held.flush()
        yield from reader.close_reasoning()
        self.last_usage = reader.usage
        if top_logprobs and reader.tokens and not reader.saw_logprobs:
            self._note(
                "logprobs",
                f"endpoint {endpoint.name!r} ({self.kind.name}) sent no token "
                "probabilities, so none are shown",
            )
        if reader.overran:
            self._note(
                "max_tokens",
                f"endpoint {endpoint.name!r} ({self.kind.name}) ignores max_tokens; chatterm "
                "stops reading at the limit",
            )
        yield reader.finished(cancelled)

    def _stream_error(self, kind: str, value: Any, mid_answer: bool) -> str:
        """One line for an item that ends the answer with an error."""
        endpoint = self.endpoint
        name = endpoint.name
        if kind == "status":
            status, content = value
            return http_error(endpoint, self.model, status, error_detail(content, self._key))
        if kind == "moved":
            status, url = value
            return (
                f"endpoint {name!r} redirects requests to {url} (HTTP {status}), which would "
                "turn the POST into a GET; set its base_url to the new address"
            )
        if kind == "timeout":
            return (
                f"endpoint {name!r} sent no complete line for {endpoint.timeout:g} s; for a "
                f"slow server raise timeout under [endpoints.{name}] in config.toml"
            )
        if kind == "deadline":
            return (
                f"endpoint {name!r} did not finish the answer within {endpoint.answer_timeout:g}"
                f" s; for longer answers raise answer_timeout under [endpoints.{name}] in "
                "config.toml"
            )
        if isinstance(value, WireError):
            return f"endpoint {name!r} sent a malformed answer ({value})"
        return transport_error(endpoint, value, mid_answer=mid_answer)

    def _send(
        self,
        messages: list[ChatMessage],
        sampling: SamplingSettings,
        top_logprobs: int,
        cancel: threading.Event | None,
        deadline: float,
    ) -> tuple[StreamedRequest, tuple[str, Any] | None]:
        """Start the request and wait for its first item (``None`` if cancelled). A server
        that refuses optional fields by name (400/422) gets the request once more without."""
        url = f"{self.endpoint.base_url}/chat/completions"
        for attempt in range(2):
            body, unapplied = self.request_body(messages, sampling, top_logprobs)
            self._report_unapplied(unapplied)
            stream = StreamedRequest(self._client, url, body)
            item = stream.get(cancel, self.endpoint.timeout, deadline)
            if attempt == 0 and item is not None and item[0] == "status":
                status, content = item[1]
                refused = self._refused_fields(body, error_detail(content, None))
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
        name = self.endpoint.name
        try:
            status, content = fetch(self._client, "POST", url, self.endpoint.timeout, payload)
        except httpx.HTTPError as exc:
            raise RemoteServerError(transport_error(self.endpoint, exc, mid_answer=False)) from None
        except Deadline:
            raise RemoteServerError(
                f"endpoint {name!r} did not answer {url} within {self.endpoint.timeout:g} s"
            ) from None
        except WireError as exc:
            raise self._malformed(path, exc) from None
        if status in (404, 405, 501):
            raise self._unsupported(what)
        if status != 200:
            detail = error_detail(content, self._key)
            raise RemoteServerError(http_error(self.endpoint, self.model, status, detail))
        try:
            return json.loads(content)
        except ValueError:
            raise RemoteServerError(
                f"endpoint {self.endpoint.name!r} sent a non-JSON answer for {url}"
            ) from None

    def _malformed(self, path: str, exc: WireError) -> RemoteServerError:
        return RemoteServerError(
            self._redact(f"endpoint {self.endpoint.name!r} sent a malformed {path} answer ({exc})")
        )

    def render(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> RenderedPrompt:
        """The prompt as the server's chat template renders it, and its token ids
        (llama-server's ``/apply-template`` and ``/tokenize``).

        Raises :class:`RemoteFeatureError` on other servers, :class:`RemoteServerError` when
        the server fails or answers in the wrong shape."""
        if not self.kind.shows_tokens:
            raise self._unsupported("the rendered prompt")
        payload: dict[str, Any] = {
            "messages": [_message(m, True) for m in messages],
            "add_generation_prompt": add_generation_prompt,
        }
        if template_kwargs:
            payload["chat_template_kwargs"] = dict(template_kwargs)
        data = self._post_root("/apply-template", payload, "the rendered prompt")
        try:
            text = parse_template(data)
        except WireError as exc:
            raise self._malformed("/apply-template", exc) from None
        tokens = self._post_root(
            "/tokenize", {"content": text, "add_special": True, "parse_special": True}, "tokens"
        )
        try:
            ids = tuple(p.token_id for p in parse_tokenize(tokens))
        except WireError as exc:
            raise self._malformed("/tokenize", exc) from None
        return RenderedPrompt(text, ids)

    def tokenize(self, text: str, *, special: bool = False) -> list[TokenPiece]:
        """How the server's tokenizer splits ``text`` (llama-server's ``/tokenize``); errors
        as for :meth:`render`."""
        if not self.kind.shows_tokens:
            raise self._unsupported("tokens")
        payload = {
            "content": text,
            "add_special": False,
            "parse_special": special,
            "with_pieces": True,
        }
        data = self._post_root("/tokenize", payload, "tokens")
        try:
            pieces = parse_tokenize(data)
        except WireError as exc:
            raise self._malformed("/tokenize", exc) from None
        return [TokenPiece(p.token_id, p.piece, byte_fallback=p.byte_fallback) for p in pieces]

    def plan(self, messages: Sequence[ChatMessage], max_tokens: int) -> ContextPlan:
        """The plan by the shared policy, counted with the server's own template and
        tokenizer (llama-server only; others raise ``RemoteFeatureError``)."""
        return plan_context(messages, n_ctx=self.n_ctx, max_tokens=max_tokens, render=self.render)

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        """Nothing to do here: a server keeps (or drops) its own prompt cache."""
        return 0

    def close(self) -> None:
        self._client.close()
