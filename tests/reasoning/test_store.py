"""Reasoning in the history store: beside the answer, in exports, back from imports, and read
correctly from rows saved before it had a column."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from chatterm.engine.events import Finished, Stats, Token
from chatterm.engine.fake import FakeEngine
from chatterm.sampling import SamplingSettings
from chatterm.store import ConversationStore
from chatterm.store.db import connect
from chatterm.store.migrations import migrate
from chatterm.store.turn import Turn
from tests.conftest import run_cli


def test_old_rows_holding_a_think_block_read_as_reasoning_and_answer(tmp_path: Any) -> None:
    path = tmp_path / "old.db"
    conn = connect(path)
    migrate(conn, upto="m003_branches_and_provenance")
    conn.execute(
        "INSERT INTO conversations (id, title, created, updated) "
        "VALUES ('01d7abcd', 'Old', '2025-01-01T10:00:00+00:00', '2025-01-01T10:00:00+00:00')"
    )
    conn.execute(
        "INSERT INTO messages (id, conversation_id, role, content, created) "
        "VALUES (1, '01d7abcd', 'user', 'hi', '2025-01-01T10:00:00+00:00')"
    )
    conn.execute(
        "INSERT INTO messages (id, conversation_id, parent_id, role, content, created) "
        "VALUES (2, '01d7abcd', 1, 'assistant', '<think>\nthe user greets me\n</think>\n\nHello!',"
        " '2025-01-01T10:00:01+00:00')"
    )
    conn.execute("UPDATE conversations SET current_leaf_id = 2")
    conn.commit()
    conn.close()
    with ConversationStore(path) as store:
        reply = store.active_path("01d7abcd")[1]
        assert reply.reasoning == "\nthe user greets me\n"
        assert reply.content == "\n\nHello!"
        chat = reply.to_chat()
        assert (chat.content, chat.reasoning) == (reply.content, reply.reasoning)
        columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(messages)")}
        assert "reasoning" in columns


def _record(engine: FakeEngine, question: str, **settings: Any) -> Turn:
    recorder = Turn.for_ask()
    sampling = SamplingSettings(**settings)
    recorder.begin(question, engine=engine, sampling=sampling)
    for event in engine.generate(recorder.messages(None, question), sampling):
        recorder.on_event(event)
        if isinstance(event, Finished):
            recorder.finish(event)
    return recorder


def test_recorder_saves_thinking_beside_the_answer() -> None:
    engine = FakeEngine().enqueue("<think> weigh it up </think> The answer.")
    recorder = _record(engine, "Question?")
    assert recorder.conversation is not None
    with ConversationStore() as store:
        reply = store.active_path(recorder.conversation.id)[-1]
    assert reply.reasoning == " weigh it up "
    assert reply.content == " The answer."
    assert reply.stats is not None and reply.stats["reasoning_tokens"] >= 3
    assert reply.thinking_summary.startswith("thought")


def test_a_reply_stopped_while_thinking_keeps_its_thinking_marked_open() -> None:
    engine = FakeEngine().enqueue("<think> one two three four five")
    recorder = _record(engine, "Question?", max_tokens=3)
    assert recorder.conversation is not None
    with ConversationStore() as store:
        reply = store.active_path(recorder.conversation.id)[-1]
    assert reply.reasoning.strip() == "one two" and reply.content == ""
    assert reply.reasoning_open
    assert "not finished" in reply.thinking_summary
    # The continued conversation sends the reply back (it is not empty: it thought).
    again = Turn.for_ask(continue_last=True)
    assert [m.role for m in again.history()] == ["user", "assistant"]


def test_partial_saves_keep_thinking_apart() -> None:
    with ConversationStore() as store:
        conversation = store.create_conversation()
        store.add_user_message(conversation.id, "q")
        reply = store.start_assistant_message(conversation.id)
        store.update_partial(reply.id, "", "thinking so far")
        saved = store.get_message(reply.id)
    assert (saved.content, saved.reasoning) == ("", "thinking so far")


def test_export_and_import_carry_the_reasoning(tmp_path: Any) -> None:
    engine = FakeEngine().enqueue("<think>first think</think>Then speak.")
    recorder = _record(engine, "Talk?")
    assert recorder.conversation is not None
    cid = recorder.conversation.id
    exported = run_cli("history", "export", cid, "--format", "json")
    assert exported.returncode == 0, exported.stderr
    data = json.loads(exported.stdout)
    reply = data["messages"][-1]
    assert (reply["reasoning"], reply["content"]) == ("first think", "Then speak.")
    markdown = run_cli("history", "export", cid, "--format", "md")
    assert "<details><summary>thought" in markdown.stdout and "first think" in markdown.stdout
    shown = run_cli("history", "show", cid)
    assert "[thought" in shown.stdout and "Then speak." in shown.stdout
    assert "first think" not in shown.stdout
    data["id"] = None
    source = tmp_path / "conversation.json"
    source.write_text(json.dumps(data), encoding="utf-8")
    imported = run_cli("history", "import", str(source))
    assert imported.returncode == 0, imported.stderr
    with ConversationStore() as store:
        copies = [c for c in store.list_conversations() if c.id != cid]
        assert len(copies) == 1
        path = store.active_path(copies[0].id)
    assert (path[-1].reasoning, path[-1].content) == ("first think", "Then speak.")


def test_stats_round_trip_through_the_store() -> None:
    stats = Stats(generated_tokens=9, reasoning_tokens=5, reasoning_s=1.25)
    with ConversationStore() as store:
        conversation = store.create_conversation()
        store.add_user_message(conversation.id, "q")
        reply = store.start_assistant_message(conversation.id)
        saved = store.finish_assistant_message(reply.id, "a", stats=stats.to_dict(), reasoning="r")
    assert saved.thinking_summary == "thought for 1.2 s, 5 tokens"
    assert Token("x", 1).reasoning is False  # plain tokens stay plain by default
