"""One message in the transcript: the user's (plain text) or the model's (Markdown, streamed).

Message widgets render what they are given and post what the user asked for (edit, regenerate,
switch branch); the chat screen decides what that means. Copying is a pure UI matter and is done
here.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Markdown, Static
from textual.widgets._markdown import MarkdownFence

from chatterm.outcome import outcome
from chatterm.tui.streaming import SETTLE_INTERVAL, StreamSplitter, code_blocks
from chatterm.tui.widgets.open_block import OpenBlock
from chatterm.tui.widgets.reply_markdown import ReplyMarkdown
from chatterm.tui.widgets.thinking_block import ThinkingBlock

STATUS_LABELS = {"streaming": "streaming…", "waiting": "waiting for the model…"}
"""Labels of a reply still on its way; a finished one shows its :func:`outcome` word."""


@dataclass
class Entry:
    """What the transcript shows for one message; built by the screen from the store."""

    id: int
    role: str
    content: str
    status: str = "complete"
    model: str | None = None
    finish_reason: str | None = None
    branch_index: int = 0
    branch_total: int = 1
    attachments: tuple[str, ...] = ()  # how each attachment is named ("notes.md · 120 tok")
    reasoning: str = ""  # a reasoning model's thinking, shown folded above the answer
    thinking_summary: str = ""  # "thought for 4.1 s, 312 tokens"
    thinking_open: bool = False  # the conversation's choice: thinking shown open


class MessageView(Widget, can_focus=True):
    """Base for both kinds of message: a header line (who, status, branch) and a body."""

    BINDINGS = [
        Binding("c", "copy", "Copy", tooltip="Copy this message to the clipboard"),
        Binding("left,[", "branch(-1)", "Prev branch", tooltip="Show the previous alternative"),
        Binding("right,]", "branch(1)", "Next branch", tooltip="Show the next alternative"),
        Binding("up,k", "neighbour(-1)", "Previous message", show=False),
        Binding("down,j", "neighbour(1)", "Next message", show=False),
    ]

    @dataclass
    class BranchRequested(Message):
        """Show another alternative (sibling) of this message: ``step`` is -1 or +1."""

        view: MessageView
        step: int

        @property
        def control(self) -> MessageView:
            return self.view

    def __init__(self, entry: Entry) -> None:
        super().__init__(classes=entry.role)
        self.entry = entry

    @property
    def message_id(self) -> int:
        return self.entry.id

    @property
    def text(self) -> str:
        return self.entry.content

    def header_content(self) -> Content:
        who = "You" if self.entry.role == "user" else (self.entry.model or "assistant")
        parts: list[str | tuple[str, str]] = [(who, "bold")]
        label = STATUS_LABELS.get(self.entry.status)
        if label:
            parts.append(("  · " + label, "dim"))
        else:
            word = outcome(self.entry.status, self.entry.finish_reason)
            if word != "done":  # the usual end needs no word
                parts.append(("  · " + word, "italic $warning"))
        if self.entry.branch_total > 1:
            parts.append(
                (
                    f"   ‹ branch {self.entry.branch_index + 1}/{self.entry.branch_total} ›",
                    "$accent",
                )
            )
        return Content.assemble(*parts)

    def refresh_header(self) -> None:
        self.query_one(".header", Static).update(self.header_content())

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.text)
        self.notify(f"Copied the message ({len(self.text)} characters)", timeout=2)

    def action_branch(self, step: int) -> None:
        if self.entry.branch_total > 1:
            self.post_message(self.BranchRequested(self, step))

    def action_neighbour(self, step: int) -> None:
        views = list(self.screen.query(MessageView))
        index = views.index(self) + step
        if 0 <= index < len(views):
            views[index].focus()
            views[index].scroll_visible()


class UserMessage(MessageView):
    """What the user sent, shown exactly as typed (never re-wrapped as Markdown)."""

    BINDINGS = [
        Binding("e", "edit", "Edit & resend", tooltip="Edit this prompt and send it as a branch"),
    ]

    @dataclass
    class EditRequested(Message):
        """Put this prompt in the input for editing; sending it makes a new branch."""

        view: UserMessage

        @property
        def control(self) -> UserMessage:
            return self.view

    def compose(self) -> ComposeResult:
        yield Static(self.header_content(), classes="header")
        for label in self.entry.attachments:
            yield Static(f"📎 {label}", classes="attachment", markup=False)
        yield Static(self.entry.content, classes="body", markup=False)

    def action_edit(self) -> None:
        self.post_message(self.EditRequested(self))


class AssistantMessage(MessageView):
    """A reply. While streaming, completed blocks are appended to the Markdown widget and the
    rest is shown as light text below it (:class:`OpenBlock`); :meth:`finish` re-renders the
    whole reply once.

    Blocks are appended with ``Markdown.append`` awaited inside one batch update rather than
    through a ``MarkdownStream``: hand-overs are at most one per ``SETTLE_INTERVAL``, so there
    is nothing to coalesce, and awaiting lets the text leave the open block in the same frame
    it joins the Markdown (one layout of the transcript instead of two, and no frame where the
    text shows twice or not at all).
    """

    BINDINGS = [
        Binding("y", "copy_code", "Copy code", tooltip="Copy a code block (again: the next one)"),
        Binding("r", "regenerate", "Regenerate", tooltip="Generate another reply to this prompt"),
        Binding("t", "toggle_thinking", "Thinking", tooltip="Open or fold this reply's thinking"),
    ]

    @dataclass
    class RegenerateRequested(Message):
        view: AssistantMessage

        @property
        def control(self) -> AssistantMessage:
            return self.view

    def __init__(self, entry: Entry) -> None:
        super().__init__(entry)
        self._splitter: StreamSplitter | None = None
        self._code_index = -1

    def compose(self) -> ComposeResult:
        yield Static(self.header_content(), classes="header")
        streaming = self.entry.status in ("streaming", "waiting")
        thinking = ThinkingBlock(
            self.entry.reasoning, self.entry.thinking_summary, open=self.entry.thinking_open
        )
        thinking.display = bool(self.entry.reasoning)
        yield thinking
        body = "" if streaming else self.entry.content
        if not body and self.entry.reasoning and not streaming:
            body = "*(no answer: the reply was all thinking)*"
        yield ReplyMarkdown(body, classes="body")
        block = OpenBlock(classes="tail")
        block.display = False
        yield block

    @property
    def streaming(self) -> bool:
        return self._splitter is not None

    def start_stream(self) -> None:
        """Begin streaming into this (empty) message."""
        self._splitter = StreamSplitter(SETTLE_INTERVAL)
        self.entry.content = ""
        self.entry.reasoning = ""

    @property
    def thinking(self) -> ThinkingBlock:
        return self.query_one(ThinkingBlock)

    def append_reasoning(self, text: str) -> None:
        """Add a batch of thinking: the block opens under "thinking…" and streams it."""
        if not text:
            return
        block = self.thinking
        if not self.entry.reasoning:
            block.text = ""
            block.start()
        self.entry.reasoning += text
        block.append(text)

    def fold_thinking(self, summary: str) -> None:
        """The answer started (or the reply ended): the thinking folds to one line, unless
        this conversation keeps it open."""
        if self.entry.reasoning:
            block = self.thinking
            block.fold(summary, open=self.entry.thinking_open)
            self.entry.thinking_summary = block.summary

    def action_toggle_thinking(self) -> None:
        if not self.entry.reasoning:
            self.notify("This reply has no thinking", severity="warning", timeout=2)
            return
        self.thinking.toggle()

    async def append(self, text: str) -> None:
        """Add a batch of generated text: completed blocks go to the Markdown widget (parsed
        once each), the open block to the cheap :class:`OpenBlock` below it."""
        splitter = self._splitter
        if splitter is None:
            return
        if text and self.thinking.streaming:
            self.fold_thinking("")  # the time on screen; the reply's stats replace it
        settled = splitter.feed(text)
        self.entry.content = splitter.text
        open_block = self.query_one(OpenBlock)
        if settled:
            with self.app.batch_update():
                await self.query_one(Markdown).append(settled)
                open_block.clear()
                # Apart from the blocks above it, as the next block will be.
                open_block.add_class("-after-blocks")
                open_block.show(splitter.tail)
        else:
            open_block.show(splitter.tail)

    async def finish(self, status: str, finish_reason: str | None = None) -> None:
        """End the stream: one full Markdown parse of the reply, the open block cleared."""
        self._splitter = None
        self.entry.status = status
        self.entry.finish_reason = finish_reason
        self.query_one(OpenBlock).clear()
        self.query_one(OpenBlock).remove_class("-after-blocks")
        body = self.entry.content
        if not body.strip() and self.entry.reasoning:
            body = "*(no answer: the reply was all thinking)*"
        await self.query_one(Markdown).update(body)
        self.refresh_header()

    def set_status(self, status: str) -> None:
        self.entry.status = status
        self.refresh_header()

    def action_copy_code(self) -> None:
        blocks = code_blocks(self.text)
        if not blocks:
            self.notify("This message has no code block", severity="warning", timeout=2)
            return
        self._code_index = (self._code_index + 1) % len(blocks)
        self.app.copy_to_clipboard(blocks[self._code_index])
        self.notify(f"Copied code block {self._code_index + 1}/{len(blocks)}", timeout=2)

    def action_regenerate(self) -> None:
        self.post_message(self.RegenerateRequested(self))

    def on_click(self, event: events.Click) -> None:
        """A click on a code block copies it."""
        widget = event.widget
        while widget is not None and widget is not self:
            if isinstance(widget, MarkdownFence):
                self.app.copy_to_clipboard(widget.code)
                self.notify("Copied the code block", timeout=2)
                return
            widget = widget.parent  # type: ignore[assignment]
