"""Whole conversations to render: from a file in the import format, or from the history.

``chatterm render --messages FILE`` and ``chatterm render -c ID`` show what the model sees for a
whole conversation; both end with the messages as the engine takes them (system prompt first,
then the active branch, then an optional next user message).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatterm.engine.events import ChatMessage
from chatterm.errors import UsageError

MAX_FILE_BYTES = 64 * 2**20


def parse_messages(text: str, source: str) -> list[ChatMessage]:
    """The conversation in ``text``: the import format (``{"messages": [{"role", "content"}…]}``
    as ``chatterm history export`` writes it; ``system_prompt`` comes first when present). With
    ``id``/``parent_id`` branches, the branch ending at the last message (or ``current_leaf``)
    is used. Raises :class:`UsageError` (exit 2) saying what is wrong, prefixed by ``source``."""
    from chatterm.store.transfer import parse_import

    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{source}: not valid JSON ({exc})") from None
    try:
        parsed = parse_import(data)
    except UsageError as exc:
        raise UsageError(f"{source}: {exc}") from None
    except RecursionError:
        raise UsageError(f"{source}: nested too deeply") from None
    by_id = {m.local_id: m for m in parsed.messages}
    leaf = parsed.current_leaf if parsed.current_leaf in by_id else None
    if leaf is None and parsed.messages:
        leaf = parsed.messages[-1].local_id
    branch = []
    while leaf is not None:
        message = by_id[leaf]
        branch.append(message)
        leaf = message.parent
    branch.reverse()
    head = [ChatMessage("system", parsed.system_prompt)] if parsed.system_prompt else []
    return [*head, *(ChatMessage(m.role, m.content) for m in branch)]  # type: ignore[arg-type]


def read_messages(path: str, stdin_text: str | None = None) -> list[ChatMessage]:
    """Messages from the file at ``path`` (``-``: ``stdin_text``); see :func:`parse_messages`."""
    if path == "-":
        return parse_messages(stdin_text or "", "stdin")
    file = Path(path)
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise UsageError(f"{path}: larger than {MAX_FILE_BYTES // 2**20} MiB")
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_messages(text, path)


def saved_conversation(conversation_id: str) -> tuple[Any, list[ChatMessage]]:
    """A saved conversation (id or prefix) and its messages as the next reply would see them:
    its system prompt, then the active branch. Raises ``StoreError`` for an unknown id."""
    from chatterm.store import ConversationStore

    with ConversationStore() as store:
        conversation = store.get_conversation(store.resolve_id(conversation_id))
        path = store.active_path(conversation.id)
    system = conversation.system_prompt
    head = [ChatMessage("system", system)] if system else []
    body = [m.to_chat() for m in path if m.role != "system" and (m.content or m.role == "user")]
    return conversation, [*head, *body]


def with_system(messages: list[ChatMessage], system: str | None) -> list[ChatMessage]:
    """``messages`` with their system prompt replaced by ``system`` (when given)."""
    if system is None:
        return messages
    rest = [m for m in messages if m.role != "system"]
    return [ChatMessage("system", system), *rest] if system else rest
