"""The chat app's terminal-specific fixes, in a real terminal (tmux) on the real model: alt+c
and alt+y copy (a terminal sends them as ESC c / ESC y), the app starts and stays usable at
60x20 with Quit and Help in the footer and the model under the input, and TERM=dumb gets no
24-bit colour. What the app sends is read from every byte the pane receives."""

from __future__ import annotations

import base64
import re
import sqlite3
import time
from pathlib import Path

import pytest

from tests.tmux import chatterm_command, screen, start, wait_for_screen

pytestmark = pytest.mark.slow

OSC52 = re.compile(rb"\x1b\]52;c;([A-Za-z0-9+/=]*)(?:\x07|\x1b\\)")


def _config(home: Path) -> None:
    config = home / "config" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[sampling]\ntemperature = 0\nseed = 1\nmax_tokens = 60\n")


def copied(raw: Path) -> list[str]:
    """What the app put on the clipboard (OSC 52), in order."""
    return [base64.b64decode(m).decode() for m in OSC52.findall(raw.read_bytes())]


def wait_for_reply(database: Path, timeout: float = 180) -> str:
    """The first reply's text, once it is saved complete."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if database.exists():
            conn = sqlite3.connect(database)
            try:
                row = conn.execute(
                    "SELECT content FROM messages WHERE role = 'assistant' AND status = 'complete'"
                ).fetchone()
            except sqlite3.OperationalError:  # the schema is not there yet
                row = None
            finally:
                conn.close()
            if row:
                return str(row[0])
        time.sleep(0.2)
    raise AssertionError("no complete reply was saved")


def test_alt_keys_copy_and_60_columns_work_in_a_real_terminal(tmux, chatterm_home, tmp_path):
    _config(chatterm_home)
    raw = tmp_path / "raw"
    env = {"CHATTERM_HOME": str(chatterm_home)}
    target = start(tmux, chatterm_command(["chat"], env), size=(60, 20), raw_log=raw)
    shown = wait_for_screen(tmux, target, lambda s: "smollm2" in s, "the model under the input")
    footer = shown.rstrip().splitlines()[-1]
    assert footer.split()[:4] == ["^q", "Quit", "f1", "Help"]

    tmux("send-keys", "-t", target, "-l", "Show a one-line shell command in a code block.")
    tmux("send-keys", "-t", target, "Enter")
    reply = wait_for_reply(chatterm_home / "data" / "history.db")
    wait_for_screen(tmux, target, lambda s: "streaming" not in s, "the reply to be shown")

    tmux("send-keys", "-t", target, "M-c")  # ESC c, as a terminal sends alt+c
    wait_for_screen(tmux, target, lambda s: "Copied" in s, "the copy note")
    assert copied(raw)[-1] == reply
    assert "Message (Enter sends" in screen(tmux, target), "nothing was typed into the input"
    tmux("send-keys", "-t", target, "C-q")


def test_term_dumb_gets_no_24_bit_colour(tmux, chatterm_home, tmp_path):
    raw = tmp_path / "raw"
    env = {"CHATTERM_HOME": str(chatterm_home), "TERM": "dumb"}
    target = start(tmux, chatterm_command(["chat"], env), size=(100, 30), raw_log=raw)
    wait_for_screen(tmux, target, lambda s: "Message (Enter sends" in s, "the app")
    tmux("send-keys", "-t", target, "C-q")
    written = raw.read_bytes()
    assert b"\x1b[" in written, "the app drew"
    assert b"38;2;" not in written and b"48;2;" not in written
