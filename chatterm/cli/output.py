"""Where a streamed answer goes: the output sinks of ``chatterm ask``, and the one-line status
shown on stderr while the model loads or thinks.

A sink takes every engine event (``on_event``) and is closed once (``close``), also when the
user interrupts. :class:`TextSink` writes the answer (plain text into a pipe, live Markdown onto a
terminal, or tokens coloured by probability); :class:`StatusSink` keeps stderr's status line and
notes; :class:`TokenLog` keeps the tokens for ``--json --logprobs``. :func:`make_sinks` picks
them. The engine loop is ``chatterm.cli.ask.stream``; saving is the ``Turn``'s.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chatterm.engine.base import Engine
    from chatterm.engine.events import Event, Token

DUMB_TERMS = ("dumb", "unknown")
"""``TERM`` values of terminals that cannot take escape codes (as rich decides)."""


def ansi_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal that understands ANSI escape codes: a tty whose ``TERM``
    is not ``dumb`` (Emacs' shell, some CI logs). Anything else gets plain text."""
    try:
        tty = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
    return tty and os.environ.get("TERM", "").lower() not in DUMB_TERMS


class StatusLine:
    """A one-line dim status on stderr ("loading model…"), erased before anything else is
    written there; only on a terminal that takes escape codes."""

    def __init__(self, enabled: bool | None = None) -> None:
        self.enabled = ansi_terminal(sys.stderr) if enabled is None else enabled
        self.visible = False

    def show(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(f"\r\x1b[2K\x1b[2m{text}\x1b[0m")
            sys.stderr.flush()
            self.visible = True

    def clear(self) -> None:
        if self.visible:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
            self.visible = False


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


def settled_length(text: str) -> int:
    """How many leading characters of a Markdown text streamed so far can no longer change how
    they render: every top-level block before the last two. (The last block is still being
    written; the new line below it can still join it: ``3`` becomes ``3. item`` and continues
    a list, ``---`` turns a paragraph into a heading.) Block boundaries come from markdown-it,
    the parser rich renders with."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable(["strikethrough", "table"]).parse(text)
    starts = [t.map[0] for t in tokens if t.level == 0 and t.map and t.nesting >= 0]
    if len(starts) < 3:
        return 0
    lines = text.splitlines(keepends=True)
    return sum(len(line) for line in lines[: starts[-2]])


def _text(line: list[Any]) -> str:
    return "".join(segment.text for segment in line)


@contextlib.contextmanager
def _no_interrupt() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) back while the screen and the writer's count of printed lines
    change together: an interrupt between the two would print lines twice or lose them. The
    interrupt is delivered right after."""
    main = threading.current_thread() is threading.main_thread()
    if not main or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


class _EchoOff:
    """The terminal's echo of typed keys off while a live area is drawn: an echoed ``^C`` or
    Enter moves the cursor under rich's feet, and the next redraw leaves a copy of a line
    behind. Typed keys still reach the shell afterwards."""

    def __init__(self) -> None:
        self.saved: Any = None

    def start(self) -> None:
        try:
            import termios

            fd = sys.stdout.fileno()  # the terminal the answer is drawn on
            if not os.isatty(fd):
                return
            self.saved = (fd, termios.tcgetattr(fd))
            quiet = termios.tcgetattr(fd)
            quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
            termios.tcsetattr(fd, termios.TCSANOW, quiet)
        except (ImportError, AttributeError, ValueError, OSError):
            self.saved = None
            return
        atexit.register(self.restore)  # whatever ends the process, the echo comes back

    def restore(self) -> None:
        if self.saved is None:
            return
        import termios

        fd, attributes = self.saved
        self.saved = None
        with contextlib.suppress(ValueError, OSError):
            termios.tcsetattr(fd, termios.TCSANOW, attributes)


class _Lines:
    """Rendered lines (lists of rich segments) as a renderable: a newline between them, and
    after the last one too when ``end``."""

    def __init__(self, lines: list[list[Any]], *, end: bool = False) -> None:
        self.lines = lines
        self.end = end

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.segment import Segment

        for number, line in enumerate(self.lines):
            yield from line
            if self.end or number < len(self.lines) - 1:
                yield Segment.line()


class MarkdownWriter:
    """Rich Markdown streamed onto a terminal, leaving exactly one copy of the answer however
    long it grows.

    A live area (rich's ``Live``) shows only what can still change: the last two top-level
    blocks. Blocks before them are printed above it once, for good, and never rendered again,
    so a refresh costs the open blocks only. When the open blocks outgrow the screen, their top
    lines are printed for good too: a live area taller than the screen cannot be redrawn (the
    cursor cannot move into the scrollback), and each redraw would leave a copy behind.
    Refreshes come at most every 80 ms. The live area starts with the first text, so a status
    line written to stderr before it is not captured by rich's redirection of stderr.
    """

    INTERVAL = 0.08

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        self.console = console or Console()
        self.text = ""
        self.start = 0  # text[:start] is printed for good, as whole blocks
        self.printed = 0  # lines of the rendering of text[start:] already printed for good
        self.live: Any = None
        self.last = 0.0
        self.echo = _EchoOff()

    def write(self, text: str) -> None:
        if not text:
            return
        self.text += text
        if time.monotonic() - self.last >= self.INTERVAL:
            with _no_interrupt():
                self._refresh()

    def close(self) -> None:
        with _no_interrupt():
            if self.live is not None or self.text:
                self._refresh()
                self.live.stop()
                self.live = None
            self.echo.restore()

    def _render(self, text: str) -> list[list[Any]]:
        """``text`` as rendered lines, without blank lines at the start: rich begins a
        document that opens with a list with one, and a block rendered on its own must match
        its rendering after the blocks before it."""
        from rich.markdown import Markdown

        lines = self.console.render_lines(Markdown(text), self.console.options, pad=False)
        while lines and not _text(lines[0]):
            lines.pop(0)
        return lines

    def _refresh(self) -> None:
        from rich.live import Live

        if self.live is None:
            self.live = Live(console=self.console, auto_refresh=False, vertical_overflow="visible")
            self.echo.start()
            self.live.start()
        final: list[list[Any]] = []  # lines to print for good, above the live area
        settled = settled_length(self.text[self.start :])
        if settled:
            # Settled blocks, then the blank line rich puts between blocks.
            done = self._render(self.text[self.start : self.start + settled])
            while done and not _text(done[-1]):
                done.pop()
            done.append([])
            final += done[self.printed :]
            self.printed = max(0, self.printed - len(done))
            self.start += settled
        lines = self._render(self.text[self.start :])
        room = max(1, self.console.size.height - 2)
        if len(lines) - self.printed > room:
            cut = len(lines) - room
            final += lines[self.printed : cut]
            self.printed = cut
        # The live area takes its new lines first: what is printed while it is shown goes
        # above it, and the area is drawn again below, so it must not be the old, taller one.
        self.live.update(_Lines(lines[self.printed :]), refresh=not final)
        if final:
            self.console.print(_Lines(final, end=True))
        self.last = time.monotonic()


def make_writer(*, as_json: bool = False, plain: bool = False) -> Writer:
    """Nothing for ``--json``; Markdown on a terminal unless ``plain`` (a reply shaped by a
    schema or grammar is data, printed as the model wrote it); plain text in a pipe."""
    if as_json:
        return NullWriter()
    if ansi_terminal(sys.stdout) and not plain:
        return MarkdownWriter()
    return PlainWriter()


NO_COLOR_STYLES = (
    ("none", "plain"),
    ("underline", "underlined"),
    ("bold", "bold"),
    ("reverse", "reversed"),
)
"""The probability bands' styles where colours are off (``NO_COLOR``), likeliest first:
attributes every terminal shows, each with the word the legend uses for it."""


class ProbabilityWriter:
    """Each token coloured by its probability (``chatterm ask --show-probs`` on a terminal),
    with a legend on stderr at the end. Plain text, not Markdown: the colours are the point.
    With ``NO_COLOR`` set the bands are text attributes instead (plain, underlined, bold and
    underlined, reversed), and the legend shows them the same way."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(highlight=False, markup=False, emoji=False)
        self.ended_with_newline = True

    def style(self, prob: float | None) -> str:
        from chatterm.lab.probs import BANDS, band_colour

        colour = band_colour(prob)
        if not colour or not self.console.no_color:
            return colour or ""
        return NO_COLOR_STYLES[[c for _, c, _ in BANDS].index(colour)][0]

    def write(self, text: str) -> None:
        self.write_token(text, None)

    def write_token(self, text: str, prob: float | None) -> None:
        if text:
            self.console.print(text, style=self.style(prob), end="", soft_wrap=True)
            self.console.file.flush()
            self.ended_with_newline = text.endswith("\n")

    def close(self) -> None:
        from rich.console import Console
        from rich.text import Text

        from chatterm.lab.probs import BANDS, legend

        if not self.ended_with_newline:
            self.console.print()
            self.ended_with_newline = True
        key = Text("token probability: ", style="dim")
        if self.console.no_color:
            for (_, _, label), (style, word) in zip(BANDS, NO_COLOR_STYLES, strict=True):
                key.append(f"{label} {word}", style=style).append("  ")
        else:
            for colour, label in legend():
                key.append("■ ", style=colour).append(label + "  ", style="dim")
        Console(stderr=True, highlight=False).print(key)


def make_probability_writer() -> Writer:
    """Coloured tokens on a terminal; in a pipe or on a dumb terminal, plain text (colours
    would be noise there)."""
    if ansi_terminal(sys.stdout):
        return ProbabilityWriter()
    return PlainWriter()


class LazyWriter:
    """A writer made by ``factory`` when the first text arrives (nothing at all when none
    does), so nothing holds the terminal while the status line and the thinking show."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.writer: Any = None

    def _get(self) -> Any:
        if self.writer is None:
            self.writer = self.factory()
        return self.writer

    def write(self, text: str) -> None:
        if text:
            self._get().write(text)

    def write_token(self, text: str, prob: float | None) -> None:
        if text:
            writer = self._get()
            if hasattr(writer, "write_token"):
                writer.write_token(text, prob)
            else:  # colours fell back to plain text (a pipe, a dumb terminal)
                writer.write(text)

    def close(self) -> None:
        self._get().close()


class ThinkingDisplay(Protocol):
    """Where a reasoning model's thinking goes while ``ask`` streams (never stdout)."""

    def write(self, text: str) -> None: ...

    def end(self, summary: str) -> None: ...


class NoThinking:
    """Thinking not shown (a pipe without ``--show-thinking``, or ``--json``)."""

    def write(self, text: str) -> None:
        pass

    def end(self, summary: str) -> None:
        pass


class PlainThinking:
    """``--show-thinking`` off a terminal: the thinking as plain text on stderr, then a
    blank line, so stderr reads like the terminal would show it."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.wrote = False

    def write(self, text: str) -> None:
        if text:
            if not self.wrote:
                text = text.lstrip("\n")
            self.stream.write(text)
            self.stream.flush()
            self.wrote = self.wrote or bool(text)

    def end(self, summary: str) -> None:
        if self.wrote:
            self.stream.write(f"\n[{summary}]\n\n")
            self.stream.flush()
            self.wrote = False


class TerminalThinking:
    """On a terminal: the thinking streams dimmed under a "thinking…" header (its last lines
    only, so the live area never outgrows the screen), and collapses to one line ("thought for
    4.1 s, 312 tokens") when the answer starts. ``keep``: leave the whole thinking printed
    (``--show-thinking``) instead of collapsing it."""

    INTERVAL = 0.08

    def __init__(self, *, keep: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.keep = keep
        self.text = ""
        self.live: Any = None
        self.last = 0.0

    def _renderable(self) -> Any:
        from rich.text import Text

        height = max(3, min(12, self.console.size.height - 4))
        lines = self.text.strip("\n").splitlines()[-height:]
        body = Text("\n".join(lines), style="dim")
        return Text("thinking…\n", style="dim italic") + body

    def write(self, text: str) -> None:
        if not text:
            return
        if self.keep:
            self.console.print(text, style="dim", end="", soft_wrap=True, markup=False)
            return
        if self.live is None:
            from rich.live import Live

            self.live = Live(
                console=self.console,
                auto_refresh=False,
                transient=True,
                vertical_overflow="crop",
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self.live.start()
        self.text += text
        if time.monotonic() - self.last >= self.INTERVAL:
            self.live.update(self._renderable(), refresh=True)
            self.last = time.monotonic()

    def end(self, summary: str) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        elif self.keep:
            self.console.print()
        self.console.print(f"▸ {summary}", style="dim italic", markup=False, highlight=False)


def make_thinking_display(*, show: bool, as_json: bool) -> ThinkingDisplay:
    """The live thinking on a terminal; with ``--show-thinking`` off one, plain text on stderr;
    otherwise nothing (stdout never carries thinking)."""
    if as_json:
        return PlainThinking() if show else NoThinking()
    if ansi_terminal(sys.stdout) and ansi_terminal(sys.stderr):
        return TerminalThinking(keep=show)
    return PlainThinking() if show else NoThinking()


# -- sinks ----------------------------------------------------------------------------------


class Sink(Protocol):
    def on_event(self, event: Event) -> None: ...

    def close(self) -> None: ...


class StatusSink:
    """The status line says "thinking…" until the first token; the prompt's notes (old
    messages dropped, a system prompt folded into the user turn) go to stderr."""

    def __init__(self, status: StatusLine) -> None:
        self.status = status
        self.status.show("thinking…")

    def on_event(self, event: Event) -> None:
        from chatterm.engine.events import PromptReady, Token

        if isinstance(event, Token):
            self.status.clear()
        elif isinstance(event, PromptReady):
            for note in event.notes:  # e.g. the system prompt folded into the user turn
                print(f"chatterm: note: {note}", file=sys.stderr)
            if event.dropped_messages:
                print(
                    f"chatterm: note: dropped {event.dropped_messages} old messages to fit "
                    f"the {event.n_ctx}-token context window",
                    file=sys.stderr,
                )

    def close(self) -> None:
        self.status.clear()


class TextSink:
    """The answer's text into a :class:`Writer`; with ``colour``, each token coloured by its
    probability (a :class:`ProbabilityWriter`)."""

    def __init__(self, writer: Writer, *, colour: bool = False) -> None:
        self.writer = writer
        self.colour = colour

    def on_event(self, event: Event) -> None:
        from chatterm.engine.events import Token

        if isinstance(event, Token) and not event.reasoning:  # thinking never reaches stdout
            if self.colour:
                self.writer.write_token(event.text, event.prob)  # type: ignore[attr-defined]
            else:
                self.writer.write(event.text)

    def close(self) -> None:
        self.writer.close()


class ThinkingSink:
    """A reasoning model's thinking into a :class:`ThinkingDisplay` (never stdout), folded to
    its summary line ("thought for 4.1 s, 312 tokens") when the answer starts or the reply
    ends; ``text`` is the thinking."""

    def __init__(self, display: ThinkingDisplay) -> None:
        self.display = display
        self.parts: list[str] = []
        self.tokens = 0
        self.started = 0.0
        self.folded = False
        self.answered = False

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def on_event(self, event: Event) -> None:
        from chatterm.engine.events import Finished, Token

        if isinstance(event, Token) and event.reasoning:
            if not self.parts:
                self.started = time.perf_counter()
            self.parts.append(event.text)
            self.tokens += event.token_id != -1 or bool(event.text)
            self.display.write(event.text)
        elif isinstance(event, Token) and event.text:
            self.answered = True
            self._fold()
        elif isinstance(event, Finished):
            stats = event.stats
            self._fold(
                stats.reasoning_tokens or self.tokens, stats.reasoning_s, stats.reasoning_open
            )

    def _fold(self, tokens: int = 0, seconds: float = 0.0, open_block: bool = False) -> None:
        from chatterm.engine.reasoning import summary

        if self.parts and not self.folded:
            self.folded = True
            took = seconds or time.perf_counter() - self.started
            self.display.end(summary(tokens or self.tokens, took, open_block=open_block))

    def close(self) -> None:
        self._fold(open_block=not self.answered)  # stopped while thinking: it never closed


class TokenLog:
    """The generated tokens, for the per-token probabilities of ``--json --logprobs``."""

    def __init__(self) -> None:
        self.tokens: list[Token] = []

    def on_event(self, event: Event) -> None:
        from chatterm.engine.events import Token

        if isinstance(event, Token):
            self.tokens.append(event)

    def close(self) -> None:
        pass


class Sinks:
    """Every sink of one answer, fed in order, and the answer's text."""

    def __init__(self, sinks: list[Sink], engine: Engine, log: TokenLog | None = None) -> None:
        self.sinks = sinks
        self.engine = engine
        self.log = log
        self.parts: list[str] = []
        self.thinking = next((s for s in sinks if isinstance(s, ThinkingSink)), None)
        self._closed = False

    def on_event(self, event: Event) -> None:
        from chatterm.engine.events import Token

        if isinstance(event, Token) and not event.reasoning:
            self.parts.append(event.text)
        for sink in self.sinks:
            sink.on_event(event)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            for sink in self.sinks:
                sink.close()

    @property
    def text(self) -> str:
        """The answer (without the thinking)."""
        return "".join(self.parts)

    @property
    def reasoning(self) -> str:
        """A reasoning model's thinking, kept apart from the answer."""
        return self.thinking.text if self.thinking is not None else ""

    def records(self) -> list[dict[str, Any]] | None:
        """The tokens' probability records (JSON-ready), when they were kept."""
        if self.log is None or not self.log.tokens:
            return None
        from chatterm.lab.records import token_records

        return token_records(self.log.tokens, self.engine)


def make_sinks(
    status: StatusLine,
    *,
    as_json: bool,
    colour: bool,
    record: bool,
    engine: Engine,
    plain: bool = False,
    show_thinking: bool = False,
) -> Sinks:
    """The sinks for ``ask``: the status line, a reasoning model's thinking (folded on a
    terminal; on stderr with ``show_thinking``; never on stdout), then the text (none with
    ``--json``: the text is printed once, inside the JSON object; ``plain``: as written, never
    as Markdown), then the token log when probabilities are kept. The answer's writer is made
    at its first text, so the status line and the thinking own the terminal until then."""
    writer: Any = LazyWriter(
        make_probability_writer if colour else lambda: make_writer(as_json=as_json, plain=plain)
    )
    log = TokenLog() if record else None
    thinking = ThinkingSink(make_thinking_display(show=show_thinking, as_json=as_json))
    sinks: list[Sink] = [StatusSink(status), thinking, TextSink(writer, colour=colour)]
    if log is not None:
        sinks.append(log)
    return Sinks(sinks, engine, log)
