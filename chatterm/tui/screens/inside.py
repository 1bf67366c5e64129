"""Inside the transformer, in the chat app: the attention of a text's tokens and the logit lens.

Both open from the tokens view (F4, then ``a`` or ``l``). The capture runs in a worker under the
engine's lock (piece lookups share llama.cpp's buffer with a streaming reply) in a context of
its own (:mod:`chatterm.lab.capture`): the chat's KV cache is never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from chatterm.engine.base import Engine, LocalModel
from chatterm.tui.widgets.token_chips import chip_text

HEAD_HELP = (
    "A layer has several attention heads: each gives every earlier token a weight (summing "
    "to 1) and mixes them into the current token. Brighter = more."
)


def heat(weight: float) -> str:
    """Dark grey through red to yellow for a weight in [0, 1] (square-root scale)."""
    w = max(0.0, min(1.0, weight)) ** 0.5
    r = int(40 + 215 * min(1.0, 2 * w))
    g = int(40 + 190 * max(0.0, 2 * w - 1))
    return f"#{r:02x}{g:02x}28"


@dataclass
class InsideReady(Message):
    result: Any


@dataclass
class InsideFailed(Message):
    error: str


class _InsideScreen(ModalScreen[None]):
    """A dialog that captures in a worker, then draws ``result``."""

    DEFAULT_CSS = """
    _InsideScreen .inside-box {
        width: 90%;
        max-width: 130;
        height: auto;
        max-height: 90%;
    }
    _InsideScreen .inside-help, _InsideScreen .inside-status {
        color: $text-muted;
        margin: 1 0 0 0;
    }
    """

    what = ""

    def __init__(
        self,
        engine: Engine,
        text: str,
        title: str,
        *,
        prompt: Callable[[Any], list[int]] | None = None,
    ) -> None:
        """``prompt(engine)``: the token ids to look at (default: ``text`` as is, with BOS
        if the model wants one); called in the worker, so it may render a chat template."""
        super().__init__(classes="dialog")
        self.engine = engine
        self.text = text
        self.title_text = title
        self.prompt = prompt
        self.result: Any = None

    def on_mount(self) -> None:
        self.capture(self.engine, self.text)

    def compute(self, engine: Any, tokens: list[int]) -> Any:
        raise NotImplementedError

    @work(thread=True, exclusive=True, group="lab-inside", exit_on_error=False)
    def capture(self, engine: Engine, text: str) -> None:
        from chatterm.errors import ChattermError, UsageError
        from chatterm.lab.distribution import raw_text_tokens

        try:
            if not isinstance(engine, LocalModel):
                raise UsageError(f"{engine.name} runs elsewhere: this view needs a local model")
            with engine.lock:  # reentrant: the tokenizing below takes it too
                tokens = self.prompt(engine) if self.prompt else raw_text_tokens(engine, text)
                result = self.compute(engine, tokens)
        except ChattermError as exc:
            self.post_message(InsideFailed(str(exc)))
            return
        except Exception as exc:  # a closed engine, a remote one: say so, no crash
            self.post_message(InsideFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(InsideReady(result))

    @on(InsideReady)
    def _ready(self, message: InsideReady) -> None:
        self.result = message.result
        self.draw()

    @on(InsideFailed)
    def _failed(self, message: InsideFailed) -> None:
        self.query_one(".inside-status", Static).update(f"cannot show {self.what}: {message.error}")

    def draw(self) -> None:
        raise NotImplementedError

    def action_close(self) -> None:
        self.dismiss(None)


class AttentionScreen(_InsideScreen):
    """Chips of the text's tokens, each earlier token coloured by how much the selected one
    attends to it; ← → select a token, [ ] step layers, - = step heads, a averages all."""

    what = "attention"
    BINDINGS = [
        Binding("left", "move(-1)", "Earlier", id="attention.left"),
        Binding("right", "move(1)", "Later", id="attention.right"),
        Binding("left_square_bracket", "layer(-1)", "Layer −", id="attention.layer_down"),
        Binding("right_square_bracket", "layer(1)", "Layer +", id="attention.layer_up"),
        Binding("minus", "head(-1)", "Head −", id="attention.head_down"),
        Binding("equals_sign,plus", "head(1)", "Head +", id="attention.head_up"),
        Binding("a", "average", "All", id="attention.all"),
        Binding("escape,q", "close", "Close", id="attention.close"),
    ]

    def __init__(self, engine: Engine, text: str, title: str, **kwargs: Any) -> None:
        super().__init__(engine, text, title, **kwargs)
        self.selected = 0
        self.at_layer: int | None = None
        self.at_head: int | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-box inside-box") as box:
            box.border_title = f"Attention in {self.title_text} · {self.engine.name}"
            box.border_subtitle = "← → token · [ ] layer · - = head · a all · esc close"
            yield Static(HEAD_HELP, classes="inside-help", markup=False)
            yield Static("", id="attention-chips", markup=False)
            yield Static("capturing attention…", classes="inside-status", markup=False)

    def compute(self, engine: Any, tokens: list[int]) -> Any:
        from chatterm.lab.attention import capture_attention

        return capture_attention(engine, tokens)

    def draw(self) -> None:
        a = self.result
        if a is None:
            return
        self.selected = max(0, min(self.selected, len(a.pieces) - 1))
        row = a.matrix(self.at_layer, self.at_head)[self.selected]
        parts: list[tuple[str, str] | str] = []
        for k, piece in enumerate(a.pieces):
            text = chip_text(piece) or "∅"
            if k == self.selected:
                style = "bold reverse"
            elif k < self.selected:
                style = f"#000000 on {heat(float(row[k]))}"
            else:
                style = "dim"
            parts.append((text, style))
        self.query_one("#attention-chips", Static).update(Content.assemble(*parts))
        where = "all layers" if self.at_layer is None else f"layer {self.at_layer}/{a.layers - 1}"
        who = "all heads" if self.at_head is None else f"head {self.at_head}/{a.heads - 1}"
        most = ", ".join(
            f"{chip_text(a.pieces[k]).strip() or '∅'} {w:.2f}"
            for k, w in a.top(self.selected, 3, self.at_layer, self.at_head)
        )
        piece = chip_text(a.pieces[self.selected])
        self.query_one(".inside-status", Static).update(
            f"token {self.selected} {piece!r} · {where} · {who} · attends most to: {most}"
        )

    def action_move(self, step: int) -> None:
        self.selected += step
        self.draw()

    def _step(self, value: int | None, count: int, step: int) -> int | None:
        """None (all) → 0 → … → count-1 → None, either way round."""
        order: list[int | None] = [None, *range(count)]
        return order[(order.index(value) + step) % len(order)]

    def action_layer(self, step: int) -> None:
        if self.result is not None:
            self.at_layer = self._step(self.at_layer, self.result.layers, step)
            self.draw()

    def action_head(self, step: int) -> None:
        if self.result is not None:
            self.at_head = self._step(self.at_head, self.result.heads, step)
            self.draw()

    def action_average(self) -> None:
        self.at_layer = self.at_head = None
        self.draw()


class LensScreen(_InsideScreen):
    """What the model would predict after each layer, at the text's last token."""

    what = "the logit lens"
    BINDINGS = [Binding("escape,q", "close", "Close", id="lens.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-box inside-box") as box:
            box.border_title = f"Logit lens after {self.title_text} · {self.engine.name}"
            box.border_subtitle = "esc close"
            yield Static(
                "Each layer's state at the last token, sent through the final norm and output "
                "matrix: what the model would say if it stopped there.",
                classes="inside-help",
                markup=False,
            )
            yield Static("", id="lens-table", markup=False)
            yield Static("running the lens…", classes="inside-status", markup=False)

    def compute(self, engine: Any, tokens: list[int]) -> Any:
        from chatterm.lab.lens import logit_lens

        return logit_lens(engine, tokens)

    def draw(self) -> None:
        lens = self.result
        parts: list[tuple[str, str] | str] = []
        for g in lens.layers:
            parts.append(f"{g.layer:>3}  ")
            for c in g.top:
                style = "bold $success" if c.token_id == lens.answer.token_id else ""
                parts.append((f"{chip_text(c.piece)!r} {c.prob * 100:.1f}%", style))
                parts.append("  ")
            parts.append("\n")
        self.query_one("#lens-table", Static).update(Content.assemble(*parts))
        self.query_one(".inside-status", Static).update(
            f"{chip_text(lens.answer.piece)!r} is the answer; the top choice from layer "
            f"{lens.first_layer} of 0–{lens.layers[-1].layer}"
        )
