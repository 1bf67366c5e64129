"""Where a streamed answer goes: plain text into a pipe, live Markdown onto a terminal."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol


class Writer(Protocol):
    def write(self, text: str) -> None: ...

    def close(self) -> None: ...


class PlainWriter:
    """Raw text, flushed per token so the next program in the pipe sees it at once."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.ended_with_newline = True

    def write(self, text: str) -> None:
        if text:
            self.stream.write(text)
            self.stream.flush()
            self.ended_with_newline = text.endswith("\n")

    def close(self) -> None:
        if not self.ended_with_newline:
            self.stream.write("\n")
            self.ended_with_newline = True
        self.stream.flush()


class NullWriter:
    """For ``--json``: the text is printed once, inside the JSON object."""

    def write(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


class MarkdownWriter:
    """Rich Markdown on a terminal, re-rendered at most every 80 ms (a re-parse per token would
    be quadratic in the reply's length)."""

    INTERVAL = 0.08

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console()
        self.text = ""
        self.live = Live(console=self.console, auto_refresh=False, vertical_overflow="visible")
        self.live.start()
        self.last = 0.0

    def _render(self) -> None:
        from rich.markdown import Markdown

        self.live.update(Markdown(self.text), refresh=True)
        self.last = time.monotonic()

    def write(self, text: str) -> None:
        self.text += text
        if time.monotonic() - self.last >= self.INTERVAL:
            self._render()

    def close(self) -> None:
        self._render()
        self.live.stop()


def make_writer(*, as_json: bool = False) -> Writer:
    if as_json:
        return NullWriter()
    if sys.stdout.isatty():
        return MarkdownWriter()
    return PlainWriter()


class ProbabilityWriter:
    """Each token coloured by its probability (``chatterm ask --show-probs`` on a terminal),
    with a legend on stderr at the end. Plain text, not Markdown: the colours are the point."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False, markup=False, emoji=False)
        self.ended_with_newline = True

    def write(self, text: str) -> None:
        self.write_token(text, None)

    def write_token(self, text: str, prob: float | None) -> None:
        from chatterm.lab.probs import band_colour

        if text:
            self.console.print(text, style=band_colour(prob) or "", end="", soft_wrap=True)
            self.console.file.flush()
            self.ended_with_newline = text.endswith("\n")

    def close(self) -> None:
        from rich.console import Console
        from rich.text import Text

        from chatterm.lab.probs import legend

        if not self.ended_with_newline:
            self.console.print()
            self.ended_with_newline = True
        key = Text("token probability: ", style="dim")
        for colour, label in legend():
            key.append("■ ", style=colour).append(label + "  ", style="dim")
        Console(stderr=True, highlight=False).print(key)


def make_probability_writer() -> Writer:
    """Coloured tokens on a terminal; in a pipe, plain text (colours would be noise there)."""
    if sys.stdout.isatty():
        return ProbabilityWriter()
    return PlainWriter()
