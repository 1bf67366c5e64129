"""Conversations as files: the JSON export (a lossless round trip) and a Markdown export.

The JSON holds the conversation's fields and ``messages``: every message of every branch, oldest
first, each with a conversation-local ``id`` (1, 2, …), its ``parent_id`` in those terms, and
``active`` (on the branch that was showing). Local ids make an export → import → export round
trip identical apart from a changed conversation id, whatever rows the database gave them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from chatterm.attachments import Attachment
from chatterm.errors import UsageError
from chatterm.outcome import outcome
from chatterm.store import ids
from chatterm.store.db import now, parse_timestamp
from chatterm.store.model import ROLES, STATUSES, Conversation, Message

FORMAT = "chatterm-conversation"
VERSION = 1
TITLE_LENGTH = 60


class ImportFormatError(UsageError):
    """The file is not a conversation chatterm can import; the message says why."""


def to_json(
    conversation: Conversation,
    messages: Iterable[Message],
    active: set[int],
    logprobs: Mapping[int, Any],
) -> dict[str, Any]:
    local: dict[int, int] = {}
    items = []
    for number, message in enumerate(messages, start=1):
        local[message.id] = number
        items.append(
            {
                "id": number,
                "parent_id": None if message.parent_id is None else local[message.parent_id],
                "role": message.role,
                "content": message.content,
                "reasoning": message.reasoning or None,
                "status": message.status,
                "active": message.id in active,
                "created": message.created.isoformat(),
                "model": message.model,
                "model_path": message.model_path,
                "model_hash": message.model_hash,
                "sampling": message.sampling,
                "stats": message.stats,
                "finish_reason": message.finish_reason,
                "logprobs": logprobs.get(message.id),
                **(
                    {"attachments": [_attachment_json(a) for a in message.attachments]}
                    if message.attachments
                    else {}
                ),
            }
        )
    data = {"format": FORMAT, "version": VERSION, **conversation.to_dict()}
    data.pop("message_count", None)
    leaf = conversation.current_leaf_id
    data["current_leaf"] = local.get(leaf) if leaf is not None else None
    data["messages"] = items
    return data


def _attachment_json(item: Attachment) -> dict[str, Any]:
    return {**item.to_dict(), "content": item.text}


def to_markdown(conversation: Conversation, path: Iterable[Message]) -> str:
    lines = [f"# {conversation.title or 'Untitled conversation'}", ""]
    facts = [f"id `{conversation.id}`", f"created {conversation.created:%Y-%m-%d %H:%M} UTC"]
    if conversation.model:
        facts.append(f"model {conversation.model}")
    if conversation.persona:
        facts.append(f"persona {conversation.persona}")
    lines += [" · ".join(facts), ""]
    if conversation.system_prompt:
        lines += ["## System", "", conversation.system_prompt, ""]
    for message in path:
        heading = message.role.capitalize()
        if message.role == "assistant" and message.model:
            heading += f" ({message.model})"
        lines += [f"## {heading}", ""]
        for item in message.attachments:
            fence = "`" * max(3, _longest_backtick_run(item.text) + 1)
            lines += [f"Attached `{item.source}`:", "", fence, item.text.rstrip("\n"), fence, ""]
        if message.reasoning:
            # A folded block on GitHub and most Markdown viewers: the thinking, then the answer.
            summary = message.thinking_summary
            lines += [f"<details><summary>{summary}</summary>", "", message.reasoning.strip()]
            lines += ["", "</details>", ""]
        lines += [message.content, ""]
        if message.role == "assistant":
            # How it ended, in the words every front end uses (chatterm.outcome).
            word = outcome(message.status, message.finish_reason)
            if message.status == "streaming":
                word = "still being written"
            if word != "done":
                lines += [f"*[reply {word}]*", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _longest_backtick_run(text: str) -> int:
    import re

    return max((len(m) for m in re.findall(r"`+", text)), default=0)


def title_from(text: str) -> str:
    """A conversation title from its first message: the first non-empty line, whitespace
    collapsed, cut at a word boundary near 60 characters (no model call)."""
    line = next((ln for ln in text.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if len(line) <= TITLE_LENGTH:
        return line
    cut = line[:TITLE_LENGTH].rsplit(" ", 1)[0]
    if len(cut) < TITLE_LENGTH // 2:
        cut = line[: TITLE_LENGTH - 1]
    return cut.rstrip(" ,.;:") + "…"


def excerpt(text: str, query: str, width: int = 80) -> str:
    """A short piece of ``text`` around the first occurrence of ``query``, on one line."""
    flat = " ".join(text.split())
    at = flat.lower().find(query.strip().lower())
    start = max(0, at - width // 2) if at >= 0 else 0
    piece = flat[start : start + width]
    return ("…" if start else "") + piece + ("…" if start + width < len(flat) else "")


@dataclass
class ImportedMessage:
    local_id: Any
    parent: Any
    role: str
    content: str
    status: str = "complete"
    created: datetime = field(default_factory=now)
    model: str | None = None
    model_path: str | None = None
    model_hash: str | None = None
    sampling: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    finish_reason: str | None = None
    logprobs: Any = None
    attachments: tuple[Attachment, ...] = ()
    reasoning: str = ""


@dataclass
class ImportedConversation:
    id: str | None
    title: str
    created: datetime
    updated: datetime
    model: str | None
    persona: str | None
    system_prompt: str | None
    sampling: dict[str, Any]
    messages: list[ImportedMessage]
    current_leaf: Any


MAX_ID_LENGTH = 64
EARLIEST_YEAR, LATEST_YEAR = 1900, 2999
"""Dates outside these years are refused: a year-9999 date overflows as soon as it is shown
in a local time zone."""


def _optional(item: Mapping[str, Any], key: str, kind: type, where: str) -> Any:
    value = item.get(key)
    if value is not None and not isinstance(value, kind):
        raise ImportFormatError(f"{where}: {key!r} must be a {kind.__name__}")
    return value


def _time(value: Any, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ImportFormatError(f"{where}: {_short(value)} is not an ISO 8601 time")
    try:
        moment = parse_timestamp(value)
    except ValueError:
        raise ImportFormatError(f"{where}: {_short(value)} is not an ISO 8601 time") from None
    try:
        year = moment.astimezone(timezone.utc).year
    except OverflowError:
        year = moment.year
    if not EARLIEST_YEAR <= year <= LATEST_YEAR:
        raise ImportFormatError(
            f"{where}: {_short(value)} is outside the years {EARLIEST_YEAR}-{LATEST_YEAR}"
        )
    return moment


def _short(value: Any) -> str:
    """A value for an error message, on one line and never long."""
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:39] + "…"


def _local_id(value: Any, key: str, where: str) -> Any:
    """A message id or parent id as the export writes it: an integer or a short string."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ImportFormatError(f"{where}: {key!r} must be an integer or a string")
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise ImportFormatError(f"{where}: {key!r} is longer than {MAX_ID_LENGTH} characters")
    return value


def _sampling(value: Any, where: str) -> dict[str, Any] | None:
    """Sampling settings that chatterm can use again (``ask -c`` reads them back): checked
    here so an invalid value is refused on import, not on every later continuation."""
    from chatterm.errors import SettingError
    from chatterm.sampling import SamplingSettings

    if value is None:
        return None
    if not isinstance(value, dict):
        raise ImportFormatError(f"{where}: 'sampling' must be an object")
    try:
        SamplingSettings.from_dict(value)
    except SettingError as exc:
        raise ImportFormatError(f"{where}: sampling: {exc}") from None
    return value


def _stats(value: Any, where: str) -> dict[str, Any] | None:
    """Reply stats: a flat object; the engine's own fields must be non-negative numbers."""
    import dataclasses
    import math

    from chatterm.engine.events import Stats

    if value is None:
        return None
    if not isinstance(value, dict):
        raise ImportFormatError(f"{where}: 'stats' must be an object")
    # The engine's numbers; its flags (``reasoning_open``) are checked as any other value.
    numeric = {f.name for f in dataclasses.fields(Stats) if not isinstance(f.default, bool)}
    for key, item in value.items():
        if key in numeric:
            ok = (
                isinstance(item, (int, float))
                and not isinstance(item, bool)
                and math.isfinite(item)
                and item >= 0
            )
        else:
            ok = item is None or isinstance(item, (str, int, float, bool))
        if not ok:
            raise ImportFormatError(f"{where}: stats {key!r} must be a non-negative number")
    return value


def _logprobs(value: Any, where: str) -> list[Any] | None:
    """Token records (``ask --json --logprobs``): a list of objects."""
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise ImportFormatError(f"{where}: 'logprobs' must be a list of objects")
    return value


def _attachments(value: Any, role: str, where: str) -> tuple[Attachment, ...]:
    """A message's exported attachments; the hash and size are computed again from the text,
    never trusted from the file."""
    if value is None:
        return ()
    if not isinstance(value, list) or role != "user":
        raise ImportFormatError(f"{where}: 'attachments' must be a list, on a user message")
    out = []
    for number, item in enumerate(value, start=1):
        if not isinstance(item, Mapping):
            raise ImportFormatError(f"{where}: attachment {number} must be an object")
        source, content, kind = item.get("source"), item.get("content"), item.get("kind", "file")
        if not isinstance(source, str) or not isinstance(content, str):
            raise ImportFormatError(
                f"{where}: attachment {number} needs a 'source' and a 'content' string"
            )
        if kind not in ("file", "stdin", "url"):
            raise ImportFormatError(f"{where}: attachment {number} has unknown kind {kind!r}")
        tokens = item.get("tokens")
        out.append(
            Attachment(source, kind, content, tokens=tokens if isinstance(tokens, int) else None)
        )
    return tuple(out)


def parse_import(data: Any) -> ImportedConversation:
    """Check an export and turn it into plain values. Messages without ``id`` follow one
    another (each the child of the one before), so a hand-written list of turns imports too."""
    if not isinstance(data, Mapping):
        raise ImportFormatError("expected a JSON object with a 'messages' list")
    if data.get("format", FORMAT) != FORMAT:
        raise ImportFormatError(f"unknown format {data.get('format')!r} (expected {FORMAT!r})")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list):
        raise ImportFormatError("expected a JSON object with a 'messages' list")
    messages: list[ImportedMessage] = []
    seen: set[Any] = set()
    previous: Any = None
    for number, item in enumerate(raw_messages, start=1):
        where = f"message {number}"
        if not isinstance(item, Mapping):
            raise ImportFormatError(f"{where}: expected an object with 'role' and 'content'")
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            raise ImportFormatError(f"{where}: role must be one of {', '.join(ROLES)}")
        if not isinstance(content, str):
            raise ImportFormatError(f"{where}: 'content' must be a string")
        local_id = _local_id(item["id"], "id", where) if "id" in item else f"#{number}"
        if local_id in seen:
            raise ImportFormatError(f"{where}: duplicate id {_short(local_id)}")
        parent = item.get("parent_id") if "id" in item else previous
        if parent is not None:
            parent = _local_id(parent, "parent_id", where)
        if parent is not None and parent not in seen:
            raise ImportFormatError(
                f"{where}: parent_id {_short(parent)} is not an earlier message"
            )
        status = item.get("status") or "complete"
        if not isinstance(status, str) or status not in STATUSES:
            raise ImportFormatError(f"{where}: unknown status {_short(status)}")
        messages.append(
            ImportedMessage(
                local_id=local_id,
                parent=parent,
                role=role,
                content=content,
                # nobody is writing an imported reply any more
                status="interrupted" if status == "streaming" else status,
                created=_time(item.get("created"), where) or now(),
                model=_optional(item, "model", str, where),
                model_path=_optional(item, "model_path", str, where),
                model_hash=_optional(item, "model_hash", str, where),
                sampling=_sampling(item.get("sampling"), where),
                stats=_stats(item.get("stats"), where),
                finish_reason=_optional(item, "finish_reason", str, where),
                logprobs=_logprobs(item.get("logprobs"), where),
                attachments=_attachments(item.get("attachments"), role, where),
                reasoning=_optional(item, "reasoning", str, where) or "",
            )
        )
        seen.add(local_id)
        previous = local_id
    leaf = data.get("current_leaf", previous)
    if leaf is not None and (
        isinstance(leaf, bool) or not isinstance(leaf, (int, str)) or leaf not in seen
    ):
        raise ImportFormatError(f"current_leaf {_short(leaf)} is not one of the messages")
    created = _time(data.get("created"), "conversation") or now()
    title = _optional(data, "title", str, "conversation") or ""
    if not title:
        first = next((m.content for m in messages if m.role == "user"), "")
        title = title_from(first)
    return ImportedConversation(
        id=data.get("id") if ids.is_valid(data.get("id")) else None,
        title=" ".join(title.split()),
        created=created,
        updated=_time(data.get("updated"), "conversation") or created,
        model=_optional(data, "model", str, "conversation"),
        persona=_optional(data, "persona", str, "conversation"),
        system_prompt=_optional(data, "system_prompt", str, "conversation"),
        sampling=_sampling(data.get("sampling"), "conversation") or {},
        messages=messages,
        current_leaf=leaf,
    )
