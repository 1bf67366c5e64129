"""Text as the tokenizer split it: one coloured chip per token, alternating colours, so where
one token ends and the next begins is visible at a glance.

Control tokens (``<|im_start|>``) stand out in the warning colour; byte-fallback pieces (a
character split over several tokens) read as ``<0xE2>`` in italics; a newline shows as ↵ and
then breaks the line, a tab as →. Ids appear after each piece on demand.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.widgets import Static

from chatterm.engine.base import TokenPiece

CHIP_STYLES = ("$text on $primary 45%", "$text on $accent 35%")
SPECIAL_STYLE = "bold $text on $warning 45%"
FALLBACK_STYLE = "italic $text on $error 35%"
ID_STYLE = "dim"


def chip_text(piece: str) -> str:
    return piece.replace("\t", "→").replace("\r", "␍").replace("\n", "↵\n")


def chips_content(pieces: Sequence[TokenPiece], *, show_ids: bool = False) -> Content:
    parts: list[tuple[str, str] | str] = []
    for i, piece in enumerate(pieces):
        if piece.special:
            style = SPECIAL_STYLE
        elif piece.byte_fallback:
            style = FALLBACK_STYLE
        else:
            style = CHIP_STYLES[i % 2]
        text = chip_text(piece.piece) or "∅"
        if show_ids:
            # The id goes before a trailing newline, so it stays on the chip's line.
            body, newline = (text[:-1], "\n") if text.endswith("\n") else (text, "")
            parts += [(body, style), (f"{piece.token_id}", f"{style} {ID_STYLE}")]
            if newline:
                parts.append(newline)
            parts.append(" ")
        else:
            parts.append((text, style))
    return Content.assemble(*parts)


def summary(pieces: Sequence[TokenPiece], text: str) -> str:
    special = sum(p.special for p in pieces)
    fallback = sum(p.byte_fallback for p in pieces)
    extra = []
    if special:
        extra.append(f"{special} special")
    if fallback:
        extra.append(f"{fallback} byte-fallback")
    n = len(pieces)
    return (
        f"{n} token{'s' if n != 1 else ''} · {len(text)} characters"
        + (f" · {len(text) / n:.1f} characters per token" if n else "")
        + (f" · {', '.join(extra)}" if extra else "")
    )


class TokenChips(Static):
    """Shows token pieces as chips; ``show_ids`` adds each token's id."""

    DEFAULT_CSS = """
    TokenChips {
        height: auto;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.pieces: list[TokenPiece] = []
        self.show_ids = False

    def show(self, pieces: Sequence[TokenPiece], *, show_ids: bool | None = None) -> None:
        self.pieces = list(pieces)
        if show_ids is not None:
            self.show_ids = show_ids
        self.update(chips_content(self.pieces, show_ids=self.show_ids))

    def toggle_ids(self) -> None:
        self.show(self.pieces, show_ids=not self.show_ids)
