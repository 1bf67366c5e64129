"""The chat screen's footer: Textual's, with Quit and Help first."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

FIRST_ACTIONS = ("quit", "help", "app.quit", "app.help")


class ChatFooter(Footer):
    """The footer drops the keys that do not fit at the right, and the app's own keys come
    last in Textual's order: at 60 columns Quit and Help were the first to go. Here they are
    shown first; the rest keep their order."""

    def compose(self) -> ComposeResult:
        widgets = list(super().compose())
        first = [w for w in widgets if isinstance(w, FooterKey) and w.action in FIRST_ACTIONS]
        yield from first
        yield from (w for w in widgets if w not in first)
