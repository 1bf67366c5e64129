"""A filterable list to pick one item (model, persona, template), each with a description."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option, OptionDoesNotExist

INDENT = 2
"""Columns a description is indented under its item's name."""


@dataclass(frozen=True)
class PickItem:
    """One choice: ``id`` is returned when picked; a ``disabled`` item shows why (``detail``)."""

    id: str
    label: str
    description: str = ""
    detail: str = ""
    disabled: bool = False
    current: bool = False


class PickerScreen(ModalScreen[str | None]):
    """Type to filter, Up/Down to move, Enter to pick, Esc to cancel."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="picker.cancel"),
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
    ]

    def __init__(self, title: str, items: Sequence[PickItem], *, picker_id: str = "") -> None:
        super().__init__(classes="dialog", id=picker_id or None)
        self.title_text = title
        self.items = list(items)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box picker-box"):
            yield Static(self.title_text, classes="dialog-question")
            yield Input(placeholder="Type to filter…", id="picker-filter", compact=True)
            yield OptionList(id="picker-options")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#picker-filter", Input).focus()
        # Descriptions are wrapped to the list's width, known once it is laid out.
        self.call_after_refresh(self._refill)

    def _refill(self) -> None:
        options = self.query_one("#picker-options", OptionList)
        kept = options.highlighted_option.id if options.highlighted_option else None
        self._fill(self.query_one("#picker-filter", Input).value)
        if kept is not None:
            with contextlib.suppress(OptionDoesNotExist):
                options.highlighted = options.get_option_index(kept)

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._refill)

    def _fill(self, text: str) -> None:
        options = self.query_one("#picker-options", OptionList)
        options.clear_options()
        wanted = text.casefold().strip()
        highlight = None
        # Room for a description line after its two-space indent (and the scrollbar).
        width = max(20, (options.scrollable_content_region.width or 62) - INDENT - 1)
        for item in self.items:
            haystack = f"{item.label} {item.description}".casefold()
            if wanted and wanted not in haystack:
                continue
            parts: list[str | tuple[str, str]] = [
                ("● " if item.current else "  ", "$accent"),
                (item.label, "bold"),
            ]
            if item.detail:
                parts.append(("  " + item.detail, "dim"))
            if item.description:
                # Wrapped here, so every line keeps the indent (the list would wrap to column 0).
                lines = textwrap.wrap(item.description, width) or [""]
                indented = "".join("\n" + " " * INDENT + line for line in lines)
                parts.append((indented, "$error" if item.disabled else "italic"))
            options.add_option(Option(Content.assemble(*parts), id=item.id, disabled=item.disabled))
            if highlight is None and not item.disabled:
                highlight = options.option_count - 1
            if item.current and not item.disabled and not wanted:
                highlight = options.option_count - 1
        if highlight is not None:
            options.highlighted = highlight
        elif not options.option_count:
            shown = text.strip()
            options.add_option(
                Option(Content.styled(f"  nothing matches {shown!r}", "dim italic"), disabled=True)
            )

    @on(Input.Changed, "#picker-filter")
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#picker-filter")
    def _submit(self, event: Input.Submitted) -> None:
        options = self.query_one("#picker-options", OptionList)
        option = options.highlighted_option
        if option is not None and not option.disabled:
            self.dismiss(option.id)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_move(self, step: int) -> None:
        options = self.query_one("#picker-options", OptionList)
        if step > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()

    def action_cancel(self) -> None:
        self.dismiss(None)
