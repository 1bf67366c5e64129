"""Helpers for the chat app's tests: recorded messages, database rows, waiting on the app."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

from chatterm import paths
from chatterm.services import EngineOptions


class Seen(list):
    """Messages posted in the app, recorded with ``run_test(message_hook=seen.append)``.

    The hook runs for every pump a message visits while it bubbles; each message is kept once.
    """

    def __init__(self) -> None:
        super().__init__()
        self._ids: set[int] = set()

    def append(self, message: Any) -> None:
        if id(message) not in self._ids:
            self._ids.add(id(message))
            super().append(message)

    def of(self, kind: type) -> list[Any]:
        return [m for m in self if isinstance(m, kind)]

    def names(self, *kinds: type) -> list[str]:
        """The sequence of the given message types, by class name, repeats collapsed."""
        out: list[str] = []
        for message in self:
            if isinstance(message, kinds):
                name = type(message).__name__
                if not out or out[-1] != name:
                    out.append(name)
        return out


def db_rows(sql: str, params: tuple = ()) -> list[sqlite3.Row]:
    """Rows straight from the history database file, as another process would see them."""
    conn = sqlite3.connect(paths.database_path())
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def messages_rows() -> list[sqlite3.Row]:
    return db_rows(
        "SELECT id, conversation_id, parent_id, role, content, status, sampling, stats, "
        "finish_reason, model FROM messages ORDER BY id"
    )


async def wait_until(pilot: Any, predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """Let the app run until ``predicate()`` holds (a condition, not a fixed sleep). The
    timeout is generous: on a loaded 2-core machine llama.cpp's spinning threads can slow a
    reply down a lot, and a slow reply is not what these tests check."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            job = getattr(pilot.app.chat, "job", None)
            raise AssertionError(f"timed out waiting for {predicate}; job={job!r}")
        await pilot.pause(0.02)


async def settle(pilot: Any) -> None:
    """Wait for every worker, then for the messages they posted to be handled."""
    app = pilot.app
    await app.workers.wait_for_complete()
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


async def send(pilot: Any, text: str) -> None:
    """Type ``text`` into the input, press Enter and wait for the reply to end."""
    prompt = pilot.app.chat.prompt
    prompt.text = text
    prompt.focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: pilot.app.chat.job is None)
    await settle(pilot)


def failing_loader(message: str) -> Callable[[EngineOptions], Any]:
    from chatterm.errors import ModelError

    def load(options: EngineOptions) -> Any:
        raise ModelError(message)

    return load
