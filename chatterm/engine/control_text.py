"""Keep control-token text inside message content from becoming control tokens.

The template must see the real content (templates strip reasoning, trim, split), so content is
not replaced by placeholders. Only the text of the vocabulary's control tokens
(``<|im_end|>``, ``<start_of_turn>``…) found inside content is swapped for private-use sentinel
characters before rendering (:func:`neutralise`); after rendering, each sentinel becomes a
plain-text segment again, tokenized with ``special=False`` (:func:`restore`), and everything
else is tokenized in one piece with special tokens parsed, as llama.cpp and transformers do.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chatterm.errors import ChatTemplateError


@dataclass(frozen=True)
class Segment:
    """A piece of the rendered prompt: tokenized with special tokens parsed (``special``) or
    as plain text (control-token text that came from message content)."""

    text: str
    special: bool


_SENTINEL_BASES = (0xF0000, 0x100000, 0xE000)


@functools.lru_cache(maxsize=8)
def _control_pattern(control_texts: frozenset[str]) -> re.Pattern[str] | None:
    texts = sorted((t for t in control_texts if t), key=len, reverse=True)
    if not texts:
        return None
    return re.compile("|".join(re.escape(t) for t in texts))


def _pick_base(strings: Iterable[str]) -> int:
    for base in _SENTINEL_BASES:
        lo, hi = base, base + 0x1000
        if not any(lo <= ord(ch) < hi for s in strings for ch in s if ord(ch) >= 0xE000):
            return base
    raise ChatTemplateError("the messages use every private-use character range chatterm needs")


def neutralise(
    messages: Sequence[dict[str, Any]], control_texts: frozenset[str]
) -> tuple[list[dict[str, Any]], list[str], int]:
    """Swap control-token text inside message fields for sentinel characters; returns the new
    messages, the swapped texts in sentinel order, and the sentinel base code point."""
    pattern = _control_pattern(control_texts)
    if pattern is None:
        return [dict(m) for m in messages], [], 0
    strings = [v for m in messages for k, v in m.items() if k != "role" and isinstance(v, str)]
    if not any(pattern.search(s) for s in strings):
        return [dict(m) for m in messages], [], 0
    base = _pick_base(strings)
    swapped: list[str] = []

    def swap(match: re.Match[str]) -> str:
        if len(swapped) >= 0x1000:
            raise ChatTemplateError("the messages hold more than 4,096 control-token texts")
        swapped.append(match.group(0))
        return chr(base + len(swapped) - 1)

    out = []
    for m in messages:
        out.append(
            {
                k: pattern.sub(swap, v) if k != "role" and isinstance(v, str) else v
                for k, v in m.items()
            }
        )
    return out, swapped, base


def restore(text: str, swapped: Sequence[str], base: int) -> list[Segment]:
    """Split rendered ``text`` at sentinels: scaffold segments and plain-text segments."""
    if not swapped:
        return [Segment(text, True)] if text else []
    sentinel = re.compile(f"[{chr(base)}-{chr(base + len(swapped) - 1)}]")
    segments: list[Segment] = []
    pos = 0
    for match in sentinel.finditer(text):
        if match.start() > pos:
            segments.append(Segment(text[pos : match.start()], True))
        segments.append(Segment(swapped[ord(match.group(0)) - base], False))
        pos = match.end()
    if pos < len(text):
        segments.append(Segment(text[pos:], True))
    return segments
