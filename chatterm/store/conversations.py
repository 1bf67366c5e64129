"""``ConversationStore``: every read and write of the chat history (see ``chatterm.store``)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from chatterm import paths
from chatterm.attachments import Attachment
from chatterm.engine.reasoning import split_message
from chatterm.errors import StoreError, UsageError
from chatterm.sampling import SamplingSettings
from chatterm.store import db, ids, transfer
from chatterm.store.db import connect, describe, now, parse_timestamp, timestamp, transaction
from chatterm.store.migrations import migrate
from chatterm.store.model import (
    STATUSES,
    AmbiguousIdError,
    Conversation,
    Message,
    NotFoundError,
    SearchHit,
    Siblings,
)
from chatterm.store.transfer import title_from

T = TypeVar("T")

# A streaming reply whose writer cannot be checked (another host, no pid) counts as crashed
# when its heartbeat (the last partial save, about every second) is older than this.
STALE_AFTER = timedelta(minutes=10)

_MESSAGE_COLUMNS = (
    "id, conversation_id, parent_id, role, content, status, created, updated, model, "
    "model_path, model_hash, sampling, stats, finish_reason, logprobs IS NOT NULL AS has_logprobs, "
    "reasoning"
)
_CONVERSATION_COLUMNS = (
    "c.id, c.title, c.created, c.updated, c.model, c.persona, c.system_prompt, c.sampling, "
    "c.current_leaf_id, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS n"
)

_UNSET: Any = object()


def _guarded(method: Callable[..., T]) -> Callable[..., T]:
    """Serialise calls from several threads and turn sqlite3 failures into ``StoreError`` (text
    that cannot be stored, such as a lone surrogate from undecodable input, too)."""

    @functools.wraps(method)
    def wrapper(self: ConversationStore, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            try:
                return method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise describe(exc, self.path) from None
            except UnicodeEncodeError as exc:
                raise StoreError(
                    f"{self.path}: text that is not valid Unicode cannot be saved ({exc.reason})"
                ) from None

    return wrapper


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)


def _unjson(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _settings_dict(
    sampling: SamplingSettings | Mapping[str, Any] | None,
) -> dict[str, Any] | None:
    """Accept a ``SamplingSettings`` or a mapping (e.g. a saved snapshot)."""
    if sampling is None:
        return None
    if isinstance(sampling, SamplingSettings):
        return dict(sampling.to_dict())
    return dict(sampling)


def _this_writer() -> str:
    return f"{platform.node()}:{os.getpid()}"


def _writer_gone(writer: str | None, heartbeat: datetime, moment: datetime) -> bool:
    """Whether the process that was streaming a reply has died.

    On this host the pid is probed (``os.kill(pid, 0)``); elsewhere, or without a pid, only a
    heartbeat older than :data:`STALE_AFTER` counts. A pid reused by an unrelated process keeps
    the row "streaming" until that process ends: rare, and harmless.
    """
    host, _, pid_text = (writer or "").rpartition(":")
    if os.name == "posix" and host == platform.node() and pid_text.isdigit():
        pid = int(pid_text)
        if pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # PermissionError: alive, owned by someone else
            return False
        return False
    return moment - heartbeat > STALE_AFTER


def fts_query(text: str) -> str | None:
    """The user's words as an FTS5 query: each word a quoted prefix term, all required, so
    FTS syntax characters in the input can never cause a syntax error."""
    words = re.findall(r"\w+", text)
    return " ".join(f'"{word}"*' for word in words) or None


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ConversationStore:
    """The chat history in one SQLite file. See the ``chatterm.store`` docstring for the API.

    Opening applies pending migrations and marks replies left "streaming" by a crashed process
    as "interrupted". One instance may be shared by threads (calls are serialised), but each
    call is its own short transaction: nothing is held open between calls.
    """

    def __init__(self, path: Path | str | None = None, *, recover: bool = True) -> None:
        self.path = Path(path) if path is not None else paths.database_path()
        self._lock = threading.RLock()
        self._conn = connect(self.path)
        try:
            with self._lock:
                try:
                    migrate(self._conn)
                except sqlite3.Error as exc:
                    raise describe(exc, self.path) from None
            if recover:
                self.mark_interrupted()
        except BaseException:
            self._conn.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def busy_timeout(self, seconds: float) -> Iterator[None]:
        """Within the block, wait at most ``seconds`` for another process's write lock
        (instead of ``BUSY_TIMEOUT_S``): for a save that can be retried later."""
        with self._lock:
            self._conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
        try:
            yield
        finally:
            with self._lock, contextlib.suppress(sqlite3.Error):
                self._conn.execute(f"PRAGMA busy_timeout = {int(db.BUSY_TIMEOUT_S * 1000)}")

    # -- row → domain ----------------------------------------------------------------------

    @staticmethod
    def _conversation(row: sqlite3.Row) -> Conversation:
        sampling = _unjson(row["sampling"])
        return Conversation(
            id=row["id"],
            title=row["title"],
            created=parse_timestamp(row["created"]),
            updated=parse_timestamp(row["updated"]),
            model=row["model"],
            persona=row["persona"],
            system_prompt=row["system_prompt"],
            sampling=sampling if isinstance(sampling, dict) else {},
            current_leaf_id=row["current_leaf_id"],
            message_count=row["n"],
        )

    @staticmethod
    def _message(row: sqlite3.Row) -> Message:
        content, reasoning = row["content"], row["reasoning"] or ""
        if row["role"] == "assistant" and not reasoning:
            # Saved before reasoning had its own column: the block is still in the text.
            split = split_message(content, None)
            content, reasoning = split.answer, split.reasoning
        return Message(
            id=row["id"],
            conversation_id=row["conversation_id"],
            parent_id=row["parent_id"],
            role=row["role"],
            content=content,
            status=row["status"],
            created=parse_timestamp(row["created"]),
            updated=parse_timestamp(row["updated"] or row["created"]),
            model=row["model"],
            model_path=row["model_path"],
            model_hash=row["model_hash"],
            sampling=_unjson(row["sampling"]),
            stats=_unjson(row["stats"]),
            finish_reason=row["finish_reason"],
            has_logprobs=bool(row["has_logprobs"]),
            reasoning=reasoning,
        )

    def _messages(self, where: str, params: Sequence[Any]) -> list[Message]:
        rows = self._conn.execute(f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {where}", params)
        messages = [self._message(row) for row in rows]
        return self._with_attachments(messages)

    def _with_attachments(self, messages: list[Message]) -> list[Message]:
        """The user messages among ``messages`` with their attachments loaded, in order."""
        import dataclasses

        wanted = [m.id for m in messages if m.role == "user"]
        if not wanted:
            return messages
        found: dict[int, list[Attachment]] = {}
        for start in range(0, len(wanted), 500):  # SQLite caps the number of parameters
            chunk = wanted[start : start + 500]
            rows = self._conn.execute(
                "SELECT a.message_id, a.source, a.kind, a.tokens, b.sha256, b.size, b.content "
                "FROM message_attachments a JOIN attachment_blobs b ON b.sha256 = a.sha256 "
                f"WHERE a.message_id IN ({', '.join('?' * len(chunk))}) "
                "ORDER BY a.message_id, a.position",
                chunk,
            )
            for row in rows:
                found.setdefault(row[0], []).append(
                    Attachment(row[1], row[2], row[6], row[4], row[5], row[3])
                )
        if not found:
            return messages
        return [
            dataclasses.replace(m, attachments=tuple(found[m.id])) if m.id in found else m
            for m in messages
        ]

    @staticmethod
    def _link_attachments(
        conn: sqlite3.Connection, message_id: int, attachments: Sequence[Attachment]
    ) -> None:
        """Store each attachment's text once (by SHA-256) and link it to the message."""
        for position, item in enumerate(attachments):
            conn.execute(
                "INSERT OR IGNORE INTO attachment_blobs (sha256, size, content) VALUES (?, ?, ?)",
                (item.sha256, item.size, item.text),
            )
            conn.execute(
                "INSERT INTO message_attachments (message_id, position, sha256, source, kind, "
                "tokens) VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, position, item.sha256, item.source, item.kind, item.tokens),
            )

    @staticmethod
    def _drop_orphan_blobs(conn: sqlite3.Connection) -> None:
        conn.execute(
            "DELETE FROM attachment_blobs WHERE sha256 NOT IN "
            "(SELECT sha256 FROM message_attachments)"
        )

    # -- conversations -----------------------------------------------------------------------

    @_guarded
    def create_conversation(
        self,
        *,
        title: str = "",
        model: str | None = None,
        persona: str | None = None,
        system_prompt: str | None = None,
        sampling: Any = None,
    ) -> Conversation:
        """A new, empty conversation. An empty ``title`` is filled from the first user message.
        ``sampling`` is a ``SamplingSettings`` or a dict."""
        stamp = timestamp()
        with transaction(self._conn) as conn:
            while True:
                new = ids.new_id()
                if not conn.execute("SELECT 1 FROM conversations WHERE id = ?", (new,)).fetchone():
                    break
            conn.execute(
                "INSERT INTO conversations (id, title, created, updated, model, persona, "
                "system_prompt, sampling) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new,
                    " ".join(title.split()),
                    stamp,
                    stamp,
                    model,
                    persona,
                    system_prompt,
                    _json(_settings_dict(sampling) or {}),
                ),
            )
        return self.get_conversation(new)

    @_guarded
    def resolve_id(self, prefix: str) -> str:
        """The full id of the one conversation whose id starts with ``prefix``.

        Raises ``NotFoundError`` or ``AmbiguousIdError`` (usage errors, exit 2) naming the
        candidates, so the user can type a longer prefix."""
        wanted = ids.normalise_prefix(prefix)
        if wanted is None:
            raise NotFoundError(f"no conversation has the id {prefix!r} (see chatterm history)")
        rows = self._conn.execute(
            "SELECT id, title FROM conversations WHERE substr(id, 1, ?) = ? ORDER BY id LIMIT 6",
            (len(wanted), wanted),
        ).fetchall()
        if not rows:
            raise NotFoundError(f"no conversation has the id {prefix!r} (see chatterm history)")
        if len(rows) > 1:
            shown = ", ".join(f"{r['id']} ({r['title'] or 'untitled'})" for r in rows[:5])
            more = " …" if len(rows) > 5 else ""
            raise AmbiguousIdError(
                f"{prefix!r} matches several conversations: {shown}{more}; type more of the id"
            )
        return str(rows[0]["id"])

    @_guarded
    def get_conversation(self, conversation_id: str) -> Conversation:
        """The conversation with this id or unambiguous id prefix."""
        full = self.resolve_id(conversation_id)
        row = self._conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE c.id = ?", (full,)
        ).fetchone()
        if row is None:  # deleted by another process a moment ago
            raise NotFoundError(f"no conversation has the id {conversation_id!r}")
        return self._conversation(row)

    @_guarded
    def list_conversations(
        self, *, limit: int | None = 50, search: str | None = None
    ) -> list[Conversation]:
        """Conversations, most recently active first; with ``search``, only those whose title
        or any message (on any branch) matches it. ``limit=None`` lists all."""
        where, params = "1", list[Any]()
        if search and search.strip():
            where, params = self._search_filter(search)
        sql = (
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations c WHERE {where} "
            "ORDER BY c.updated DESC, c.rowid DESC"
        )
        if limit is not None and limit > 0:
            sql += f" LIMIT {int(limit)}"
        return [self._conversation(row) for row in self._conn.execute(sql, params)]

    @_guarded
    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: it changes when another connection (another
        chatterm process) commits, never for this connection's own writes."""
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    @_guarded
    def count_conversations(self, *, search: str | None = None) -> int:
        """How many conversations :meth:`list_conversations` would list without a limit."""
        where, params = "1", list[Any]()
        if search and search.strip():
            where, params = self._search_filter(search)
        sql = f"SELECT count(*) FROM conversations c WHERE {where}"
        return int(self._conn.execute(sql, params).fetchone()[0])

    def _search_filter(self, search: str) -> tuple[str, list[Any]]:
        query = fts_query(search) if self._has_fts() else None
        if query:
            return (
                "(c.title LIKE ? ESCAPE '\\' OR c.id IN (SELECT m.conversation_id FROM messages m "
                "WHERE m.id IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)))",
                [_like_pattern(search.strip()), query],
            )
        pattern = _like_pattern(search.strip())
        return (
            "(c.title LIKE ? ESCAPE '\\' OR c.id IN (SELECT m.conversation_id FROM messages m "
            "WHERE m.content LIKE ? ESCAPE '\\'))",
            [pattern, pattern],
        )

    @_guarded
    def most_recent(self) -> Conversation | None:
        """The most recently active conversation (what ``chatterm ask -c`` continues)."""
        found = self.list_conversations(limit=1)
        return found[0] if found else None

    @_guarded
    def rename(self, conversation_id: str, title: str) -> Conversation:
        """Set the title (whitespace collapsed; must not be empty)."""
        clean = " ".join(title.split())
        if not clean:
            raise UsageError("a conversation title cannot be empty")
        return self.update_conversation(conversation_id, title=clean)

    @_guarded
    def update_conversation(
        self,
        conversation_id: str,
        *,
        title: str = _UNSET,
        model: str | None = _UNSET,
        persona: str | None = _UNSET,
        system_prompt: str | None = _UNSET,
        sampling: Any = _UNSET,
    ) -> Conversation:
        """Change the conversation's settings (only the arguments given). They apply to the next
        reply; replies already made keep their own snapshot. Does not reorder the list."""
        full = self.resolve_id(conversation_id)
        changes: dict[str, Any] = {}
        if title is not _UNSET:
            changes["title"] = " ".join(title.split())
        if model is not _UNSET:
            changes["model"] = model
        if persona is not _UNSET:
            changes["persona"] = persona
        if system_prompt is not _UNSET:
            changes["system_prompt"] = system_prompt
        if sampling is not _UNSET:
            changes["sampling"] = _json(_settings_dict(sampling) or {})
        if changes:
            assignments = ", ".join(f"{name} = ?" for name in changes)
            with transaction(self._conn) as conn:
                conn.execute(
                    f"UPDATE conversations SET {assignments} WHERE id = ?",
                    (*changes.values(), full),
                )
        return self.get_conversation(full)

    @_guarded
    def delete(self, conversation_id: str) -> Conversation:
        """Delete the conversation and all its messages; returns what was deleted."""
        conversation = self.get_conversation(conversation_id)
        with transaction(self._conn) as conn:
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation.id,))
            self._drop_orphan_blobs(conn)
        return conversation

    # -- messages ------------------------------------------------------------------------

    @_guarded
    def get_message(self, message_id: int) -> Message:
        found = self._messages("id = ?", (message_id,))
        if not found:
            raise NotFoundError(f"no message has the id {message_id}")
        return found[0]

    def _insert_message(
        self,
        conn: sqlite3.Connection,
        conversation_id: str,
        parent_id: int | None,
        role: str,
        content: str,
        status: str,
        *,
        stamp: str,
        columns: Mapping[str, Any] | None = None,
    ) -> int:
        extra = dict(columns or {})
        names = [
            "conversation_id", "parent_id", "role", "content", "status", "created", "updated",
            *extra,
        ]  # fmt: skip
        values = [conversation_id, parent_id, role, content, status, stamp, stamp, *extra.values()]
        cursor = conn.execute(
            f"INSERT INTO messages ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            values,
        )
        new = int(cursor.lastrowid or 0)
        conn.execute(
            "UPDATE conversations SET current_leaf_id = ?, updated = ? WHERE id = ?",
            (new, stamp, conversation_id),
        )
        return new

    def _check_parent(
        self, conn: sqlite3.Connection, conversation_id: str, parent_id: Any
    ) -> int | None:
        """The parent to attach to: ``_UNSET`` means the conversation's current leaf."""
        if parent_id is _UNSET:
            row = conn.execute(
                "SELECT current_leaf_id FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            return None if row is None else row[0]
        if parent_id is None:
            return None
        row = conn.execute(
            "SELECT conversation_id FROM messages WHERE id = ?", (parent_id,)
        ).fetchone()
        if row is None or row[0] != conversation_id:
            raise NotFoundError(f"message {parent_id} is not in conversation {conversation_id}")
        return int(parent_id)

    @_guarded
    def add_user_message(
        self,
        conversation_id: str,
        content: str,
        *,
        parent_id: int | None = _UNSET,
        attachments: Sequence[Attachment] = (),
    ) -> Message:
        """Save what the user typed, committed at once (before any generation starts), as a
        child of ``parent_id`` (default: the current leaf), and make it the current leaf. The
        first user message of an untitled conversation gives it its title. ``attachments``
        are saved with it in the same transaction (each text once, by content hash)."""
        full = self.resolve_id(conversation_id)
        stamp = timestamp()
        with transaction(self._conn) as conn:
            parent = self._check_parent(conn, full, parent_id)
            new = self._insert_message(conn, full, parent, "user", content, "complete", stamp=stamp)
            self._link_attachments(conn, new, attachments)
            conn.execute(
                "UPDATE conversations SET title = ? WHERE id = ? AND title = ''",
                (title_from(content or (attachments[0].source if attachments else "")), full),
            )
        return self.get_message(new)

    @_guarded
    def start_assistant_message(
        self,
        conversation_id: str,
        *,
        parent_id: int | None = _UNSET,
        model: str | None = None,
        model_path: str | os.PathLike[str] | None = None,
        model_hash: str | None = None,
        sampling: Any = None,
    ) -> Message:
        """Create the reply's row before the first token: status ``"streaming"``, empty text,
        the model and the sampling snapshot (with the concrete seed). It becomes the current
        leaf. Follow with :meth:`update_partial` and one :meth:`finish_assistant_message`."""
        full = self.resolve_id(conversation_id)
        stamp = timestamp()
        with transaction(self._conn) as conn:
            parent = self._check_parent(conn, full, parent_id)
            new = self._insert_message(
                conn,
                full,
                parent,
                "assistant",
                "",
                "streaming",
                stamp=stamp,
                columns={
                    "model": model,
                    "model_path": None if model_path is None else str(model_path),
                    "model_hash": model_hash,
                    "sampling": _json(_settings_dict(sampling)),
                    "writer": _this_writer(),
                },
            )
        return self.get_message(new)

    @_guarded
    def discard(self, message_ids: Sequence[int], *, leaf: int | None) -> bool:
        """Remove messages that never became history (a question the model refused before
        generating, see :mod:`chatterm.store.turn`) and make ``leaf`` the current leaf again.

        Only messages with nothing below them outside ``message_ids`` may go (``UsageError``
        otherwise). A conversation left with no messages is deleted too; returns whether it
        was."""
        ids_ = [int(i) for i in message_ids]
        if not ids_:
            return False
        marks = ", ".join("?" * len(ids_))
        found = self._conn.execute(
            f"SELECT DISTINCT conversation_id FROM messages WHERE id IN ({marks})", ids_
        ).fetchall()
        if len(found) != 1:
            raise UsageError("messages to discard must belong to one conversation")
        conversation_id = found[0][0]
        with transaction(self._conn) as conn:
            below = conn.execute(
                f"SELECT min(id) FROM messages WHERE parent_id IN ({marks}) "
                f"AND id NOT IN ({marks})",
                ids_ + ids_,
            ).fetchone()[0]
            if below is not None:
                raise UsageError(f"message {below} follows a message to discard; nothing removed")
            conn.execute(f"DELETE FROM messages WHERE id IN ({marks})", ids_)
            left = conn.execute(
                "SELECT count(*) FROM messages WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()[0]
            if not left:
                conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
                return True
            conn.execute(
                "UPDATE conversations SET current_leaf_id = "
                "(SELECT id FROM messages WHERE id = ? AND conversation_id = ?) WHERE id = ?",
                (leaf, conversation_id, conversation_id),
            )
        return False

    @_guarded
    def update_partial(self, message_id: int, content: str, reasoning: str = "") -> None:
        """Save the text streamed so far (call about once a second): the answer and the
        thinking. Also the heartbeat that tells other processes this reply is still being
        written. Ignored once finished."""
        with transaction(self._conn) as conn:
            conn.execute(
                "UPDATE messages SET content = ?, reasoning = ?, updated = ? "
                "WHERE id = ? AND status = 'streaming'",
                (content, reasoning or None, timestamp(), message_id),
            )

    @_guarded
    def finish_assistant_message(
        self,
        message_id: int,
        content: str,
        *,
        status: str = "complete",
        stats: Mapping[str, Any] | None = None,
        finish_reason: str | None = None,
        logprobs: Any = None,
        reasoning: str = "",
    ) -> Message:
        """Save the final text and outcome: ``status`` is ``"complete"``, ``"stopped"`` (the
        user stopped it), ``"error"`` or ``"interrupted"``; ``stats`` is ``Stats.to_dict()``;
        ``logprobs`` any JSON-able value (the lab's per-token probabilities); ``reasoning``
        the reply's thinking, kept beside the answer in ``content``."""
        if status not in STATUSES or status == "streaming":
            raise ValueError(f"cannot finish a message with status {status!r}")
        stamp = timestamp()
        with transaction(self._conn) as conn:
            row = conn.execute(
                "SELECT conversation_id FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no message has the id {message_id}")
            conn.execute(
                "UPDATE messages SET content = ?, reasoning = ?, status = ?, stats = ?, "
                "finish_reason = ?, logprobs = ?, updated = ? WHERE id = ?",
                (
                    content,
                    reasoning or None,
                    status,
                    _json(dict(stats) if stats is not None else None),
                    finish_reason,
                    _json(logprobs),
                    stamp,
                    message_id,
                ),
            )
            conn.execute("UPDATE conversations SET updated = ? WHERE id = ?", (stamp, row[0]))
        return self.get_message(message_id)

    @_guarded
    def logprobs(self, message_id: int) -> Any:
        """The token probabilities saved with a reply, or ``None``."""
        row = self._conn.execute(
            "SELECT logprobs FROM messages WHERE id = ?", (message_id,)
        ).fetchone()
        return None if row is None else _unjson(row[0])

    @_guarded
    def mark_interrupted(self) -> list[int]:
        """Mark replies left ``"streaming"`` by a process that died (``kill -9``, a crash, a
        power cut) as ``"interrupted"``, keeping their partial text. Replies another live
        process is still writing are left alone. Called when the store opens; returns the ids."""
        moment = now()
        rows = self._conn.execute(
            "SELECT id, writer, updated, created FROM messages WHERE status = 'streaming'"
        ).fetchall()
        stale = [
            row["id"]
            for row in rows
            if _writer_gone(
                row["writer"], parse_timestamp(row["updated"] or row["created"]), moment
            )
        ]
        if stale:
            with transaction(self._conn) as conn:
                conn.executemany(
                    "UPDATE messages SET status = 'interrupted' "
                    "WHERE id = ? AND status = 'streaming'",
                    [(message_id,) for message_id in stale],
                )
        return stale

    # -- branches ------------------------------------------------------------------------

    @_guarded
    def active_path(self, conversation_id: str) -> list[Message]:
        """The messages from the root to the current leaf: the branch on screen, and the
        history sent to the model for the next reply."""
        conversation = self.get_conversation(conversation_id)
        if conversation.current_leaf_id is None:
            return []
        return self._path_to(conversation.current_leaf_id)

    def _path_to(self, leaf_id: int) -> list[Message]:
        rows = self._conn.execute(
            "WITH RECURSIVE up(id, depth) AS (SELECT ?, 0 UNION ALL "
            "SELECT m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.id "
            "WHERE m.parent_id IS NOT NULL) "
            f"SELECT {_MESSAGE_COLUMNS} FROM messages JOIN up USING (id) ORDER BY up.depth DESC",
            (leaf_id,),
        )
        return self._with_attachments([self._message(row) for row in rows])

    @_guarded
    def messages(self, conversation_id: str) -> list[Message]:
        """Every message of every branch, oldest first."""
        full = self.resolve_id(conversation_id)
        return self._messages("conversation_id = ? ORDER BY id", (full,))

    @_guarded
    def siblings(self, message_id: int) -> Siblings:
        """The alternatives at this message's branch point (same parent), oldest first, and
        where this message is among them: ``siblings(m).label == "2/3"``."""
        message = self.get_message(message_id)
        found = self._messages(
            "conversation_id = ? AND parent_id IS ? ORDER BY id",
            (message.conversation_id, message.parent_id),
        )
        index = next(i for i, m in enumerate(found) if m.id == message_id)
        return Siblings(tuple(found), index)

    @_guarded
    def branch_positions(self, conversation_id: str) -> dict[int, tuple[int, int]]:
        """For every message, ``(number, total)`` among its siblings (1-based), in one query:
        what a transcript needs to label each branch point without a query per message."""
        full = self.resolve_id(conversation_id)
        rows = self._conn.execute(
            "SELECT id, row_number() OVER w, count(*) OVER (PARTITION BY parent_id) "
            "FROM messages WHERE conversation_id = ? "
            "WINDOW w AS (PARTITION BY parent_id ORDER BY id)",
            (full,),
        )
        return {row[0]: (row[1], row[2]) for row in rows}

    @_guarded
    def switch_branch(self, message_id: int) -> list[Message]:
        """Show the branch through ``message_id`` (e.g. a sibling picked with ←/→): the current
        leaf becomes the newest message below it, so returning to a branch shows where it was
        left. Returns the new active path."""
        message = self.get_message(message_id)
        row = self._conn.execute(
            "WITH RECURSIVE down(id) AS (SELECT ? UNION ALL "
            "SELECT m.id FROM messages m JOIN down ON m.parent_id = down.id) "
            "SELECT max(id) FROM down",
            (message_id,),
        ).fetchone()
        leaf = int(row[0])
        with transaction(self._conn) as conn:
            conn.execute(
                "UPDATE conversations SET current_leaf_id = ? WHERE id = ?",
                (leaf, message.conversation_id),
            )
        return self._path_to(leaf)

    @_guarded
    def edit_user_message(self, message_id: int, content: str) -> Message:
        """Editing never overwrites: the new text becomes a sibling of the old message (a new
        branch, now current); the old message and everything after it stay reachable."""
        message = self.get_message(message_id)
        if message.role != "user":
            raise UsageError(f"message {message_id} is a {message.role} message, not a user one")
        return self.add_user_message(
            message.conversation_id,
            content,
            parent_id=message.parent_id,
            attachments=message.attachments,
        )

    @_guarded
    def regenerate(
        self,
        message_id: int,
        *,
        model: str | None = None,
        model_path: str | os.PathLike[str] | None = None,
        model_hash: str | None = None,
        sampling: Any = None,
    ) -> Message:
        """Start a new reply beside the assistant message ``message_id`` (same parent): a
        streaming sibling, now current. Finish it like any reply."""
        message = self.get_message(message_id)
        if message.role != "assistant":
            raise UsageError(f"message {message_id} is a {message.role} message, not a reply")
        return self.start_assistant_message(
            message.conversation_id,
            parent_id=message.parent_id,
            model=model,
            model_path=model_path,
            model_hash=model_hash,
            sampling=sampling,
        )

    # -- search --------------------------------------------------------------------------

    def _has_fts(self) -> bool:
        return bool(
            self._conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages_fts'"
            ).fetchone()
        )

    @_guarded
    def search(self, query: str, *, limit: int = 20) -> list[SearchHit]:
        """Messages (on any branch) containing every word of ``query`` (words match as
        prefixes, case and accents ignored), best matches first. Without FTS5 in this SQLite
        build, falls back to a substring match."""
        fts = fts_query(query) if self._has_fts() else None
        head = (
            "SELECT m.id, m.conversation_id, m.role, m.content, m.created, c.title"
            "{snippet} FROM {source} JOIN conversations c ON c.id = m.conversation_id "
        )
        if fts:
            sql = (
                head.format(
                    snippet=", snippet(messages_fts, 0, '[', ']', '…', 12) AS snippet",
                    source="messages_fts JOIN messages m ON m.id = messages_fts.rowid",
                )
                + "WHERE messages_fts MATCH ? ORDER BY rank, m.id DESC LIMIT ?"
            )
            rows = self._conn.execute(sql, (fts, limit)).fetchall()
        elif query.strip():
            sql = head.format(snippet=", NULL AS snippet", source="messages m") + (
                "WHERE m.content LIKE ? ESCAPE '\\' ORDER BY m.id DESC LIMIT ?"
            )
            rows = self._conn.execute(sql, (_like_pattern(query.strip()), limit)).fetchall()
        else:
            return []
        return [
            SearchHit(
                conversation_id=row["conversation_id"],
                conversation_title=row["title"],
                message_id=row["id"],
                role=row["role"],
                text=row["content"],
                snippet=row["snippet"] or transfer.excerpt(row["content"], query),
                created=parse_timestamp(row["created"]),
            )
            for row in rows
        ]

    # -- export / import -----------------------------------------------------------------

    @_guarded
    def export_json(self, conversation_id: str) -> dict[str, Any]:
        """The whole conversation (all branches, settings, provenance, logprobs) as a JSON-able
        dict; :meth:`import_json` reads it back."""
        conversation = self.get_conversation(conversation_id)
        rows = self._conn.execute(
            "SELECT id, logprobs FROM messages WHERE conversation_id = ? AND logprobs IS NOT NULL",
            (conversation.id,),
        )
        logprobs = {row[0]: _unjson(row[1]) for row in rows}
        active = (
            {m.id for m in self._path_to(conversation.current_leaf_id)}
            if (conversation.current_leaf_id is not None)
            else set()
        )
        return transfer.to_json(conversation, self.messages(conversation.id), active, logprobs)

    @_guarded
    def export_markdown(self, conversation_id: str) -> str:
        """The active branch as Markdown, for reading and sharing."""
        conversation = self.get_conversation(conversation_id)
        return transfer.to_markdown(conversation, self.active_path(conversation.id))

    @_guarded
    def import_json(self, data: Any) -> Conversation:
        """Add a conversation from :meth:`export_json` output (or any object with ``messages``
        holding ``role`` and ``content``). Keeps the exported id when it is free; raises
        ``ImportFormatError`` (a usage error) saying what is wrong with the data."""
        parsed = transfer.parse_import(data)
        with transaction(self._conn) as conn:
            new = parsed.id
            taken = (
                new and conn.execute("SELECT 1 FROM conversations WHERE id = ?", (new,)).fetchone()
            )
            while not new or taken:
                new = ids.new_id()
                taken = conn.execute("SELECT 1 FROM conversations WHERE id = ?", (new,)).fetchone()
            conn.execute(
                "INSERT INTO conversations (id, title, created, updated, model, persona, "
                "system_prompt, sampling) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new,
                    parsed.title,
                    timestamp(parsed.created),
                    timestamp(parsed.updated),
                    parsed.model,
                    parsed.persona,
                    parsed.system_prompt,
                    _json(parsed.sampling),
                ),
            )
            local_to_db: dict[Any, int] = {}
            for item in parsed.messages:
                cursor = conn.execute(
                    "INSERT INTO messages (conversation_id, parent_id, role, content, status, "
                    "created, updated, model, model_path, model_hash, sampling, stats, "
                    "finish_reason, logprobs, reasoning) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        new,
                        None if item.parent is None else local_to_db[item.parent],
                        item.role,
                        item.content,
                        item.status,
                        timestamp(item.created),
                        timestamp(item.created),
                        item.model,
                        item.model_path,
                        item.model_hash,
                        _json(item.sampling),
                        _json(item.stats),
                        item.finish_reason,
                        _json(item.logprobs),
                        item.reasoning or None,
                    ),
                )
                local_to_db[item.local_id] = int(cursor.lastrowid or 0)
                self._link_attachments(conn, local_to_db[item.local_id], item.attachments)
            leaf = local_to_db.get(parsed.current_leaf) if parsed.current_leaf is not None else None
            conn.execute("UPDATE conversations SET current_leaf_id = ? WHERE id = ?", (leaf, new))
        return self.get_conversation(new)
