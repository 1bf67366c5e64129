"""Plain-Python helpers for streaming a reply: no Textual here, so they are cheap to test.

- :class:`TokenBatcher` coalesces tokens in the generation worker so the UI is touched about ten
  times a second instead of once per token (each touch costs the decode threads CPU time).
- :class:`StreamSplitter` decides which part of a growing reply is safe to hand to the Markdown
  widget. An open code fence is shown as plain text until it closes: Textual re-parses and
  re-highlights the whole last block on every append, which is quadratic for a long fence.
- :func:`code_blocks` finds the fenced code in a finished message, for copying.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

FLUSH_INTERVAL = 0.1
"""Seconds between token batches posted to the UI (measured: see scripts/tui_bench.py)."""

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
        self.tokens = 0
        self.total_tokens = 0
        self._last: float | None = None  # the first token is shown at once

    def add(self, text: str) -> bool:
        """Add one token's text; return whether a batch should be posted now."""
        self.parts.append(text)
        self.tokens += 1
        self.total_tokens += 1
        return self._last is None or self.clock() - self._last >= self.interval

    def take(self) -> tuple[str, int]:
        """The text and token count collected since the last batch (may be empty)."""
        text, count = "".join(self.parts), self.tokens
        self.parts.clear()
        self.tokens = 0
        self._last = self.clock()
        return text, count


class StreamSplitter:
    """Splits a streaming reply into *settled* Markdown and an *open tail* shown as plain text.

    Feed fragments with :meth:`feed`; it returns the text that became safe to append to the
    Markdown widget. The tail (:attr:`tail`) is an open code fence (from its opening line on) or a
    last line that might still become one (it starts with a backtick or tilde).
    """

    def __init__(self) -> None:
        self.text = ""
        self.settled = 0  # text[:settled] was handed to the Markdown widget
        self._scan = 0  # start of the first line not classified yet
        self._fence: str | None = None  # the marker of the open fence, e.g. "```"
        self._fence_start = 0

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
        while (newline := text.find("\n", self._scan)) >= 0:
            line = text[self._scan : newline]
            if self._fence is None:
                match = _FENCE_OPEN.match(line)
                # A backtick fence's info string may not contain backticks (CommonMark).
                if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                    self._fence = match.group(1)
                    self._fence_start = self._scan
            elif _closes(line, self._fence):
                self._fence = None
            self._scan = newline + 1
        if self._fence is not None:
            boundary = self._fence_start
        else:
            last_line = text[self._scan :].lstrip(" ")
            boundary = self._scan if last_line[:1] in ("`", "~") else len(text)
        if boundary <= self.settled:
            return ""
        out = text[self.settled : boundary]
        self.settled = boundary
        return out


def _closes(line: str, fence: str) -> bool:
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
            match = _FENCE_OPEN.match(line)
            if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
                fence, current = match.group(1), []
        elif _closes(line, fence):
            blocks.append("\n".join(current))
            fence = None
        else:
            current.append(line)
    if fence is not None and current:
        blocks.append("\n".join(current))
    return blocks
