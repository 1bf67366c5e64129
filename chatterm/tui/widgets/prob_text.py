"""A reply coloured by token probability, whose tokens can be selected to see their candidates.

:class:`ProbText` draws the tokens (green: likely, red: unlikely, as ``chatterm ask
--show-probs``; underlined: forced, the only token a grammar allowed), grows as batches
stream in, and lets the user pick a token with the arrow keys or the mouse. :class:`ProbView`
pairs it with a :class:`ProbChart` of the selected token's candidates, explained under the
reply's own sampling settings. Both only render what they are given: the chat screen feeds
the records (live from the worker or saved in the store).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content, Span
from textual.css.query import NoMatches
from textual.message import Message
from textual.style import Style
from textual.widget import Widget
from textual.widgets import Static

from chatterm.lab.distribution import explain
from chatterm.lab.probs import band_colour
from chatterm.lab.records import TokenRecord, uses_penalties
from chatterm.sampling import SamplingSettings
from chatterm.tui.widgets.prob_chart import ProbChart, textual_colour


class ProbText(Static, can_focus=True):
    """Tokens coloured by probability; Left/Right/Home/End or a click select one."""

    # Tokens carry click actions; without this Textual restyles them all as links.
    auto_links = False

    DEFAULT_CSS = """
    ProbText {
        height: auto;
        padding: 0 1 0 0;
    }
    ProbText:focus {
        background: $boost;
    }
    """

    BINDINGS = [
        Binding("left", "step(-1)", "Previous token", show=False),
        Binding("right", "step(1)", "Next token", show=False),
        Binding("home", "jump(0)", "First token", show=False),
        Binding("end", "jump(-1)", "Last token", show=False),
        Binding("escape", "unselect", "Close chart", show=False),
    ]

    @dataclass
    class Selected(Message):
        """The selected token changed (``index`` ``None``: the selection was cleared)."""

        prob_text: ProbText
        index: int | None

        @property
        def control(self) -> ProbText:
            return self.prob_text

    def __init__(self, records: Sequence[TokenRecord] = (), *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.records: list[TokenRecord] = []
        self.selected: int | None = None
        self._text: list[str] = []
        self._spans: list[Span] = []
        self._length = 0
        self.add(records)

    def add(self, records: Sequence[TokenRecord]) -> None:
        """Append streamed records and redraw."""
        for record in records:
            index = len(self.records)
            self.records.append(record)
            text = record.text
            if text:
                start, self._length = self._length, self._length + len(text)
                self._text.append(text)
                colour = textual_colour(band_colour(record.prob))
                if colour:
                    self._spans.append(Span(start, self._length, colour))
                if record.forced:  # the grammar left no other choice: not the model's
                    self._spans.append(Span(start, self._length, "underline"))
                if record.reasoning:  # a thinking token: coloured too, in italics
                    self._spans.append(Span(start, self._length, "italic"))
                self._spans.append(
                    Span(start, self._length, Style.from_meta({"@click": f"select_token({index})"}))
                )
        self._redraw()

    def _bounds(self, index: int) -> tuple[int, int]:
        start = sum(len(r.text) for r in self.records[:index])
        return start, start + len(self.records[index].text)

    def _redraw(self) -> None:
        spans = list(self._spans)
        if self.selected is not None and self.selected < len(self.records):
            start, end = self._bounds(self.selected)
            if end > start:
                spans.append(Span(start, end, "reverse bold"))
        self.update(Content("".join(self._text), spans))

    @property
    def text(self) -> str:
        return "".join(self._text)

    def select(self, index: int | None) -> None:
        if index is not None:
            if not self.records:
                return
            index = max(0, min(index, len(self.records) - 1))
        if index == self.selected:
            return
        self.selected = index
        self._redraw()
        self.post_message(self.Selected(self, index))

    def action_select_token(self, index: int) -> None:
        self.focus()
        self.select(index)

    def action_step(self, step: int) -> None:
        current = self.selected if self.selected is not None else (-1 if step > 0 else 0)
        self.select(current + step)

    def action_jump(self, index: int) -> None:
        self.select(index if index >= 0 else len(self.records) - 1)

    def action_unselect(self) -> None:
        self.select(None)
        for node in self.ancestors:  # back to the message this reply belongs to
            if isinstance(node, Widget) and node.can_focus:
                node.focus()
                break

    def start(self) -> None:
        """Focus and select the first token unless one is selected. Not done on every focus:
        a click focuses before it selects, and a chart opening under the mouse would move
        the token away from it."""
        self.focus()
        if self.selected is None and self.records:
            self.select(0)


class ProbView(Vertical):
    """A coloured reply and, while a token is selected, the chart of its candidates."""

    DEFAULT_CSS = """
    ProbView {
        height: auto;
    }
    ProbView > ProbChart {
        display: none;
        margin: 1 0 0 0;
    }
    ProbView.-selected > ProbChart {
        display: block;
    }
    """

    def __init__(
        self,
        records: Sequence[TokenRecord] = (),
        *,
        settings: SamplingSettings | None = None,
        vocab_size: int = 0,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id, classes="prob-view")
        self._records = list(records)
        self.settings = settings or SamplingSettings()
        self.vocab_size = vocab_size

    def compose(self) -> ComposeResult:
        yield ProbText(self._records)
        yield ProbChart()

    @property
    def prob_text(self) -> ProbText:
        return self.query_one(ProbText)

    def add(self, records: Sequence[TokenRecord]) -> None:
        try:
            text = self.prob_text
        except NoMatches:  # not composed yet: shown when it is
            self._records.extend(records)
        else:
            text.add(records)

    @on(ProbText.Selected)
    def _selected(self, event: ProbText.Selected) -> None:
        event.stop()
        self.show_token(event.index)

    def show_token(self, index: int | None) -> None:
        chart = self.query_one(ProbChart)
        text = self.prob_text
        self.set_class(index is not None, "-selected")
        if index is None:
            return
        record = text.records[index]
        kind = "thinking token" if record.reasoning else "token"
        title = Content.assemble(
            (f"{kind} {index + 1} of {len(text.records)}: ", "dim"),
            (record.label, "bold"),
        )
        dist = record.distribution(self.vocab_size)
        if dist is None:
            chart.show_message(f"{record.label}: no candidates were recorded for it")
            return
        notes: list[str] = []
        if record.forced:
            notes.append("forced: the grammar (--schema/--grammar) allowed only this token")
        if uses_penalties(self.settings) and index > 0:
            notes.append("repeat/presence/frequency penalties also moved this token's odds")
        chart.show(
            explain(dist, self.settings, n=len(dist)),
            chosen_id=record.id if record.id >= 0 else None,
            title=title,
            notes=tuple(notes),
        )
