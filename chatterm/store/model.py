"""The domain objects the history store returns, and the errors it raises for bad ids.

The store speaks only these dataclasses: nothing outside ``chatterm.store`` sees a row or SQL.
JSON-ish settings (sampling, stats) stay plain dicts here, so a conversation saved by an older or
newer chatterm still loads; :meth:`Conversation.sampling_settings` validates them on demand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from chatterm.attachments import Attachment, user_content
from chatterm.engine.events import ChatMessage
from chatterm.errors import UsageError
from chatterm.sampling import SamplingSettings

MessageStatus = Literal["complete", "streaming", "stopped", "interrupted", "error"]
STATUSES: tuple[str, ...] = ("complete", "streaming", "stopped", "interrupted", "error")
ROLES: tuple[str, ...] = ("system", "user", "assistant")


class NotFoundError(UsageError):
    """No conversation (or message) has this id or id prefix."""


class AmbiguousIdError(UsageError):
    """More than one conversation starts with the prefix the user typed."""


@dataclass(frozen=True)
class Conversation:
    """One chat: its settings and which branch is showing (``current_leaf_id``)."""

    id: str
    title: str
    created: datetime
    updated: datetime
    model: str | None = None
    persona: str | None = None
    system_prompt: str | None = None
    sampling: dict[str, Any] = field(default_factory=dict)
    current_leaf_id: int | None = None
    message_count: int = 0

    def sampling_settings(self) -> SamplingSettings:
        """The saved sampling settings as a validated object (unknown keys ignored). A schema
        or grammar is left out: it shaped one answer, not the conversation."""
        kept = {k: v for k, v in self.sampling.items() if k not in ("schema", "grammar")}
        return SamplingSettings.from_dict(kept)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, timestamps as ISO 8601 strings (UTC)."""
        return {
            "id": self.id,
            "title": self.title,
            "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
            "model": self.model,
            "persona": self.persona,
            "system_prompt": self.system_prompt,
            "sampling": self.sampling,
            "message_count": self.message_count,
        }


@dataclass(frozen=True)
class Message:
    """One message. ``content`` is byte-for-byte what was typed or generated (never stripped:
    the KV cache reuse of the next turn depends on the history re-rendering identically); for a
    reasoning model's reply, the answer, with the thinking in ``reasoning``.

    Assistant messages also carry their provenance: the model name, file and fingerprint, the
    sampling settings with the concrete seed, the engine's stats and the finish reason. Token
    probabilities can be large, so they are not loaded with the message: ``has_logprobs`` says
    whether :meth:`ConversationStore.logprobs` has any.
    """

    id: int
    conversation_id: str
    parent_id: int | None
    role: str
    content: str
    status: str
    created: datetime
    updated: datetime
    model: str | None = None
    model_path: str | None = None
    model_hash: str | None = None
    sampling: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    finish_reason: str | None = None
    has_logprobs: bool = False
    attachments: tuple[Attachment, ...] = ()
    reasoning: str = ""

    @property
    def thinking_summary(self) -> str:
        """``thought for 4.1 s, 312 tokens`` for a reply that thought (else empty)."""
        from chatterm.engine.reasoning import stats_summary

        if not self.reasoning:
            return ""
        return stats_summary(self.stats) or "thought"

    @property
    def reasoning_open(self) -> bool:
        """The reply ended inside its thinking block (stopped, or out of tokens)."""
        return bool(self.reasoning) and bool((self.stats or {}).get("reasoning_open"))

    def to_chat(self) -> ChatMessage:
        """The message as the engine takes it: a user message with its attachments rebuilt
        exactly as they were sent, a reply with its thinking apart from the answer."""
        content = user_content(self.content, self.attachments)
        return ChatMessage(self.role, content, self.reasoning)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Siblings:
    """The alternatives at one branch point: messages sharing a parent, oldest first."""

    messages: tuple[Message, ...]
    index: int  # 0-based position of the message that was asked about

    @property
    def total(self) -> int:
        return len(self.messages)

    @property
    def label(self) -> str:
        """``"2/3"``: the message is the second of three alternatives."""
        return f"{self.index + 1}/{self.total}"

    @property
    def current(self) -> Message:
        return self.messages[self.index]


@dataclass(frozen=True)
class SearchHit:
    """A message whose text matches a search, with its conversation."""

    conversation_id: str
    conversation_title: str
    message_id: int
    role: str
    text: str
    snippet: str
    created: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.conversation_id,
            "title": self.conversation_title,
            "message_id": self.message_id,
            "role": self.role,
            "text": self.text,
            "snippet": self.snippet,
            "created": self.created.isoformat(),
        }
