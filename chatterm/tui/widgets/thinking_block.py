"""A reasoning model's thinking, shown above its answer and folded to one line.

Open while the thinking streams (under a "thinking…" header), folded to "thought for 4.1 s,
312 tokens" when the answer starts; a click on the header or the message's ``t`` key opens or
folds it, and the chat screen remembers that choice for the conversation. A block that never
closed (the reply stopped or ran out of tokens while thinking) says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static


class ThinkingBlock(Widget):
    """The thinking of one reply; renders what it is given and posts :class:`Toggled`."""

    DEFAULT_CSS = """
    ThinkingBlock { height: auto; margin: 0 0 1 0; }
    ThinkingBlock > .thinking-header { color: $text-muted; text-style: italic; }
    ThinkingBlock > .thinking-header:hover { color: $text; }
    ThinkingBlock > .thinking-body {
        color: $text-muted; text-style: dim; padding: 0 0 0 2;
        border-left: vkey $foreground 20%;
    }
    """

    @dataclass
    class Toggled(Message):
        """The user opened or folded the block (click or key)."""

        block: ThinkingBlock
        open: bool

        @property
        def control(self) -> ThinkingBlock:
            return self.block

    def __init__(self, text: str = "", summary: str = "", *, open: bool = False) -> None:
        super().__init__(classes="thinking")
        self.text = text
        self.summary = summary
        self.streaming = False
        self.open = open
        self._started = 0.0  # when the thinking began streaming (monotonic)

    def compose(self) -> ComposeResult:
        yield Static(self._header(), classes="thinking-header")
        body = Static(self.text.strip("\n"), classes="thinking-body", markup=False)
        body.display = self.open
        yield body

    def _header(self) -> Content:
        arrow = "▾ " if self.open else "▸ "
        label = "thinking…" if self.streaming else (self.summary or "thought")
        return Content.assemble((arrow + label, "italic"))

    def _refresh(self) -> None:
        if not self.is_mounted:
            return
        self.query_one(".thinking-header", Static).update(self._header())
        body = self.query_one(".thinking-body", Static)
        body.display = self.open
        if self.open:
            body.update(self.text.strip("\n"))

    def start(self) -> None:
        """Thinking began streaming: open, under a "thinking…" header."""
        self.streaming, self.open = True, True
        self._started = time.monotonic()
        self.display = True
        self._refresh()

    def append(self, text: str) -> None:
        self.text += text
        if self.open and self.is_mounted:
            self.query_one(".thinking-body", Static).update(self.text.strip("\n"))

    def fold(self, summary: str, *, open: bool = False) -> None:
        """Thinking ended (the answer started, or the reply finished): one summary line,
        unless the user asked for thinking to stay open in this conversation. An empty
        ``summary`` says how long the thinking took on screen (the reply's stats, which
        count its tokens, replace it when the reply ends)."""
        if not summary:
            took = time.monotonic() - self._started if self._started else 0.0
            summary = f"thought for {took:.1f} s" if took else (self.summary or "thought")
        self.streaming = False
        self.summary = summary
        self.open = open
        self._refresh()

    def set_open(self, open: bool) -> None:
        self.open = open
        self._refresh()

    def toggle(self) -> None:
        self.set_open(not self.open)
        self.post_message(self.Toggled(self, self.open))

    def on_click(self, event: events.Click) -> None:
        event.stop()
        self.toggle()
