"""The tokenizer view: how the model's own tokenizer splits a text (the input or a message).

The tokenization runs in a worker under the engine's lock: llama.cpp's piece lookups share a
buffer with a generation that may be streaming, so this waits for the reply instead of racing
it; the UI stays free meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from chatterm.engine.base import Engine, TokenPiece
from chatterm.tui.widgets.token_chips import TokenChips, summary


@dataclass
class TokensReady(Message):
    """The worker tokenized the text."""

    pieces: list[TokenPiece]


@dataclass
class TokensFailed(Message):
    error: str


class TokensScreen(ModalScreen[None]):
    """Chips for each token of ``text``; ``i`` shows ids; ``a`` opens the attention view and
    ``l`` the logit lens for the same text; Esc, F4 or q closes."""

    BINDINGS = [
        Binding("i", "toggle_ids", "Ids", id="tokens.ids", tooltip="Show or hide token ids"),
        Binding(
            "a",
            "attention",
            "Attention",
            id="tokens.attention",
            tooltip="Which earlier tokens each token attends to, per layer and head",
        ),
        Binding(
            "l",
            "lens",
            "Lens",
            id="tokens.lens",
            tooltip="The logit lens: what each layer would predict after the text",
        ),
        Binding("escape,q,f4", "close", "Close", id="tokens.close"),
    ]

    DEFAULT_CSS = """
    TokensScreen .tokens-box {
        width: 90%;
        max-width: 120;
        height: auto;
        max-height: 85%;
    }
    TokensScreen #tokens-summary {
        margin: 1 0 0 0;
        color: $text-muted;
    }
    """

    def __init__(self, engine: Engine, text: str, title: str, *, special: bool = False) -> None:
        super().__init__(classes="dialog", id="tokens-view")
        self.engine = engine
        self.text = text
        self.title_text = title
        self.special = special
        self.pieces: list[TokenPiece] | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-box tokens-box") as box:
            box.border_title = f"Tokens of {self.title_text} · {self.engine.name}"
            box.border_subtitle = "i ids · a attention · l lens · esc close"
            yield TokenChips(id="token-chips")
            yield Static("tokenizing…", id="tokens-summary", markup=False)

    def on_mount(self) -> None:
        self.tokenize(self.engine, self.text, self.special)

    @work(thread=True, exclusive=True, group="lab-tokens", exit_on_error=False)
    def tokenize(self, engine: Engine, text: str, special: bool) -> None:
        try:
            pieces = engine.tokenize(text, special=special)  # takes the engine's lock
        except Exception as exc:  # a closed engine, a tokenizer failure: say so, no crash
            self.post_message(TokensFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(TokensReady(pieces))

    @on(TokensReady)
    def _ready(self, message: TokensReady) -> None:
        self.pieces = message.pieces
        self.query_one(TokenChips).show(message.pieces)
        self.query_one("#tokens-summary", Static).update(summary(message.pieces, self.text))

    @on(TokensFailed)
    def _failed(self, message: TokensFailed) -> None:
        self.query_one("#tokens-summary", Static).update(f"could not tokenize: {message.error}")

    def action_toggle_ids(self) -> None:
        self.query_one(TokenChips).toggle_ids()

    def action_attention(self) -> None:
        from chatterm.tui.screens.inside import AttentionScreen

        self.app.push_screen(AttentionScreen(self.engine, self.text, self.title_text))

    def action_lens(self) -> None:
        from chatterm.tui.screens.inside import LensScreen

        self.app.push_screen(LensScreen(self.engine, self.text, self.title_text))

    def action_close(self) -> None:
        self.dismiss(None)
