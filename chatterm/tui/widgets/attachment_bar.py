"""Chips above the input for the files attached to the next message.

Each chip names its source and its token count (``notes.md · 1,204 tok ✕``); pressing one
(click, or Enter when focused) removes it. :meth:`AttachmentBar.attach` reads a path and counts
its tokens in a worker (the same reader as ``chatterm ask -f``), so a large directory never
blocks typing; every change posts :class:`AttachmentBar.Changed` for the context meter, and a
path that cannot be attached becomes a notification.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import HorizontalGroup
from textual.message import Message
from textual.widgets import Button

from chatterm.attachments import Attachment


def chip_label(item: Attachment) -> str:
    """``notes.md · 1,204 tok ✕`` (``…`` while the tokens are being counted)."""
    tokens = f"{item.tokens:,} tok" if item.tokens is not None else "… tok"
    return f"{item.source} · {tokens} ✕"


class AttachmentBar(HorizontalGroup):
    """The attachments of the message being typed, as removable chips; hidden when empty."""

    DEFAULT_CSS = """
    AttachmentBar {
        height: auto;
        display: none;
        padding: 0 1;
    }
    AttachmentBar.-filled {
        display: block;
    }
    AttachmentBar > Button.chip {
        margin: 0 1 0 0;
        min-width: 0;
        height: 1;
    }
    """

    @dataclass
    class Changed(Message):
        """The attachments changed (added, counted or removed)."""

        bar: AttachmentBar
        items: tuple[Attachment, ...]

        @property
        def control(self) -> AttachmentBar:
            return self.bar

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.items: list[Attachment] = []

    def attach(self, path: Path, engine: Any) -> None:
        """Read ``path`` (a file or directory) and count its tokens with ``engine``."""
        self._read(path, engine)

    @work(thread=True, group="attach", exit_on_error=False)
    def _read(self, path: Path, engine: Any) -> None:
        from chatterm.attachments import collect, count_tokens
        from chatterm.errors import ChattermError

        try:
            found = collect([str(path)])
            items = count_tokens(engine, found.attachments) if engine is not None else []
        except ChattermError as exc:
            self.app.call_from_thread(self._failed, str(exc))
            return
        self.app.call_from_thread(self._add, items or found.attachments, found.notes)  # type: ignore[arg-type]

    def _failed(self, error: str) -> None:
        self.notify(error, title="Not attached", severity="error", markup=False)

    async def _add(self, items: Sequence[Attachment], notes: Sequence[str]) -> None:
        known = {(a.source, a.sha256) for a in self.items}
        fresh = [a for a in items if (a.source, a.sha256) not in known]
        for note in notes:
            self.notify(note, markup=False, timeout=5)
        await self.show([*self.items, *fresh])

    async def clear(self) -> None:
        await self.show([])

    def compose(self) -> ComposeResult:
        for index, item in enumerate(self.items):
            yield Button(
                chip_label(item),
                id=f"chip-{index}",
                classes="chip",
                compact=True,
                tooltip=f"{item.source}: {item.size:,} bytes. Press to remove it.",
            )

    async def show(self, items: Sequence[Attachment]) -> None:
        """Show ``items`` (replacing what was shown)."""
        self.items = list(items)
        self.set_class(bool(self.items), "-filled")
        await self.recompose()
        self.post_message(self.Changed(self, tuple(self.items)))

    @on(Button.Pressed, ".chip")
    async def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        index = int((event.button.id or "chip-0").removeprefix("chip-"))
        await self.show([a for i, a in enumerate(self.items) if i != index])
