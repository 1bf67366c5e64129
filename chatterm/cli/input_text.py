"""Text from the command line and stdin, read through one policy.

**Size.** stdin is read as bytes up to a limit and refused beyond it, before anything is
decoded or tokenized: a text of ``B`` bytes needs at least ``B / L`` tokens when the model's
longest token is ``L`` bytes, so a byte count alone proves that oversized input cannot fit the
context window (``cat big.log | chatterm ask`` fails at once, and ``/dev/zero`` cannot make it
read forever).

**Encoding.** Input is UTF-8 whatever the locale says. Bytes that are not valid UTF-8 (on
stdin, or in arguments, which Python hands over with surrogate escapes) become U+FFFD
replacement characters, and a note on stderr says so once per run; the rest of the text is
kept, never dropped.
"""

from __future__ import annotations

import sys

from chatterm.errors import ContextOverflowError

MAX_STDIN_BYTES = 64 << 20
"""The most stdin any command reads when no context window bounds it (``tokenize``, ``render``,
the lab): ``cat /dev/zero | chatterm tokenize`` must not read forever."""

_noted = False


def note_replaced(where: str) -> None:
    """Say once per run that invalid UTF-8 was replaced."""
    global _noted
    if not _noted:
        _noted = True
        print(
            f"chatterm: note: {where} held bytes that are not valid UTF-8; "
            "each was replaced with U+FFFD (\N{REPLACEMENT CHARACTER})",
            file=sys.stderr,
        )


def decode(raw: bytes, where: str = "stdin") -> str:
    """UTF-8 bytes as text, invalid sequences replaced (and noted once)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        note_replaced(where)
        return raw.decode("utf-8", errors="replace")


def clean(text: str | None, where: str = "the arguments") -> str | None:
    """An argument as valid text: surrogate escapes (undecodable bytes in ``argv``) become
    U+FFFD, noted once. ``None`` stays ``None``."""
    if text is None:
        return None
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    note_replaced(where)
    try:
        raw = text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escape of a byte
        raw = text.encode("utf-8", errors="replace")
    return raw.decode("utf-8", errors="replace")


def clean_all(texts: list[str] | None, where: str = "the arguments") -> list[str]:
    return [clean(t, where) or "" for t in texts or []]


def read_stdin(
    limit: int | None = None, *, window: int | None = None, per_token: int | None = None
) -> str:
    """Text piped on stdin ("" when stdin is a terminal or absent), decoded by the policy
    above. More than ``limit`` bytes (default :data:`MAX_STDIN_BYTES`) raise
    :class:`ContextOverflowError` (exit 4) after reading at most ``limit + 1`` bytes;
    ``window`` (tokens) and ``per_token`` (the model's longest token, in bytes) explain the
    limit in the message."""
    if limit is None:
        limit = MAX_STDIN_BYTES
    stream = sys.stdin
    if stream is None or stream.closed:
        return ""
    try:
        if stream.isatty():
            return ""
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # replaced by a text-only stream (tests, embedding)
            text = stream.read(limit + 1)
            raw = text.encode("utf-8", errors="surrogateescape")
        else:
            raw = buffer.read(limit + 1)
    except (OSError, ValueError):
        return ""
    if len(raw) > limit:
        why = (
            f"; no token of this model covers more than {per_token} bytes, so that is more "
            f"than the {window:,}-token context window can hold"
            if window and per_token
            else ""
        )
        advice = "send less or raise --ctx-size" if why else "send less"
        raise ContextOverflowError(f"stdin holds more than {limit:,} bytes{why}; {advice}")
    return decode(raw)
