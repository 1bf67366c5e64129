"""The block of a reply that is still being written, shown cheaply until it completes.

Until a block is complete the Markdown widget does not see it (see ``StreamSplitter``): it is
shown as text with the obvious Markdown marks applied (bold, italic, inline code, headings,
bullets, code fence lines). When the block completes, the Markdown widget renders it properly.

Cost is what matters here, because on 2 cores every millisecond the UI spends is taken from
the decode threads. The text is cut into chunks of :attr:`OpenBlock.CHUNK` lines: full chunks
are frozen (rendered once), and each batch repaints only the last chunk. That chunk's height
grows in steps of :attr:`OpenBlock.STEP` lines, so many batches cause no layout of the
transcript at all; a long code fence costs the same per batch at line 20 as at line 2,000.
"""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from chatterm.tui.streaming import closes_fence, opens_fence

CODE_STYLE = "$text-warning"
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*)$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_INLINE = re.compile(
    r"(?P<strong>\*\*|__)(?=\S)(?P<strong_text>.+?)(?<=\S)(?P=strong)"
    r"|`(?P<code>[^`\n]+)`"
    r"|\*(?=\S)(?P<em>[^*\n]+?)(?<=\S)\*"
)

Part = str | tuple[str, str]


def inline_parts(line: str) -> list[Part]:
    parts: list[Part] = []
    position = 0
    for match in _INLINE.finditer(line):
        if match.start() > position:
            parts.append(line[position : match.start()])
        if match.group("strong_text") is not None:
            parts.append((match.group("strong_text"), "bold"))
        elif match.group("code") is not None:
            parts.append((match.group("code"), CODE_STYLE))
        else:
            parts.append((match.group("em"), "italic"))
        position = match.end()
    if position < len(line):
        parts.append(line[position:])
    return parts


def format_lines(lines: list[str], fence: str | None = None) -> tuple[Content, str | None]:
    """``lines`` of an incomplete Markdown block as styled content, starting inside a fence
    marked ``fence`` (or outside any); returns the content and the fence state after them."""
    parts: list[Part] = []
    for index, line in enumerate(lines):
        if index:
            parts.append("\n")
        if fence is not None:
            if closes_fence(line, fence):
                fence = None
                parts.append((line, "dim"))
            else:
                parts.append((line, CODE_STYLE))
            continue
        opened = opens_fence(line)
        if opened:
            fence = opened
            parts.append((line, "dim"))
            continue
        heading = _HEADING.match(line)
        if heading:
            parts.append((heading.group(1), "bold"))
            continue
        bullet = _BULLET.match(line)
        if bullet:
            parts.append(bullet.group(1) + "• ")
            line = bullet.group(2)
        parts.extend(inline_parts(line))
    return Content.assemble(*parts), fence


def open_block_content(text: str) -> Content:
    """``text`` (an incomplete Markdown block) as styled content."""
    return format_lines(text.split("\n"))[0]


class OpenBlock(Vertical):
    """Frozen chunks and one live chunk of the open block's text."""

    CHUNK = 32
    """Lines per chunk."""
    STEP = 2
    """Lines the live chunk's height grows by at a time: a layout of the transcript at most
    every other line, and at most one blank row under the text (8 left up to 7 blank rows
    under a streaming reply, 6 of 16 on a 60x20 terminal)."""

    DEFAULT_CSS = """
    OpenBlock { height: auto; }
    OpenBlock > Static { height: auto; }
    """

    def __init__(self, *, classes: str | None = None) -> None:
        super().__init__(classes=classes)
        self._frozen_lines = 0  # lines in frozen chunks
        self._fence: str | None = None  # fence state after the frozen lines
        self._live_rows = 0

    def compose(self) -> ComposeResult:
        yield Static("", classes="live", markup=False)

    def show(self, text: str) -> None:
        """Show ``text``, which only ever grows until :meth:`clear`."""
        if not text:
            self.clear()
            return
        self.display = True
        live = self.query_one(".live", Static)
        lines = text.split("\n")
        while len(lines) - self._frozen_lines > self.CHUNK:
            chunk = lines[self._frozen_lines : self._frozen_lines + self.CHUNK]
            content, self._fence = format_lines(chunk, self._fence)
            self.mount(Static(content, classes="frozen", markup=False), before=live)
            self._frozen_lines += self.CHUNK
            self._live_rows = 0
        content, _ = format_lines(lines[self._frozen_lines :], self._fence)
        width = live.content_region.width or max(10, self.size.width)
        needed = content.get_height(live.styles, width)  # type: ignore[arg-type]
        rows = self._live_rows
        if needed > rows or needed < rows - self.STEP:
            rows = -(-needed // self.STEP) * self.STEP
            self._live_rows = rows
            live.styles.height = rows
            live.update(content)
        else:
            live.update(content, layout=False)

    def clear(self) -> None:
        """Forget the text (the block completed, or the reply ended)."""
        if self._frozen_lines:
            self.query(".frozen").remove()
        self._frozen_lines = 0
        self._fence = None
        self._live_rows = 0
        live = self.query_one(".live", Static)
        live.update("")
        live.styles.height = 0
        self.display = False
