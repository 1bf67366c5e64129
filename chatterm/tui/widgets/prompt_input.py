"""The message input: Enter sends, Ctrl+J inserts a newline, Up/Down recall earlier prompts,
``@`` at the start of a word asks to attach a file."""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.message import Message
from textual.widgets import TextArea
from textual.widgets.text_area import Selection


class PromptInput(TextArea):
    """A multi-line input that posts :class:`Submitted` and clears itself.

    It does not know what submitting means: the chat screen decides. Most terminals cannot tell
    Shift+Enter from Enter, so a newline is Ctrl+J (Shift+Enter also works where the terminal
    reports it). Up on the first line and Down on the last line walk through ``recall``; the
    text being typed is kept and comes back after the newest entry.
    """

    @dataclass
    class Submitted(Message):
        input: PromptInput
        text: str

        @property
        def control(self) -> PromptInput:
            return self.input

    @dataclass
    class AttachRequested(Message):
        """``@`` was typed at the start of a word: the user wants to attach a file. The ``@``
        is not inserted; :meth:`PromptInput.insert_at` puts it back if nothing is chosen."""

        input: PromptInput

        @property
        def control(self) -> PromptInput:
            return self.input

    def __init__(self, *, id: str | None = None, placeholder: str = "") -> None:
        super().__init__(
            id=id,
            soft_wrap=True,
            tab_behavior="focus",
            show_line_numbers=False,
            compact=True,
            placeholder=placeholder,
            highlight_cursor_line=False,
        )
        self.recall: list[str] = []
        self._history_index: int | None = None  # None: editing the draft, not a history entry
        self._draft = ""

    def remember(self, text: str) -> None:
        """Add a sent prompt to the recall list (newest last, no immediate repeats)."""
        if text.strip() and (not self.recall or self.recall[-1] != text):
            self.recall.append(text)
        self._history_index = None

    def restore(self, text: str) -> None:
        """Put ``text`` back (a reply failed): it replaces what is typed only if that is empty,
        otherwise it goes before it, so nothing typed is lost."""
        current = self.text
        self.text = text if not current.strip() else f"{text}\n{current}"
        self.move_cursor(self.document.end)

    def fill(self, text: str, *, select_from: str = "", select_to: str = "") -> None:
        """Replace the text; select the first span from ``select_from`` to ``select_to`` (a
        placeholder such as ``⟨topic⟩``) so typing replaces it, else put the cursor at the end."""
        self.text = text
        start = text.find(select_from) if select_from else -1
        end = text.find(select_to, start + 1) if start >= 0 else -1
        if start < 0 or end < 0:
            self.move_cursor(self.document.end)
            return

        def location(index: int) -> tuple[int, int]:
            return text.count("\n", 0, index), index - (text.rfind("\n", 0, index) + 1)

        self.selection = Selection(location(start), location(end + len(select_to)))

    def submit(self) -> None:
        text = self.text
        if not text.strip():
            return
        self.post_message(self.Submitted(self, text))
        self.remember(text)
        self.clear()

    def insert_at(self) -> None:
        """Type the ``@`` that opened the file picker after all (the picker was cancelled)."""
        start, end = self.selection
        self.replace("@", start, end, maintain_selection_offset=False)

    def _at_word_start(self) -> bool:
        row, column = self.cursor_location
        if column == 0:
            return True
        return self.document.get_line(row)[column - 1].isspace()

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key.startswith("alt+"):
            # A terminal sends alt+c as ESC c, which Textual reports as "alt+c" carrying the
            # printable character "c": the text area would type it, and the key would never
            # reach alt+c's binding. Skip the typing; the key goes on to the bindings.
            event.prevent_default()
            return
        if event.character == "@" and self._at_word_start():  # not in name@example.org
            self._consume(event)
            self.post_message(self.AttachRequested(self))
        elif key == "enter":
            self._consume(event)
            self.submit()
        elif key in ("ctrl+j", "shift+enter", "newline"):
            self._consume(event)
            start, end = self.selection
            self.replace("\n", start, end, maintain_selection_offset=False)
        elif key == "up" and self.cursor_location[0] == 0 and self.recall:
            self._consume(event)
            self._recall(-1)
        elif key == "down" and self._history_index is not None and self._on_last_line():
            self._consume(event)
            self._recall(+1)

    @staticmethod
    def _consume(event: events.Key) -> None:
        event.stop()
        event.prevent_default()

    def _on_last_line(self) -> bool:
        return self.cursor_location[0] >= self.document.line_count - 1

    def _recall(self, step: int) -> None:
        if self._history_index is None:
            if step > 0:
                return
            self._draft = self.text
            index = len(self.recall) - 1
        else:
            index = self._history_index + step
        if index < 0:
            return
        if index >= len(self.recall):
            self._history_index = None
            self.text = self._draft
        else:
            self._history_index = index
            self.text = self.recall[index]
        # The cursor goes to the end, ready to edit; in a multi-line entry Up first walks its
        # lines, as in a shell.
        self.move_cursor(self.document.end)
