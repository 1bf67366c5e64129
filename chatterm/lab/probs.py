"""Probability bands, so the CLI and the TUI colour a token by its probability the same way."""

from __future__ import annotations

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
