"""Reading one streamed chat-completions answer: SSE lines in, :class:`Token` events out, and at
the end a :class:`Finished` with stats measured here (time to first token, decode speed) and
the token counts from the server's usage report when it sent one."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from typing import Any

from chatterm.engine.events import Candidate, Finished, Stats, Token
from chatterm.engine.remote_http import error_detail


class ReplyReader:
    """The state of one answer as it streams. Feed it :meth:`line` for each SSE line and
    :meth:`end` when the body ends; ``error`` and ``done`` say when to stop reading."""

    def __init__(self, endpoint_name: str) -> None:
        self.endpoint_name = endpoint_name
        self.start = time.perf_counter()
        self.tokens = 0
        self.first_at = self.last_at = 0.0
        self.finish: str | None = None
        self.done = False  # the server sent [DONE]
        self.error: str | None = None
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None  # llama-server's own measurements
        self.saw_logprobs = False
        self._in_reasoning = False
        self._data: list[str] = []  # the data lines of the SSE event being read

    def line(self, line: str) -> Iterator[Token]:
        """One line of the event stream (a blank line ends an event)."""
        if line == "":
            if self._data:
                data, self._data = "\n".join(self._data), []
                yield from self._event(data)
        elif line.startswith("data:"):
            self._data.append(line[6:] if line.startswith("data: ") else line[5:])
        elif line.startswith("error:"):  # some servers send errors as their own event type
            self.error = f"endpoint {self.endpoint_name!r}: {error_detail(line[6:].strip())}"

    def end(self) -> Iterator[Token]:
        """The body ended: flush the last event; without a finish reason the answer is cut."""
        if self._data:
            data, self._data = "\n".join(self._data), []
            yield from self._event(data)
        if not self.done and self.finish is None and self.error is None:
            self.error = (
                f"endpoint {self.endpoint_name!r} ended the answer early "
                "(the stream closed without a finish reason)"
            )

    def close_reasoning(self) -> Iterator[Token]:
        if self._in_reasoning:
            self._in_reasoning = False
            yield Token("</think>", -1)

    def _event(self, data: str) -> Iterator[Token]:
        if data.strip() == "[DONE]":
            self.done = True
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            self.error = f"endpoint {self.endpoint_name!r} sent a malformed event: {data[:80]!r}"
            return
        if not isinstance(chunk, dict):
            return
        if chunk.get("error"):
            self.error = f"endpoint {self.endpoint_name!r}: {error_detail(json.dumps(chunk))}"
            return
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("timings"), dict):
            self.timings = chunk["timings"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
            content = delta.get("content") or ""
            if reasoning:  # thinking models: keep it, marked as a local model's output shows it
                if not self._in_reasoning:
                    self._in_reasoning = True
                    yield Token("<think>", -1)
                yield from self._tokens(reasoning, None)
            if content:
                yield from self.close_reasoning()
                logprobs = choice.get("logprobs") or {}
                entries = logprobs.get("content") if isinstance(logprobs, dict) else None
                yield from self._tokens(content, entries)
            if choice.get("finish_reason"):
                self.finish = str(choice["finish_reason"])

    def _tokens(self, text: str, entries: list[Any] | None) -> Iterator[Token]:
        now = time.perf_counter()
        if not self.first_at:
            self.first_at = now
        self.last_at = now
        entries = [e for e in entries or [] if isinstance(e, dict)]
        if entries:
            self.saw_logprobs = True
        # A chunk may carry several tokens (vLLM batches them): split when they add up.
        if len(entries) > 1 and "".join(str(e.get("token", "")) for e in entries) == text:
            for entry in entries:
                self.tokens += 1
                prob, top = probabilities(entry)
                yield Token(str(entry.get("token", "")), token_id(entry), prob, top)
            return
        self.tokens += max(1, len(entries))
        if entries:
            prob, top = probabilities(entries[0])
            yield Token(text, token_id(entries[0]), prob, top)
        else:
            yield Token(text, -1)

    def finished(self, cancelled: bool) -> Finished:
        end = time.perf_counter()
        usage = self.usage or {}
        generated = _count(usage.get("completion_tokens")) or self.tokens
        prompt_tokens = _count(usage.get("prompt_tokens"))
        details = usage.get("prompt_tokens_details")
        cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else 0
        cached = cached or _count((self.timings or {}).get("cache_n"))
        ttft = self.first_at - self.start if self.first_at else 0.0
        decode_s = self.last_at - self.first_at
        stats = Stats(
            prompt_tokens=prompt_tokens,
            cached_tokens=cached,
            generated_tokens=generated,
            ttft_s=ttft,
            # Measured here: includes the network and any queueing on the server.
            prompt_tps=(prompt_tokens - cached) / ttft if prompt_tokens and ttft > 0 else 0.0,
            decode_tps=(generated - 1) / decode_s if generated > 1 and decode_s > 0 else 0.0,
            total_s=end - self.start,
        )
        if self.error:
            return Finished("error", stats, self.error)
        if cancelled:
            return Finished("cancelled", stats)
        return Finished("length" if self.finish == "length" else "stop", stats)


def token_id(entry: Mapping[str, Any]) -> int:
    """llama-server sends token ids with logprobs; other servers send text only (-1)."""
    value = entry.get("id")
    return value if isinstance(value, int) else -1


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def probabilities(entry: Mapping[str, Any]) -> tuple[float | None, tuple[Candidate, ...]]:
    """``exp(logprob)`` for the chosen token and its top alternatives, as the local engine
    reports them."""

    def prob(value: Any) -> float | None:
        return math.exp(value) if isinstance(value, (int, float)) else None

    top = []
    for alt in entry.get("top_logprobs") or []:
        if isinstance(alt, dict) and (p := prob(alt.get("logprob"))) is not None:
            top.append(Candidate(token_id(alt), str(alt.get("token", "")), p))
    return prob(entry.get("logprob")), tuple(top)
