"""The database file: schema, pragmas, named migrations and the upgrade from the first schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chatterm import paths
from chatterm.errors import StoreError
from chatterm.store import ConversationStore
from chatterm.store import migrations as migrations_module
from chatterm.store.db import connect
from chatterm.store.migrations import MIGRATIONS, Migration, Skip, migrate
from tests.store.conftest import exchange


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path))


def test_new_database_has_the_schema_and_records_each_migration(store):
    with _raw(store.path) as raw:
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        recorded = [r[0] for r in raw.execute("SELECT name FROM _migrations ORDER BY rowid")]
        message_columns = {r[1] for r in raw.execute("PRAGMA table_info(messages)")}
        conversation_columns = {r[1] for r in raw.execute("PRAGMA table_info(conversations)")}
    assert {"conversations", "messages", "messages_fts", "_migrations"} <= tables
    assert recorded == [m.name for m in MIGRATIONS]
    assert recorded[0] == "m001_conversations"
    assert {
        "parent_id", "role", "content", "status", "created", "model", "model_path",
        "model_hash", "sampling", "stats", "finish_reason", "logprobs",
    } <= message_columns  # fmt: skip
    assert {
        "id", "title", "created", "updated", "persona", "model", "sampling", "system_prompt",
        "current_leaf_id",
    } <= conversation_columns  # fmt: skip


def test_database_lives_in_the_data_directory_in_wal_mode(store):
    assert store.path == paths.database_path()
    with _raw(store.path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrations_are_applied_once(store):
    conn = connect(store.path)
    assert migrate(conn) == []
    assert conn.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    ConversationStore().close()  # a second open applies nothing either
    with _raw(store.path) as raw:
        assert raw.execute("SELECT count(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)


def test_upgrade_from_a_database_with_only_the_first_migration(tmp_path):
    path = tmp_path / "old.db"
    conn = connect(path)
    assert migrate(conn, upto="m001_conversations") == ["m001_conversations"]
    # rows as the first release wrote them: no FTS, no current leaf, no writer or heartbeat
    conn.execute(
        "INSERT INTO conversations (id, title, created, updated, model, sampling) "
        "VALUES ('01dc0de0', 'Old chat', '2024-01-01T10:00:00+00:00', "
        "'2024-01-01T10:05:00+00:00', 'old-model', '{\"temperature\": 0.3}')"
    )
    conn.execute(
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, created) "
        "VALUES (1, '01dc0de0', NULL, 'user', 'Tell me about zeppelins', "
        "'2024-01-01T10:00:00+00:00')"
    )
    conn.execute(
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, status, created) "
        "VALUES (2, '01dc0de0', 1, 'assistant', 'Zeppelins are airships', 'streaming', "
        "'2024-01-01T10:00:01+00:00')"
    )
    conn.close()

    with ConversationStore(path) as store:
        with _raw(path) as raw:
            recorded = [r[0] for r in raw.execute("SELECT name FROM _migrations ORDER BY rowid")]
        assert recorded == [m.name for m in MIGRATIONS]
        conversation = store.get_conversation("01d")
        assert conversation.title == "Old chat" and conversation.sampling == {"temperature": 0.3}
        assert conversation.current_leaf_id == 2  # the newest message becomes the current leaf
        path_messages = store.active_path(conversation.id)
        assert [m.content for m in path_messages] == [
            "Tell me about zeppelins",
            "Zeppelins are airships",
        ]
        # the old reply left streaming long ago (no writer recorded) is now interrupted
        assert path_messages[1].status == "interrupted"
        # old text is searchable: the FTS index was built from the existing rows
        assert sorted(hit.message_id for hit in store.search("zeppelin")) == [1, 2]
        # and the columns added later work on old rows
        store.update_conversation(conversation.id, persona="historian")
        reply = store.start_assistant_message(conversation.id, parent_id=1, model="new")
        store.finish_assistant_message(reply.id, "Rigid airships.", logprobs=[{"p": 0.5}])
        assert store.logprobs(reply.id) == [{"p": 0.5}]
        assert store.siblings(reply.id).label == "2/2"


def test_a_migration_that_cannot_run_stays_pending(tmp_path, monkeypatch):
    calls = []

    def m900_needs_a_module(conn: sqlite3.Connection) -> None:
        calls.append("m900")
        raise Skip("no such module")

    def m901_after(conn: sqlite3.Connection) -> None:
        calls.append("m901")

    monkeypatch.setattr(
        migrations_module,
        "MIGRATIONS",
        [*MIGRATIONS, Migration("m900_needs_a_module", m900_needs_a_module),
         Migration("m901_after", m901_after)],
    )  # fmt: skip
    conn = connect(tmp_path / "skip.db")
    assert migrations_module.migrate(conn)[-1] == "m901_after"
    assert migrations_module.migrate(conn) == []  # skipped again, but not recorded
    assert calls == ["m900", "m901", "m900"]
    conn.close()


def test_migrations_recorded_by_a_newer_version_are_tolerated(store):
    with _raw(store.path) as raw:
        raw.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', 'x')")
    with ConversationStore() as again:
        assert again.list_conversations() == []


def test_garbage_file_is_reported_with_its_path_and_left_untouched():
    path = paths.database_path()
    path.parent.mkdir(parents=True)
    garbage = b"these are my notes, not a database\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreError) as caught:
        ConversationStore()
    assert str(path) in str(caught.value) and "not a database" in str(caught.value)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


def test_content_is_stored_byte_for_byte(store):
    conversation = store.create_conversation()
    odd = "  leading space\r\nCRLF\ttab  \n\ntrailing blank lines\n\n"
    odd += "\u00e9\u0301 \U0001f600 \x00nul"
    user, reply = exchange(store, conversation.id, odd, odd + " ")
    assert store.get_message(user.id).content == odd
    assert store.get_message(reply.id).content == odd + " "


def test_deleting_a_conversation_deletes_its_messages(store):
    keep = store.create_conversation()
    gone = store.create_conversation()
    exchange(store, keep.id, "keep me", "kept")
    exchange(store, gone.id, "delete me", "deleted")
    store.delete(gone.id)
    with _raw(store.path) as raw:
        owners = {r[0] for r in raw.execute("SELECT conversation_id FROM messages")}
    assert owners == {keep.id}
