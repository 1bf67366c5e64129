"""Named schema migrations, each applied once and recorded in the ``_migrations`` table.

Keyed by name, not by package version, so a database written by any chatterm release upgrades
by applying exactly the migrations it lacks. Append new migrations at the end; never edit or
reorder one that has shipped. Each runs in its own ``BEGIN IMMEDIATE`` transaction and checks
the record again inside it, so two processes opening an old database at once apply it once.

A migration may raise :class:`Skip` (the SQLite build lacks FTS5, say): it is then not recorded
and is tried again the next time the database is opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from chatterm.store.db import timestamp, transaction


class Skip(Exception):
    """The migration cannot run with this SQLite build; leave it pending."""


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[sqlite3.Connection], None]


MIGRATIONS: list[Migration] = []


def migration(func: Callable[[sqlite3.Connection], None]) -> Callable[[sqlite3.Connection], None]:
    MIGRATIONS.append(Migration(func.__name__, func))
    return func


def _run(conn: sqlite3.Connection, statements: str) -> None:
    # Not `executescript`: it commits first, which would break the migration's transaction.
    # Statements end where SQLite says they are complete (a trigger body holds semicolons).
    pending = ""
    for line in statements.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            conn.execute(pending)
            pending = ""
    if pending.strip():
        conn.execute(pending)


@migration
def m001_conversations(conn: sqlite3.Connection) -> None:
    """The first schema: conversations and messages, with ``parent_id`` for branches."""
    _run(
        conn,
        """
        CREATE TABLE conversations (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL DEFAULT '',
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            model TEXT,
            system_prompt TEXT,
            sampling TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
            parent_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
            role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
            content TEXT NOT NULL DEFAULT '',
            status TEXT NOT NULL DEFAULT 'complete'
                CHECK (status IN ('complete', 'streaming', 'stopped', 'interrupted', 'error')),
            created TEXT NOT NULL,
            model TEXT,
            sampling TEXT,
            stats TEXT,
            finish_reason TEXT
        );
        CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
        CREATE INDEX messages_by_parent ON messages(parent_id);
        CREATE INDEX conversations_by_updated ON conversations(updated)
        """,
    )


@migration
def m002_message_search(conn: sqlite3.Connection) -> None:
    """FTS5 full-text index over message text, kept in sync by triggers (external content, so
    the text is stored once), and filled from the messages that already exist."""
    try:
        conn.execute(
            "CREATE VIRTUAL TABLE messages_fts USING fts5("
            "content, content='messages', content_rowid='id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
    except sqlite3.OperationalError as exc:
        if "fts5" in str(exc):
            raise Skip(str(exc)) from None
        raise
    _run(
        conn,
        """
        CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
        CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
        END;
        CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
            INSERT INTO messages_fts(messages_fts, rowid, content)
                VALUES ('delete', old.id, old.content);
            INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
        END;
        INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')
        """,
    )


@migration
def m003_branches_and_provenance(conn: sqlite3.Connection) -> None:
    """The active branch of each conversation, personas, and per-reply provenance: model file
    and fingerprint, token probabilities, and the writer and heartbeat of a streaming reply
    (so a start-up can tell a crashed reply from one another process is still writing)."""
    _run(
        conn,
        """
        ALTER TABLE conversations ADD COLUMN persona TEXT;
        ALTER TABLE conversations ADD COLUMN
            current_leaf_id INTEGER REFERENCES messages(id) ON DELETE SET NULL;
        ALTER TABLE messages ADD COLUMN updated TEXT;
        ALTER TABLE messages ADD COLUMN writer TEXT;
        ALTER TABLE messages ADD COLUMN model_path TEXT;
        ALTER TABLE messages ADD COLUMN model_hash TEXT;
        ALTER TABLE messages ADD COLUMN logprobs TEXT;
        UPDATE messages SET updated = created;
        UPDATE conversations SET current_leaf_id =
            (SELECT max(m.id) FROM messages m WHERE m.conversation_id = conversations.id);
        CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming'
        """,
    )


@migration
def m004_attachments(conn: sqlite3.Connection) -> None:
    """Attachments (``ask -f``): each text stored once by its SHA-256 with its size, however
    many turns attach it, and linked to the user messages that carried it, in order, with the
    source each one named (a path, ``stdin`` or a URL)."""
    _run(
        conn,
        """
        CREATE TABLE attachment_blobs (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            content TEXT NOT NULL
        );
        CREATE TABLE message_attachments (
            message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            sha256 TEXT NOT NULL REFERENCES attachment_blobs(sha256),
            source TEXT NOT NULL,
            kind TEXT NOT NULL,
            tokens INTEGER,
            PRIMARY KEY (message_id, position)
        );
        CREATE INDEX message_attachments_by_blob ON message_attachments(sha256)
        """,
    )


@migration
def m005_message_reasoning(conn: sqlite3.Connection) -> None:
    """A reply's thinking (reasoning models' ``<think>`` block) beside its answer. Rows saved
    before keep the block inside ``content`` and are split when read."""
    conn.execute("ALTER TABLE messages ADD COLUMN reasoning TEXT")


def applied(conn: sqlite3.Connection) -> set[str]:
    """Names of the migrations recorded in this database (none for a new file)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'"
    ).fetchone()
    if not exists:
        return set()
    return {row[0] for row in conn.execute("SELECT name FROM _migrations")}


def migrate(conn: sqlite3.Connection, *, upto: str | None = None) -> list[str]:
    """Apply the pending migrations in order (stopping after ``upto`` when given); return the
    names applied now. Names recorded by a newer chatterm are left alone."""
    done = applied(conn)
    ran: list[str] = []
    for step in MIGRATIONS:
        if step.name not in done:
            try:
                with transaction(conn):
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS _migrations "
                        "(name TEXT PRIMARY KEY, applied TEXT NOT NULL)"
                    )
                    again = conn.execute(
                        "SELECT 1 FROM _migrations WHERE name = ?", (step.name,)
                    ).fetchone()
                    if not again:
                        step.apply(conn)
                        conn.execute(
                            "INSERT INTO _migrations (name, applied) VALUES (?, ?)",
                            (step.name, timestamp()),
                        )
                        ran.append(step.name)
            except Skip:
                pass
        if step.name == upto:
            break
    return ran
