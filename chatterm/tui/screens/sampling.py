"""The sampling view: the next-token distribution after a prompt, reshaped live by temperature,
top-k, top-p and min-p.

The distribution is captured once, in a worker (it evaluates the prompt); every change of a
setting only re-runs :func:`chatterm.lab.distribution.explain` over the same logits on the UI
thread (under a millisecond for a 49k vocabulary), so the chart follows the keys without
generating anything again. Enter hands the four settings back to the chat; Esc leaves them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Static

from chatterm.engine.base import Engine
from chatterm.engine.events import ChatMessage
from chatterm.errors import SettingError
from chatterm.lab.distribution import (
    SAMPLING_ROWS,
    Distribution,
    Explanation,
    capture_distribution,
    explain,
)
from chatterm.sampling import CHAIN, FIELDS_BY_NAME, SamplingSettings
from chatterm.tui.widgets.prob_chart import ProbChart, percent
from chatterm.tui.widgets.sampling_panel import SettingInput, format_value


@dataclass
class DistributionReady(Message):
    distribution: Distribution


@dataclass
class DistributionFailed(Message):
    error: str


def reshape_summary(expl: Explanation) -> Content:
    """How the chain moved the odds: the likeliest token's share, and the share of the shown
    candidates, before and after."""
    if not expl.rows:
        return Content("")
    top = expl.rows[0]
    shown_before = sum(r.prob for r in expl.rows)
    shown_after = sum(r.final_prob for r in expl.rows)
    return Content.assemble(
        ("the likeliest token: ", "dim"),
        f"{percent(top.prob)} → ",
        (percent(top.final_prob), "bold $accent"),
        (f"   ·   these {len(expl.rows)} candidates: ", "dim"),
        f"{percent(shown_before)} → ",
        (percent(shown_after), "bold $accent"),
        (" of the probability", "dim"),
    )


class SamplingScreen(Screen[SamplingSettings | None]):
    """Dismissed with the new settings (Enter) or ``None`` (Esc)."""

    BINDINGS = [
        Binding("escape,f5", "close", "Close", id="sampling.close"),
        Binding(
            "ctrl+r",
            "reset",
            "Reset",
            id="sampling.reset",
            tooltip="Back to the chat's settings",
        ),
        Binding(
            "ctrl+l",
            "lens",
            "Lens",
            id="sampling.lens",
            tooltip="The logit lens: what each layer would predict here, before the last one",
        ),
        Binding(
            "enter",
            "apply",
            "Use in chat",
            id="sampling.apply",
            tooltip="Use these four settings for the next replies",
        ),
    ]

    DEFAULT_CSS = """
    SamplingScreen #sampling-header {
        height: auto;
        max-height: 4;
        padding: 0 1;
        background: $panel;
    }
    SamplingScreen #sampling-body {
        height: 1fr;
    }
    SamplingScreen #sampling-controls {
        width: 34;
        padding: 1 1;
        border-right: vkey $panel-lighten-2;
    }
    SamplingScreen #sampling-controls > Grid {
        grid-size: 2;
        grid-columns: 13 1fr;
        grid-rows: 1;
        grid-gutter: 1 1;
        height: auto;
    }
    SamplingScreen #sampling-help {
        margin: 2 0 0 0;
        color: $text-muted;
    }
    SamplingScreen #sampling-main {
        width: 1fr;
        padding: 1 1 0 1;
    }
    SamplingScreen #sampling-summary {
        margin: 1 0 0 1;
    }
    """

    def __init__(
        self,
        engine: Engine,
        messages: Sequence[ChatMessage],
        settings: SamplingSettings,
        *,
        label: str,
        rows: int = SAMPLING_ROWS,
    ) -> None:
        super().__init__(id="sampling-view")
        self.engine = engine
        self.messages = list(messages)
        self.initial = settings
        self.settings = settings
        self.label = label
        self.rows = rows
        self.distribution: Distribution | None = None
        self.explanation: Explanation | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            Content.assemble(("Next token after ", "dim"), (self.label, "bold")),
            id="sampling-header",
        )
        with Horizontal(id="sampling-body"):
            with Vertical(id="sampling-controls"):
                with Grid():
                    for name in CHAIN:
                        spec = FIELDS_BY_NAME[name]
                        yield Label(spec.label).with_tooltip(spec.help)
                        yield SettingInput(spec, getattr(self.settings, name))
                yield Static(
                    "Up/Down steps a setting; the chart follows at once, replaying the same "
                    "logits.\n\nEnter: use them in the chat\nctrl+r: back to the chat's\n"
                    "ctrl+l: the logit lens\nEsc: close",
                    id="sampling-help",
                    markup=False,
                )
            with VerticalScroll(id="sampling-main"):
                yield ProbChart(id="sampling-chart")
                yield Static("", id="sampling-summary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(ProbChart).show_message(
            f"computing the next-token distribution on {self.engine.name}…"
        )
        self.query_one(SettingInput).focus()
        self.capture(self.engine, self.messages)

    @work(thread=True, exclusive=True, group="lab-sampling", exit_on_error=False)
    def capture(self, engine: Engine, messages: list[ChatMessage]) -> None:
        from chatterm.structured import grammar_for

        shape = self.settings  # a persona's schema or grammar: its stage comes first
        label = "grammar" if shape.grammar else ("schema" if shape.schema else "")
        try:
            gbnf = grammar_for(shape.schema, shape.grammar)
            dist = capture_distribution(engine, messages, grammar=gbnf, grammar_label=label)
        except Exception as exc:  # overflow, an engine without probabilities: shown, no crash
            self.post_message(DistributionFailed(str(exc) or type(exc).__name__))
            return
        self.post_message(DistributionReady(dist))

    @on(DistributionReady)
    def _ready(self, message: DistributionReady) -> None:
        self.distribution = message.distribution
        self.replay()

    @on(DistributionFailed)
    def _failed(self, message: DistributionFailed) -> None:
        self.query_one(ProbChart).show_message(f"no distribution: {message.error}")

    def replay(self) -> None:
        """Re-explain the captured distribution under the current settings (cheap)."""
        dist = self.distribution
        if dist is None:
            return
        expl = self.explanation = explain(dist, self.settings, n=self.rows)
        self.query_one(ProbChart).show(expl)
        self.query_one("#sampling-summary", Static).update(reshape_summary(expl))

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        field = event.input
        if not isinstance(field, SettingInput):
            return
        event.stop()
        try:
            value = field.spec.check(field.value)
            settings = self.settings.replace(**{field.spec.name: value})
        except (SettingError, ValueError):
            field.add_class("-invalid")
            return
        field.remove_class("-invalid")
        if settings != self.settings:
            self.settings = settings
            self.replay()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def action_apply(self) -> None:
        self.dismiss(self.settings if self.settings != self.initial else None)

    def action_lens(self) -> None:
        """The logit lens of the same prompt (chat template included), beside this view."""
        from chatterm.tui.screens.inside import LensScreen

        messages = self.messages
        self.app.push_screen(
            LensScreen(
                self.engine,
                "",
                self.label,
                prompt=lambda engine: list(engine.render(messages).tokens),
            )
        )

    def action_reset(self) -> None:
        self.settings = self.initial
        for field in self.query(SettingInput):
            with field.prevent(Input.Changed):
                field.value = format_value(field.spec, getattr(self.initial, field.spec.name))
            field.remove_class("-invalid")
        self.replay()

    def action_close(self) -> None:
        self.dismiss(None)
