"""How a reply ended, in one vocabulary for every front end: the chat app's message headers and
side panel, ``chatterm ask``'s stats line, ``chatterm history show`` and the help screen.

The stored values stay what they are (a message's ``status``: complete, stopped, interrupted,
error, streaming; the engine's ``finish_reason``: stop, length, cancelled, error, as in the
OpenAI API and in ``--json``); this module only says them to people.
"""

from __future__ import annotations

OUTCOMES: tuple[tuple[str, str], ...] = (
    ("done", "the model ended its answer (or a stop string appeared)"),
    ("cut", "the answer reached max tokens (or filled the context window)"),
    ("stopped", "you stopped it (Esc in the chat app, Ctrl-C in ask); its text is kept"),
    ("interrupted", "chatterm ended before the answer did (a crash or kill); its text is kept"),
    ("error", "generation failed; the text so far is kept"),
)
"""Every word, with what it means (the help screen and the README list them)."""

_BY_REASON = {"stop": "done", "length": "cut", "cancelled": "stopped", "error": "error"}
_BY_STATUS = {"stopped": "stopped", "interrupted": "interrupted", "error": "error"}


def outcome(status: str | None = "complete", finish_reason: str | None = None) -> str:
    """The word for a reply with this stored ``status`` and engine ``finish_reason`` (either
    may be unknown): ``outcome("complete", "length") == "cut"``,
    ``outcome(finish_reason="cancelled") == "stopped"``. Empty while a reply is streaming."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status in ("streaming", "waiting"):
        return ""
    return _BY_REASON.get(finish_reason or "stop", "done")
