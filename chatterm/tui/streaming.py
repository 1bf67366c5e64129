"""Plain-Python helpers for streaming a reply: no Textual here, so they are cheap to test.

- :class:`TokenBatcher` coalesces tokens in the generation worker so the UI is touched about ten
  times a second instead of once per token (each touch costs the decode threads CPU time).
- :class:`StreamSplitter` decides which part of a growing reply is safe to hand to the Markdown
  widget: whole blocks only. The open block (an open code fence above all) is shown as plain,
  lightly formatted text until it closes: Textual re-parses and re-highlights the whole last
  block on every append, which is quadratic for a long fence, and every append re-lays out the
  transcript, which on 2 cores takes CPU time from the decode threads.
- :func:`code_blocks` finds the fenced code in a finished message, for copying.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

SETTLE_INTERVAL = 1.5
"""Seconds completed prose may wait before the Markdown widget gets it: each hand-over costs a
layout of the transcript (25–40 ms on 2 cores)."""

FLUSH_INTERVAL = 0.25
"""Seconds between token batches posted to the UI. Each batch costs the UI one frame (10–15 ms
at 120x40 on a 2-core machine) taken from the decode threads; scripts/tui_bench.py --intervals
measures the trade-off."""

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


class TokenBatcher:
    """Collects token texts and says when a batch is due.

    The batch is due when ``interval`` seconds have passed since the last one was taken, so a
    slow model still shows every token at once while a fast one is coalesced.
    """

    def __init__(
        self, interval: float = FLUSH_INTERVAL, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self.tokens = 0
        self.total_tokens = 0
        self._last: float | None = None  # the first token is shown at once
        self._thinking = False  # thinking tokens came and no answer yet

    def add(self, text: str, *, reasoning: bool = False) -> bool:
        """Add one token's text (``reasoning``: a thinking token's); return whether a batch
        should be posted now. The first answer token after thinking is due at once, so the
        thinking block folds as soon as the answer starts."""
        if reasoning:
            self.reasoning_parts.append(text)
            self._thinking = True
        else:
            if text and self._thinking:
                self._thinking = False
                self._last = None
            self.parts.append(text)
        self.tokens += 1
        self.total_tokens += 1
        return self._last is None or self.clock() - self._last >= self.interval

    def take_reasoning(self) -> str:
        """The thinking text collected since the last batch; call before :meth:`take`."""
        return "".join(self.reasoning_parts)

    def take(self) -> tuple[str, int]:
        """The text and token count collected since the last batch (may be empty)."""
        text, count = "".join(self.parts), self.tokens
        self.parts.clear()
        self.reasoning_parts.clear()
        self.tokens = 0
        self._last = self.clock()
        return text, count


class StreamSplitter:
    """Splits a streaming reply into *settled* Markdown and the *open block*.

    A block is complete after a blank line outside a code fence, or after the line that closes
    a fence. Feed fragments with :meth:`feed`; it returns the text of blocks that completed,
    to append to the Markdown widget (which then parses each block once). The rest
    (:attr:`tail`) — the block still being written, and completed prose held back for up to
    ``min_interval`` seconds — is shown as lightly formatted text: a repaint of one small widget
    per batch instead of a Markdown parse and a layout of the whole transcript. A closed code
    fence is released at once, so code gets its highlighting as soon as it is complete.
    """

    def __init__(
        self, min_interval: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.text = ""
        self.settled = 0  # text[:settled] was handed to the Markdown widget
        self.min_interval = min_interval
        self.clock = clock
        self._boundary = 0  # end of the last complete block
        self._scan = 0  # start of the first line not classified yet
        self._fence: str | None = None  # the marker of the open fence, e.g. "```"
        self._released_at: float | None = None

    @property
    def in_fence(self) -> bool:
        return self._fence is not None

    @property
    def tail(self) -> str:
        return self.text[self.settled :]

    def feed(self, fragment: str) -> str:
        """Add ``fragment``; return the newly settled text (often empty)."""
        self.text += fragment
        text = self.text
        fence_closed = False
        while (newline := text.find("\n", self._scan)) >= 0:
            line = text[self._scan : newline]
            end = newline + 1
            if self._fence is None:
                if opens_fence(line):
                    self._fence = opens_fence(line)
                elif not line.strip():
                    self._boundary = end
            elif closes_fence(line, self._fence):
                self._fence = None
                self._boundary = end
                fence_closed = True
            self._scan = end
        if self._boundary <= self.settled:
            return ""
        now = self.clock()
        recent = self._released_at is not None and now - self._released_at < self.min_interval
        if recent and not fence_closed:
            return ""
        out = text[self.settled : self._boundary]
        self.settled = self._boundary
        self._released_at = now
        return out


def opens_fence(line: str) -> str | None:
    """The fence marker if ``line`` opens a code fence (a backtick fence's info string may not
    contain backticks, per CommonMark)."""
    match = _FENCE_OPEN.match(line)
    if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
        return match.group(1)
    return None


def closes_fence(line: str, fence: str) -> bool:
    stripped = line.strip()
    return (
        len(line) - len(line.lstrip(" ")) <= 3
        and len(stripped) >= len(fence)
        and stripped == fence[0] * len(stripped)
    )


def code_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks in ``text`` (an unclosed last fence included)."""
    blocks: list[str] = []
    fence: str | None = None
    current: list[str] = []
    for line in text.splitlines():
        if fence is None:
            if opens_fence(line):
                fence, current = opens_fence(line), []
        elif closes_fence(line, fence):
            blocks.append("\n".join(current))
            fence = None
        else:
            current.append(line)
    if fence is not None and current:
        blocks.append("\n".join(current))
    return blocks
