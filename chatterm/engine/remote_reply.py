"""Reading one chat-completions answer: lines in, :class:`Token` events out, and at the end a
:class:`Finished` with stats measured here (time to first token, decode speed) and the token
counts from the server's usage report when it sent one.

The body is read as Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html):
``data:`` lines (several make one event), comments and keep-alives (``:``) skipped, a blank
line ends an event, ``data: [DONE]`` ends the answer. Servers stray from that, and each way is
handled here: a body that is one JSON completion (a server ignoring ``stream: true``), an HTML
page sent with status 200, events without the blank line between them, an ``error`` object
(or ``event: error``) in the middle of an answer, a finish reason with neither ``[DONE]`` nor
the connection closing (the finish chunk ends the answer; the caller waits briefly for a usage
chunk), and a server that ignores ``max_tokens`` (cut here at the limit).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from chatterm.engine.events import Finished, Stats, Token
from chatterm.engine.reasoning import ReasoningTracker
from chatterm.engine.remote_http import MAX_LINE, REDACTED, error_detail, html_title, redact
from chatterm.engine.remote_wire import Chunk, Delta, LogprobEntry, Usage, WireError, parse_chunk


class ReplyReader:
    """The state of one answer as it streams. Feed it :meth:`line` for each line and
    :meth:`end` when the body ends; stop reading once ``error`` is set or ``complete`` is
    true; after ``finishing`` turns true, only a usage report or ``[DONE]`` is still awaited.

    The API key ``key`` is redacted from every message built from the server's words.
    ``max_tokens`` is enforced here too: a server that ignores it is cut off.
    """

    def __init__(self, endpoint_name: str, *, max_tokens: int = 0, key: str | None = None) -> None:
        self.endpoint_name = endpoint_name
        self.max_tokens = max_tokens
        self.key = key
        self.start = time.perf_counter()
        self.tokens = 0
        self.first_at = self.last_at = 0.0
        self.finish: str | None = None
        self.done = False  # the server sent [DONE]
        self.overran = False  # more tokens came than max_tokens allows
        self.error: str | None = None
        self.usage: Usage | None = None
        self.cached_tokens = 0
        self.saw_logprobs = False
        # Thinking arrives apart (``reasoning_content`` / ``reasoning`` deltas) or, from
        # servers that do not parse it, as a ``<think>`` block inside ``content``: both come
        # out as tokens marked ``reasoning``.
        self.reasoning = ReasoningTracker()
        self._data: list[str] = []  # the data lines of the SSE event being read
        self._event_type = ""
        self._mode = ""  # "" until the first line says: "sse" or "body"
        self._body: list[str] = []
        self._body_size = 0

    @property
    def finishing(self) -> bool:
        """The answer is whole (a finish reason came, or the token limit was reached)."""
        return self.finish is not None or (0 < self.max_tokens <= self.tokens)

    @property
    def complete(self) -> bool:
        return self.done or self.overran

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = redact(message, self.key)

    # -- lines ---------------------------------------------------------------------------

    def opened(self, content_type: str) -> None:
        """The response's Content-Type: an HTML page is no answer whatever its status."""
        if "html" in content_type.lower():
            self._mode = "html"

    def line(self, line: str) -> Iterator[Token]:
        """One line of the body (a blank line ends an SSE event)."""
        if not self._mode and line.strip():
            stripped = line.lstrip()
            self._mode = "body" if stripped.startswith(("{", "[")) else "sse"
            if stripped.startswith("<"):
                self._mode = "html"
        if self._mode in ("body", "html"):
            self._body_size += len(line) + 1
            if self._body_size > MAX_LINE:
                self.fail(f"endpoint {self.endpoint_name!r} sent an answer over 16 MB")
            else:
                self._body.append(line)
            if self._mode == "html" and ("</title>" in line.lower() or self._body_size > 65536):
                self._html_page()  # enough to name it: no need to wait for the end
            return
        if line == "":
            yield from self._dispatch()
            return
        if line.startswith(":"):
            return  # a comment, or a keep-alive
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            if self._data and _whole_json(self._data):  # no blank line between events
                yield from self._dispatch()
            self._data.append(value)
        elif field == "event":
            self._event_type = value.strip()
        elif field == "error":  # some servers send errors as a field of their own
            self.fail(f"endpoint {self.endpoint_name!r}: {error_detail(value.strip(), self.key)}")

    def end(self) -> Iterator[Token]:
        """The body ended: flush the last event; without a finish reason the answer is cut."""
        if self._mode == "html":
            self._html_page()
        elif self._mode == "body":
            yield from self._whole_body()
        yield from self._dispatch()
        if not self.done and self.finish is None and self.error is None and not self.overran:
            self.fail(
                f"endpoint {self.endpoint_name!r} ended the answer early "
                "(the stream closed without a finish reason)"
            )

    def _html_page(self) -> None:
        page = html_title("\n".join(self._body)) or "an HTML page"
        self.fail(
            f"endpoint {self.endpoint_name!r} answered with {page} instead of an event "
            "stream; check its base_url (a proxy or login page?)"
        )

    def _whole_body(self) -> Iterator[Token]:
        """A server that ignored ``stream: true``: the body is one ``chat.completion``."""
        try:
            bodies = [json.loads("\n".join(self._body))]
        except ValueError:
            try:  # one JSON chunk per line (NDJSON) instead of SSE events
                bodies = [json.loads(line) for line in self._body if line.strip()]
            except ValueError:
                self.fail(f"endpoint {self.endpoint_name!r} sent a body that is not JSON")
                return
        for data in bodies:
            choices = data.get("choices") if isinstance(data, dict) else None
            first = choices[0] if isinstance(choices, list) and choices else None
            whole = isinstance(first, dict) and "message" in first
            yield from self._chunk(data, "message" if whole else "delta")
            if whole and self.error is None:
                self.finish = self.finish or "stop"
            if self.error or self.overran:
                return

    def _dispatch(self) -> Iterator[Token]:
        data, event_type = "\n".join(self._data), self._event_type
        self._data, self._event_type = [], ""
        if not data:
            return
        if data.strip() == "[DONE]":
            self.done = True
            return
        try:
            decoded = json.loads(data)
        except ValueError:
            shown = redact(data, self.key)[:80]
            self.fail(f"endpoint {self.endpoint_name!r} sent a malformed event: {shown!r}")
            return
        if event_type == "error":
            self.fail(f"endpoint {self.endpoint_name!r}: {error_detail(data, self.key)}")
            return
        yield from self._chunk(decoded, "delta")

    def _chunk(self, data: object, field: str) -> Iterator[Token]:
        try:
            chunk: Chunk = parse_chunk(data, field=field)
        except WireError as exc:
            self.fail(f"endpoint {self.endpoint_name!r} sent a malformed chunk ({exc})")
            return
        if chunk.error is not None:
            self.fail(f"endpoint {self.endpoint_name!r}: {error_detail(chunk.error, self.key)}")
            return
        if chunk.usage is not None:
            self.usage = chunk.usage
        self.cached_tokens = chunk.cached_tokens or self.cached_tokens
        if chunk.delta is not None:
            yield from self.delta(chunk.delta)

    # -- the one place a delta becomes events --------------------------------------------

    def delta(self, delta: Delta) -> Iterator[Token]:
        """Turn what one chunk adds into ``Token`` events. Text after the answer finished is
        dropped, and text past ``max_tokens`` ends the answer (the server ignored it)."""
        if (delta.content or delta.reasoning) and self.finishing:
            if self.finish is None:
                self.overran = True
            return
        if delta.reasoning:
            self._count_time()
            self.tokens += 1
            yield from self.reasoning.reasoning_text(delta.reasoning)
        if delta.content:
            yield from self._tokens(delta.content, delta.logprobs)
        if delta.finish_reason:
            self.finish = delta.finish_reason

    def close_reasoning(self) -> Iterator[Token]:
        """Release text held back while telling a ``<think>`` marker apart (at the end)."""
        yield from self.reasoning.finish()

    def _count_time(self) -> None:
        now = time.perf_counter()
        if not self.first_at:
            self.first_at = now
        self.last_at = now

    def _tokens(self, text: str, entries: tuple[LogprobEntry, ...]) -> Iterator[Token]:
        self._count_time()
        if entries:
            self.saw_logprobs = True
        # A chunk may carry several tokens (vLLM batches them): split when they add up.
        if len(entries) > 1 and "".join(e.token for e in entries) == text:
            for entry in entries:
                self.tokens += 1
                yield from self.reasoning.token(
                    entry.token, entry.token_id, entry.prob, entry.top, counted=True
                )
            return
        self.tokens += max(1, len(entries))
        if entries:
            first = entries[0]
            yield from self.reasoning.token(
                text, first.token_id, first.prob, first.top, counted=True
            )
        else:
            yield from self.reasoning.token(text, -1, counted=True)

    # -- the end -------------------------------------------------------------------------

    def finished(self, cancelled: bool) -> Finished:
        end = time.perf_counter()
        usage = self.usage or Usage()
        generated = usage.completion_tokens or self.tokens
        if self.overran:
            generated = self.tokens
        prompt_tokens = usage.prompt_tokens
        cached = usage.cached_tokens or self.cached_tokens
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
            **self.reasoning.stats_fields(),
        )
        if self.error:
            return Finished("error", stats, self.error)
        if cancelled:
            return Finished("cancelled", stats)
        length = self.finish == "length" or self.overran or self.finish is None
        return Finished("length" if length else "stop", stats)


class KeyFilter:
    """Keeps the API key out of the answer's text, should a server echo it: tokens that might
    begin the key are held back until the next ones show whether they do (so output lags only
    while the text ends in a prefix of the key); a key that appears is replaced, its tokens
    merged into one. Keys shorter than 4 characters pass through."""

    def __init__(self, key: str | None) -> None:
        self.key = key if key and len(key) >= 4 else None
        self._held: list[Token] = []

    def push(self, tokens: Iterator[Token]) -> Iterator[Token]:
        for token in tokens:
            if self.key is None:
                yield token
                continue
            self._held.append(token)
            text = "".join(t.text for t in self._held)
            if self.key in text:
                self._held = []
                yield Token(text.replace(self.key, REDACTED), -1, reasoning=token.reasoning)
                continue
            keep = next(
                (n for n in range(min(len(text), len(self.key) - 1), 0, -1)
                 if text.endswith(self.key[:n])),
                0,
            )  # fmt: skip
            cut, offset = len(text) - keep, 0
            while self._held and offset + len(self._held[0].text) <= cut:
                offset += len(self._held[0].text)
                yield self._held.pop(0)

    def flush(self) -> Iterator[Token]:
        held, self._held = self._held, []
        yield from held


def _whole_json(lines: list[str]) -> bool:
    try:
        json.loads("\n".join(lines))
    except ValueError:
        return False
    return True
