"""The ``@`` file picker: fuzzy-find a file or directory under the working directory to attach.

Paths are listed in a worker (files and directories, ``.gitignore`` honoured as ``chatterm ask
-f DIR`` does, at most :data:`MAX_PATHS`), then ranked as the user types with Textual's own
fuzzy matcher (``textual.fuzzy.Matcher``, the command palette's), best matches first with the
matched letters highlighted. Enter returns the path relative to the root; Esc returns ``None``.
"""

from __future__ import annotations

from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.fuzzy import Matcher
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

MAX_PATHS = 20_000
SHOWN = 50


def list_paths(root: Path, limit: int = MAX_PATHS) -> list[str]:
    """Files and directories under ``root`` (relative, directories ending in ``/``), skipping
    ``.git`` and what ``.gitignore`` files ignore; at most ``limit``."""
    from chatterm.attachments import walk

    out: list[str] = []
    seen_dirs: set[str] = set()
    for path in walk(root):
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth]) + "/"
            if folder not in seen_dirs:
                seen_dirs.add(folder)
                out.append(folder)
        out.append(rel)
        if len(out) >= limit:
            break
    return out


def rank(query: str, candidates: list[str], limit: int = SHOWN) -> list[str]:
    """The ``limit`` best fuzzy matches of ``query``, best first (shorter paths win ties)."""
    if not query:
        return candidates[:limit]
    matcher = Matcher(query)
    scored = [(matcher.match(c), c) for c in candidates]
    hits = [(score, c) for score, c in scored if score > 0]
    hits.sort(key=lambda item: (-item[0], len(item[1])))
    return [c for _, c in hits[:limit]]


class PathPickerScreen(ModalScreen[str | None]):
    """Type to fuzzy-filter paths, Up/Down to move, Enter to attach, Esc to cancel."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="path_picker.cancel"),
        Binding("down", "move(1)", "Down", show=False),
        Binding("up", "move(-1)", "Up", show=False),
    ]

    def __init__(self, root: Path) -> None:
        super().__init__(classes="dialog", id="path-picker")
        self.root = root
        self.paths: list[str] = []

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box picker-box"):
            yield Static(f"Attach a file or directory from {self.root}", classes="dialog-question")
            yield Input(placeholder="Type to search…", id="path-filter", compact=True)
            yield OptionList(id="path-options")

    def on_mount(self) -> None:
        self.query_one("#path-filter", Input).focus()
        self._list()

    @work(thread=True, exclusive=True, group="paths", exit_on_error=False)
    def _list(self) -> None:
        paths = list_paths(self.root)
        self.app.call_from_thread(self._listed, paths)

    def _listed(self, paths: list[str]) -> None:
        self.paths = paths
        self._fill(self.query_one("#path-filter", Input).value)

    def _fill(self, text: str) -> None:
        options = self.query_one("#path-options", OptionList)
        options.clear_options()
        query = text.strip()
        matcher = Matcher(query) if query else None
        for path in rank(query, self.paths):
            label = matcher.highlight(path) if matcher is not None else path
            options.add_option(Option(label, id=path))
        if options.option_count:
            options.highlighted = 0

    @on(Input.Changed, "#path-filter")
    def _filter(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(Input.Submitted, "#path-filter")
    def _submit(self, event: Input.Submitted) -> None:
        option = self.query_one("#path-options", OptionList).highlighted_option
        if option is not None:
            self.dismiss(option.id)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_move(self, step: int) -> None:
        options = self.query_one("#path-options", OptionList)
        if step > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()

    def action_cancel(self) -> None:
        self.dismiss(None)
