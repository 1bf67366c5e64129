"""Textual's Markdown widget with what replies need and it lacks: table columns aligned as the
table's delimiter row says (``:--``, ``:-:``, ``--:``)."""

from __future__ import annotations

from textual.widgets import Markdown
from textual.widgets._markdown import (
    MarkdownBlock,
    MarkdownTable,
    MarkdownTableContent,
    MarkdownTH,
)

_ALIGN = {"text-align:left": "left", "text-align:center": "center", "text-align:right": "right"}


def _flatten(block: MarkdownBlock) -> list[MarkdownBlock]:
    out: list[MarkdownBlock] = []
    for child in block._blocks:
        out.append(child)
        out.extend(_flatten(child))
    return out


class AlignedTable(MarkdownTable):
    """A table whose cells follow their column's alignment (markdown-it puts it on each header
    cell's token as ``style="text-align:right"``); Textual's own table left-aligns them all."""

    def column_alignment(self) -> list[str]:
        headers = [b for b in _flatten(self) if isinstance(b, MarkdownTH)]
        return [_ALIGN.get(str(h._token.attrs.get("style", "")), "left") for h in headers]

    def on_mount(self) -> None:
        self.call_after_refresh(self.align_cells)

    def align_cells(self) -> None:
        columns = self.column_alignment()
        if not columns or all(a == "left" for a in columns):
            return
        for content in self.query(MarkdownTableContent):
            for index, cell in enumerate(content.children):  # headers, then row by row
                cell.styles.text_align = columns[index % len(columns)]  # type: ignore[assignment]


class ReplyMarkdown(Markdown):
    """The Markdown of a reply (see the module's docstring)."""

    BLOCKS = {**Markdown.BLOCKS, "table_open": AlignedTable}
