"""The left-hand list of conversations, most recent first, with a live search box.

It shows what the screen gives it and posts what the user asked for (open, search, rename,
delete); it never reads the store itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option


@dataclass(frozen=True)
class ConversationItem:
    """One row: the id, the title, when it last changed, and an optional search snippet."""

    id: str
    title: str
    updated: datetime
    snippet: str = ""


def relative_time(moment: datetime, now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    if seconds < 7 * 86400:
        return f"{int(seconds // 86400)} d ago"
    return moment.astimezone().strftime("%Y-%m-%d")


MORE_ID = "\x00more"
"""The id of the last row when older conversations are not listed yet."""


class ConversationOptions(OptionList):
    """The list itself, with keys for the highlighted conversation."""

    BINDINGS = [
        Binding("f2,r", "rename", "Rename", tooltip="Rename the highlighted conversation"),
        Binding("delete,d", "delete", "Delete", tooltip="Delete the highlighted conversation"),
    ]

    def _highlighted_id(self) -> str | None:
        option = self.highlighted_option
        return option.id if option is not None and option.id != MORE_ID else None

    def action_rename(self) -> None:
        parent, chosen = self.parent, self._highlighted_id()
        if isinstance(parent, ConversationList) and chosen:
            parent.post_message(ConversationList.RenameRequested(parent, chosen))

    def action_delete(self) -> None:
        parent, chosen = self.parent, self._highlighted_id()
        if isinstance(parent, ConversationList) and chosen:
            parent.post_message(ConversationList.DeleteRequested(parent, chosen))

    def _on_focus(self, event: events.Focus) -> None:
        # A list that gets focus shows a highlighted row, so Enter always opens something.
        if self.highlighted is None and self.option_count:
            self.highlighted = 0


class ConversationList(Vertical):
    """Search box and conversation list."""

    @dataclass
    class Selected(Message):
        conversations: ConversationList
        conversation_id: str

        @property
        def control(self) -> ConversationList:
            return self.conversations

    @dataclass
    class SearchChanged(Message):
        conversations: ConversationList
        query: str

        @property
        def control(self) -> ConversationList:
            return self.conversations

    @dataclass
    class RenameRequested(Message):
        conversations: ConversationList
        conversation_id: str

        @property
        def control(self) -> ConversationList:
            return self.conversations

    @dataclass
    class MoreRequested(Message):
        """The user asked for the conversations beyond those listed."""

        conversations: ConversationList

        @property
        def control(self) -> ConversationList:
            return self.conversations

    @dataclass
    class DeleteRequested(Message):
        conversations: ConversationList
        conversation_id: str

        @property
        def control(self) -> ConversationList:
            return self.conversations

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.items: list[ConversationItem] = []
        self.current_id: str | None = None

    def compose(self) -> ComposeResult:
        yield Input(
            placeholder="Search conversations…",
            id="conversation-search",
            compact=True,
            tooltip="Type to filter by title and message text; Enter opens the first match",
        )
        yield ConversationOptions(id="conversation-options")

    @property
    def query_text(self) -> str:
        return self.query_one("#conversation-search", Input).value

    def set_items(
        self,
        items: Sequence[ConversationItem],
        current_id: str | None = None,
        *,
        hidden: int = 0,
    ) -> None:
        """Show ``items`` (already ordered), then a row saying how many more there are
        (``hidden``; Enter on it asks for them). The highlight stays on the row the user last
        saw highlighted, so a key that acts on it (rename, delete) never jumps to another
        conversation; without one it goes to the current conversation."""
        options = self.query_one(ConversationOptions)
        kept = options.highlighted_option.id if options.highlighted_option is not None else None
        previous = len(self.items)
        self.items = list(items)
        if current_id is not None:
            self.current_id = current_id
        now = datetime.now(timezone.utc)
        options.clear_options()
        options.add_options([self._option(item, now) for item in self.items])
        if hidden > 0:
            options.add_option(
                Option(
                    Content.assemble(
                        (f"… {hidden} older conversation{'s' if hidden != 1 else ''}", "bold"),
                        ("\nEnter: show them", "dim"),
                    ),
                    id=MORE_ID,
                )
            )
        ids = [item.id for item in self.items]
        if kept == MORE_ID and previous < len(ids):  # "show them": on the first one shown
            options.highlighted = previous
            return
        for wanted in (kept, self.current_id):
            if wanted in ids:
                options.highlighted = ids.index(wanted)
                break

    def _option(self, item: ConversationItem, now: datetime) -> Option:
        marker = "● " if item.id == self.current_id else ""
        lines: list[str | tuple[str, str]] = [
            (marker + (item.title or "(untitled)"), "bold" if marker else ""),
            ("\n" + relative_time(item.updated, now), "dim"),
        ]
        if item.snippet:
            lines.append(("\n" + item.snippet, "italic $text-muted"))
        return Option(Content.assemble(*lines), id=item.id)

    def focus_search(self) -> None:
        self.query_one("#conversation-search", Input).focus()

    @on(Input.Changed, "#conversation-search")
    def _search(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.SearchChanged(self, event.value))

    @on(Input.Submitted, "#conversation-search")
    def _open_first(self, event: Input.Submitted) -> None:
        event.stop()
        if self.items:
            self.post_message(self.Selected(self, self.items[0].id))

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id == MORE_ID:
            self.post_message(self.MoreRequested(self))
        elif event.option.id:
            self.post_message(self.Selected(self, event.option.id))
