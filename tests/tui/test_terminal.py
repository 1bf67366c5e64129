"""End to end in a real terminal: tmux runs ``python -m chatterm`` on the real model; we type,
wait for the reply on screen, stop a second reply with Esc, quit with ctrl+q, then read the
history database.

tmux is required in CI (``CHATTERM_REQUIRE_TMUX=1``); elsewhere the test is skipped without it.
"""

from __future__ import annotations

import shlex
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

TIMEOUT = 180.0


def wait_for_screen(
    tmux: Callable[..., str], check: Callable[[str], bool], what: str, timeout: float = TIMEOUT
) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", "chat")
        if check(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen}")


def test_chat_in_a_real_terminal(tmux, chatterm_home: Path, tmp_path: Path):
    config = chatterm_home / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("[sampling]\ntemperature = 0\nseed = 1\nmax_tokens = 400\n")
    exit_file = tmp_path / "exit-code"
    command = (
        # COLUMNS/LINES (set under pytest) would override the terminal's real size.
        f"cd {shlex.quote(str(REPO))} && env -u COLUMNS -u LINES "
        f"CHATTERM_HOME={shlex.quote(str(chatterm_home))} "
        f"{shlex.quote(sys.executable)} -m chatterm; echo $? > {shlex.quote(str(exit_file))}"
    )
    tmux("new-session", "-d", "-s", "chat", "-x", "120", "-y", "40", command)
    wait_for_screen(tmux, lambda s: "window " in s and "tokens" in s, "the model to load")

    # The side panel's "Last reply" line ends with the finish reason once a reply is done.
    tmux("send-keys", "-t", "chat", "-l", "Count from 1 to 5, separated by commas.")
    tmux("send-keys", "-t", "chat", "Enter")
    wait_for_screen(tmux, lambda s: "· done" in s or "· cut" in s, "the first reply")

    tmux("send-keys", "-t", "chat", "-l", "Write a long story about a dragon who learns to fly.")
    tmux("send-keys", "-t", "chat", "Enter")
    wait_for_screen(tmux, lambda s: "streaming " in s and " tok/s" in s, "the second reply")
    tmux("send-keys", "-t", "chat", "Escape")
    wait_for_screen(tmux, lambda s: s.count("· stopped") >= 2, "the reply to stop")

    tmux("send-keys", "-t", "chat", "C-q")
    deadline = time.monotonic() + 30
    while not exit_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert exit_file.read_text().strip() == "0"

    conn = sqlite3.connect(chatterm_home / "data" / "history.db")
    rows = conn.execute("SELECT role, status, content FROM messages ORDER BY id").fetchall()
    conn.close()
    assert [(role, status) for role, status, _ in rows] == [
        ("user", "complete"),
        ("assistant", "complete"),
        ("user", "complete"),
        ("assistant", "stopped"),
    ]
    assert rows[0][2] == "Count from 1 to 5, separated by commas."
    assert rows[1][2].strip(), "the first reply was saved"
    assert rows[3][2], "the stopped reply keeps the text it had written"
