"""SIGTERM and SIGHUP are Ctrl-C; a locked history database costs a retry, never the exchange
(issue 16, part 5)."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from chatterm.engine.fake import FakeEngine
from chatterm.sampling import SamplingSettings
from chatterm.store import ConversationStore, db, turn
from chatterm.store.turn import Turn
from tests.hostile.limits import bounded, run_limited

STORY = "Write a long story about a lighthouse keeper and the storm that changed her life."


def replies() -> list[dict]:
    with ConversationStore() as store:
        found = store.list_conversations(limit=None)
        return [
            {"content": m.content, "status": m.status}
            for c in found
            for m in store.active_path(c.id)
            if m.role == "assistant"
        ]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_terminating_signal_keeps_saves_and_marks_the_partial_answer(home: Path, signum, code):
    result = run_limited(
        "ask",
        "--temperature",
        "0",
        "-n",
        "400",
        STORY,
        signal_after=(40, signum),
        case=f"signal: {signal.Signals(signum).name}",
    )
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    name = signal.Signals(signum).name
    assert f"chatterm: stopped by {name} (the partial answer is saved, marked stopped)" in (
        result.stderr
    )
    [saved] = replies()
    assert saved["status"] == "stopped"
    assert saved["content"].strip() == result.stdout.strip() and len(saved["content"]) >= 40


def hold_lock(path: Path, seconds: float, ready: threading.Event) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def locked_exchange(monkeypatch, held: float, retry: float) -> tuple[Turn, list[str]]:
    """One exchange through the recorder while another connection holds the database for
    ``held`` seconds; short busy timeouts keep the test quick."""
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(turn, "LOCKED_RETRY_S", retry)
    monkeypatch.setattr(turn, "QUESTION_WAIT_S", 0.2)
    ConversationStore().close()  # the file exists, migrated
    ready = threading.Event()
    holder = threading.Thread(target=hold_lock, args=(db_path(), held, ready), daemon=True)
    holder.start()
    ready.wait(5)
    warnings: list[str] = []
    rec = Turn.for_ask(warn=warnings.append)
    engine = FakeEngine().enqueue("the answer to the question")
    messages = rec.messages(None, "the question")
    rec.begin("the question", engine=engine, sampling=SamplingSettings(seed=1))
    finished = None
    for event in engine.generate(messages, SamplingSettings(seed=1)):
        rec.on_event(event)
        finished = event
    rec.finish(finished)  # type: ignore[arg-type]
    holder.join(10)
    return rec, warnings


def db_path() -> Path:
    from chatterm import paths

    return paths.database_path()


def test_a_locked_database_is_saved_after_the_answer(chatterm_home, monkeypatch):
    with bounded("db locked, then free"):
        rec, warnings = locked_exchange(monkeypatch, held=1.0, retry=10.0)
    assert any("saving is retried" in w for w in warnings)
    assert any("saved to conversation" in w for w in warnings)
    assert replies() == [{"content": "the answer to the question", "status": "complete"}]


def test_a_database_locked_too_long_says_so_and_writes_the_exchange_to_a_file(
    chatterm_home, monkeypatch
):
    with bounded("db locked past the retries"):
        rec, warnings = locked_exchange(monkeypatch, held=2.5, retry=0.5)
    assert any("NOT in the history" in w for w in warnings)
    [written] = (chatterm_home / "data" / "unsaved").glob("*.json")
    assert any(str(written) in w for w in warnings)
    data = json.loads(written.read_text())
    assert [m["content"] for m in data["messages"]] == [
        "the question",
        "the answer to the question",
    ]
    with ConversationStore() as store:  # and it imports as the warning says
        store.import_json(data)
    assert replies() == [{"content": "the answer to the question", "status": "complete"}]


def test_ask_answers_while_the_database_is_locked_and_saves_afterwards(home: Path):
    """The real command on the real model: another process holds the history while the
    question would be saved; the answer comes first (after at most QUESTION_WAIT_S), and the
    exchange is saved once the lock is gone."""
    ConversationStore().close()
    ready = threading.Event()
    holder = threading.Thread(
        target=hold_lock, args=(db_path(), turn.QUESTION_WAIT_S + 6, ready), daemon=True
    )
    holder.start()
    ready.wait(5)
    result = run_limited(
        "ask", "--temperature", "0", "-n", "6", "Name a colour.", case="db locked: ask"
    )
    holder.join(30)
    assert result.returncode == 0, result.stderr
    assert "saving is retried" in result.stderr and "saved to conversation" in result.stderr
    [saved] = replies()
    assert saved == {"content": result.stdout.strip(), "status": "complete"}
