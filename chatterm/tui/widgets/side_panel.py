"""The right-hand panel: model, persona, sampling settings, context meter and the last reply's
stats. Nothing here is hidden: every figure the engine reports has a place."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import ProgressBar, Static

from chatterm.engine.events import Stats
from chatterm.outcome import outcome
from chatterm.sampling import SamplingSettings
from chatterm.tui.widgets.sampling_panel import SamplingPanel

BAR_WIDTH = 28
MIN_RATE_TOKENS = 2
MIN_RATE_SECONDS = 1.0


class ContextMeter(Static):
    """How the next prompt fills the window: system prompt, history and the reply's reserve,
    and how many old messages the engine would drop to make room."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("measuring…", id=id)
        self.figures: tuple[int, int, int, int, int] | None = None

    def show_figures(
        self, system: int, history: int, reserve: int, n_ctx: int, dropped: int
    ) -> None:
        self.figures = (system, history, reserve, n_ctx, dropped)
        self.update(self.describe(system, history, reserve, n_ctx, dropped))

    def show_unmeasured(self, reason: str, n_ctx: int, n_ctx_known: bool) -> None:
        """The window without token counts: the engine cannot count them (``reason``)."""
        self.figures = None
        source = "" if n_ctx_known else " (configured; the server does not say)"
        self.update(
            Content.assemble(
                f"window {n_ctx}{source}\n",
                ("token counts unavailable: ", "bold"),
                (reason, "dim"),
            )
        )

    @staticmethod
    def describe(system: int, history: int, reserve: int, n_ctx: int, dropped: int) -> Content:
        n_ctx = max(n_ctx, 1)
        used = system + history

        def cells(n: int) -> int:
            return round(BAR_WIDTH * min(n, n_ctx) / n_ctx)

        s, h = cells(system), cells(history)
        r = min(cells(reserve), max(0, BAR_WIDTH - s - h))
        free = max(0, BAR_WIDTH - s - h - r)
        over = used + reserve > n_ctx
        lines: list[str | tuple[str, str]] = [
            ("█" * s, "$primary"),
            ("█" * h, "$error" if over else "$secondary"),
            ("▒" * r, "$warning"),
            ("░" * free, "dim"),
            "\n",
            ("system ", "$primary"),
            f"{system}  ",
            ("history ", "$secondary"),
            f"{history}\n",
            ("reserve ", "$warning"),
            f"{reserve}  ",
            f"window {n_ctx}\n",
            f"{used + reserve} of {n_ctx} tokens ({100 * (used + reserve) / n_ctx:.0f}%)",
        ]
        if dropped:
            lines.append(
                (
                    f"\nthe oldest {dropped} message{'s' if dropped != 1 else ''} will be "
                    "dropped to fit",
                    "$error",
                )
            )
        return Content.assemble(*lines)


class ReplyStats(Static):
    """The last reply's figures from the engine, and live progress while one streams."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("no reply yet", id=id)

    def show_stats(self, stats: Stats, reason: str) -> None:
        self.update(
            Content.assemble(
                ("first token ", "dim"),
                f"{stats.ttft_s * 1000:.0f} ms\n",
                ("prompt ", "dim"),
                f"{stats.prompt_tokens} tok · {stats.prompt_tps:.1f} tok/s\n",
                ("cached ", "dim"),
                f"{stats.cached_tokens} of {stats.prompt_tokens} tokens reused\n",
                ("decode ", "dim"),
                f"{stats.generated_tokens} tok · {stats.decode_tps:.1f} tok/s\n",
                *(
                    (
                        ("thinking ", "dim"),
                        f"{stats.reasoning_tokens} tok · {stats.reasoning_s:.1f} s"
                        + (" (not finished)" if stats.reasoning_open else "")
                        + "\n",
                    )
                    if stats.reasoning_tokens
                    else ()
                ),
                ("total ", "dim"),
                f"{stats.total_s:.2f} s · {outcome(finish_reason=reason)}",
            )
        )

    def show_saved(self, stats: dict[str, Any] | None, reason: str | None) -> None:
        """The figures saved with the open conversation's last reply (``Stats.to_dict()``),
        or "no reply yet": the panel speaks of the conversation on screen."""
        if not stats:
            self.update("no reply yet")
            return
        known = {f.name for f in fields(Stats)}
        self.show_stats(Stats(**{k: v for k, v in stats.items() if k in known}), reason or "")

    def show_progress(self, tokens: int, elapsed: float) -> None:
        """Live progress: the token count, and a rate once it means something (from the
        second token, after a second: one token over a few milliseconds says nothing)."""
        figures = f"{tokens} tok"
        if tokens >= MIN_RATE_TOKENS and elapsed >= MIN_RATE_SECONDS:
            figures += f" · {(tokens - 1) / elapsed:.1f} tok/s"  # decode: after the first
        # The panel keeps its size (five lines): repaint only, no layout of the screen.
        self.update(Content.assemble(("streaming ", "dim"), figures), layout=False)


class SidePanel(VerticalScroll):
    """Model, persona, sampling, context and stats, top to bottom."""

    @dataclass
    class IdentityChanged(Message):
        """The model or persona shown changed; where the panel is hidden (narrow terminals)
        the screen shows them elsewhere."""

        panel: SidePanel
        model: str
        persona: str | None

        @property
        def control(self) -> SidePanel:
            return self.panel

    def __init__(self, settings: SamplingSettings, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._settings = settings
        self.model_name = ""
        self.persona_name: str | None = None

    def compose(self) -> ComposeResult:
        yield Static("Model", classes="panel-title")
        yield Static("loading…", id="model-info")
        # Determinate (and hidden) until a load starts: an indeterminate bar animates fifteen
        # times a second even when hidden.
        bar = ProgressBar(total=1, show_eta=False, show_percentage=False, id="model-progress")
        bar.display = False
        yield bar
        yield Static("Persona", classes="panel-title")
        yield Static("none", id="persona-info")
        yield Static("Sampling", classes="panel-title")
        yield SamplingPanel(self._settings, id="sampling")
        yield Static("Context", classes="panel-title")
        yield ContextMeter(id="context-meter")
        yield Static("Last reply", classes="panel-title")
        yield ReplyStats(id="reply-stats")

    def show_loading(self, loading: bool) -> None:
        """Show the model-load progress bar (indeterminate) or hide and stop it."""
        bar = self.query_one("#model-progress", ProgressBar)
        bar.update(total=None if loading else 1, progress=0)
        bar.display = loading

    def show_model(self, name: str, detail: str = "") -> None:
        self.query_one("#model-info", Static).update(
            Content.assemble((name, "bold"), f"\n{detail}" if detail else "")
        )
        self.model_name = name
        self.post_message(self.IdentityChanged(self, name, self.persona_name))

    def show_persona(self, name: str | None, description: str = "") -> None:
        self.query_one("#persona-info", Static).update(
            Content.assemble(
                (name or "none", "bold"),
                (f"\n{description}" if description else "", "dim italic"),
            )
        )
        self.persona_name = name
        self.post_message(self.IdentityChanged(self, self.model_name, name))
