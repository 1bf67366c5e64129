"""The scrolling transcript of the current branch of a conversation.

Only the last page of messages is mounted: about two screens' worth, estimated from the text
(at most :attr:`Transcript.PAGE` messages). A Markdown message costs a parse and a dozen block
widgets, so mounting a whole 500-message conversation would take seconds. Older messages are
mounted a page at a time when the user scrolls to the top (or activates the "earlier messages"
line). The container uses ``layout: stream`` and stays anchored to the bottom while a reply
streams, unless the user scrolls up.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from chatterm.tui.widgets.message_view import AssistantMessage, Entry, MessageView, UserMessage

EMPTY_HINT = (
    "Type a message below and press Enter.\nF1 lists every key and ctrl+p finds any action."
)


class OlderMessages(Static):
    """The line at the top that stands for messages not mounted yet; a click loads them."""

    def on_click(self, event: events.Click) -> None:
        event.stop()
        parent = self.parent
        if isinstance(parent, Transcript):
            self.run_worker(parent.load_older(), group="transcript")


class Transcript(VerticalScroll, can_focus=False):
    """Message widgets of one branch, oldest first."""

    PAGE = 40
    """The most messages mounted at once (opening, or loading older ones)."""
    MIN_PAGE = 4
    SCREENS = 2
    """How many screen heights of text a page should fill."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.entries: list[Entry] = []
        self.mounted_from = 0  # entries[mounted_from:] have widgets
        self._loading_older = False

    @staticmethod
    def make_view(entry: Entry) -> MessageView:
        return UserMessage(entry) if entry.role == "user" else AssistantMessage(entry)

    def compose(self) -> ComposeResult:
        yield self._older_line()
        yield self._empty_line()

    def on_mount(self) -> None:
        self.anchor()

    async def show(self, entries: Sequence[Entry]) -> None:
        """Replace everything with ``entries`` (mounting only the last page)."""
        self.entries = list(entries)
        self.mounted_from = self.page_start(len(self.entries))
        with self.app.batch_update():
            await self.remove_children()
            widgets: list[Static | MessageView] = [self._older_line(), self._empty_line()]
            widgets.extend(self.make_view(e) for e in self.entries[self.mounted_from :])
            await self.mount_all(widgets)
        self.anchor()

    async def truncate(self, keep: int) -> None:
        """Drop the entries from index ``keep`` on (a branch switch or regenerate replaces
        them)."""
        if keep < self.mounted_from:
            await self.show(self.entries[:keep])
            return
        doomed = [v for v in self.query_children(MessageView) if self._index_of(v) >= keep]
        self.entries = self.entries[:keep]
        if doomed:
            await self.remove_children(doomed)

    async def add(self, entry: Entry) -> MessageView:
        """Append one message at the bottom and return its widget."""
        self.entries.append(entry)
        view = self.make_view(entry)
        for empty in self.query_children("#empty"):
            empty.display = False
        await self.mount(view)
        self.anchor()
        return view

    def page_start(self, end: int) -> int:
        """Where a page ending before ``end`` starts: enough messages to fill about
        :attr:`SCREENS` screens (from a rough line count), between ``MIN_PAGE`` and ``PAGE``."""
        width = max(20, (self.size.width or self.app.size.width) - 6)
        wanted = self.SCREENS * max(10, self.size.height or self.app.size.height)
        rows = 0
        start = end
        while start > 0 and end - start < self.PAGE:
            if end - start >= self.MIN_PAGE and rows >= wanted:
                break
            start -= 1
            lines = self.entries[start].content.split("\n")
            rows += 3 + sum(1 + len(line) // width for line in lines)
        return start

    def view_for(self, message_id: int) -> MessageView | None:
        for view in self.query_children(MessageView):
            if view.message_id == message_id:
                return view
        return None

    def index_of(self, message_id: int) -> int | None:
        for i, entry in enumerate(self.entries):
            if entry.id == message_id:
                return i
        return None

    def _index_of(self, view: MessageView) -> int:
        found = self.index_of(view.message_id)
        return -1 if found is None else found

    def _older_line(self) -> OlderMessages:
        line = OlderMessages(self._older_text(), id="older")
        line.display = self.mounted_from > 0
        return line

    def _empty_line(self) -> Static:
        line = Static(EMPTY_HINT, id="empty")
        line.display = not self.entries
        return line

    def _older_text(self) -> str:
        n = self.mounted_from
        return f"▲ {n} earlier message{'s' if n != 1 else ''}: scroll up or click to load"

    async def load_older(self) -> int:
        """Mount the previous page of messages above the first mounted one, keeping what is on
        screen in place. Returns how many were added."""
        if self._loading_older or self.mounted_from == 0:
            return 0
        self._loading_older = True
        try:
            start = self.page_start(self.mounted_from)
            views = [self.make_view(e) for e in self.entries[start : self.mounted_from]]
            before_height = self.virtual_size.height
            before_y = self.scroll_y
            older = self.query_one("#older", OlderMessages)
            await self.mount_all(views, after=self.query_one("#empty"))
            self.mounted_from = start
            older.update(self._older_text())
            older.display = start > 0

            def keep_position() -> None:
                grown = self.virtual_size.height - before_height
                self.scroll_to(y=before_y + grown, animate=False, immediate=True)

            self.call_after_refresh(keep_position)
            return len(views)
        finally:
            self._loading_older = False

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value <= 0 < old_value and self.mounted_from > 0:
            self.run_worker(self.load_older(), group="transcript")
