"""The help screen (F1 or ?): every key, from the same table the footer and palette use."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

from chatterm.outcome import OUTCOMES
from chatterm.tui import keys
from chatterm.tui.lab.keys import LAB_BINDINGS, LAB_SCREEN_KEYS, TOKEN_KEYS


def _table(
    title: str, rows: Sequence[tuple[str, str]], header: tuple[str, str] = ("Key", "Does")
) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")  # a bare | would end the cell

    lines = [f"### {title}", "", f"| {header[0]} | {header[1]} |", "| --- | --- |"]
    lines += [f"| `{cell(key)}` | {cell(what)} |" for key, what in rows]
    return "\n".join(lines) + "\n"


def help_markdown(keymap: dict[str, str]) -> str:
    """The help text with the user's remapped keys."""
    return "\n".join(
        [
            "## chatterm keys",
            "Everything is also in the command palette (`ctrl+p`). "
            "Remap keys by binding id under `[keymap]` in config.toml.",
            "",
            _table("Everywhere", keys.binding_rows(keys.APP_BINDINGS, keymap)),
            _table("Chat", keys.binding_rows(keys.CHAT_BINDINGS, keymap)),
            _table("In the input", keys.INPUT_KEYS),
            _table("On a message (tab or shift+tab to reach one)", keys.MESSAGE_KEYS),
            _table("In the conversation list", keys.LIST_KEYS),
            _table("In the settings panel", keys.PANEL_KEYS),
            _table("Lab: see what the model sees", keys.binding_rows(LAB_BINDINGS, keymap)),
            _table("On a coloured reply (probabilities on, F10 or a click)", TOKEN_KEYS),
            _table("In the lab views", LAB_SCREEN_KEYS),
            _table("How a reply ended (message headers, Last reply)", OUTCOMES, ("Word", "Means")),
        ]
    )


class HelpScreen(ModalScreen[None]):
    """Keys by area; Esc, F1 or q closes it."""

    BINDINGS = [Binding("escape,f1,q,question_mark", "close", "Close", id="help.close")]

    def __init__(self, keymap: dict[str, str]) -> None:
        super().__init__(classes="dialog", id="help")
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-box help-box"):
            yield Markdown(help_markdown(self.keymap))

    def action_close(self) -> None:
        self.dismiss(None)
