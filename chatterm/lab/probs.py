"""Probability bands, so the CLI and the TUI colour a token by its probability the same way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chatterm.engine.events import Candidate, Token

# (lower bound, colour name, meaning); colour names are ones both rich and Textual understand.
BANDS: tuple[tuple[float, str, str], ...] = (
    (0.8, "green", "≥ 0.8"),
    (0.5, "yellow", "0.5–0.8"),
    (0.2, "dark_orange", "0.2–0.5"),
    (0.0, "red", "< 0.2"),
)


def band_colour(prob: float | None) -> str | None:
    """The colour for a token chosen with probability ``prob``; ``None`` when unknown."""
    if prob is None:
        return None
    for lower, colour, _ in BANDS:
        if prob >= lower:
            return colour
    return BANDS[-1][1]


def legend() -> list[tuple[str, str]]:
    """(colour, label) pairs, likeliest first, for a key under coloured text."""
    return [(colour, label) for _, colour, label in BANDS]


def token_records(tokens: Sequence[Token], engine: Any = None) -> list[dict[str, Any]]:
    """Per-token probabilities as JSON-ready dicts: ``{"token", "id", "prob", "top": [{"token",
    "id", "prob"}…], "text"}``, plus ``"forced": true`` for a token a grammar left as the
    only candidate. ``token`` is the token's own text (its piece); ``text`` is what
    the reply gained with it (empty while a multi-byte character is incomplete). The final
    flush of held-back text (``token_id`` −1, no probability) is not a token and is left out;
    remote servers send probabilities without token ids, so those tokens keep id −1."""
    out = []
    for t in tokens:
        if t.token_id < 0 and t.prob is None:
            continue
        piece = next((c.piece for c in t.top if c.token_id == t.token_id), None)
        if piece is None:
            known = t.token_id >= 0 and hasattr(engine, "piece")
            piece = engine.piece(t.token_id).piece if known else t.text
        out.append(
            {
                "token": piece,
                "id": t.token_id,
                "prob": t.prob,
                "top": [{"token": c.piece, "id": c.token_id, "prob": c.prob} for c in t.top],
                "text": t.text,
                **({"forced": True} if t.forced else {}),
            }
        )
    return out


def candidates_from_record(record: Mapping[str, Any]) -> list[Candidate]:
    """The top candidates of one saved :func:`token_records` entry, e.g. to rebuild a
    :class:`chatterm.lab.distribution.Distribution` with ``Distribution.from_candidates``."""
    return [Candidate(int(c["id"]), str(c["token"]), float(c["prob"])) for c in record["top"]]
