"""Failures of the distributed setup while chatterm is answering: an RPC worker or llama-server
killed mid-answer, a server restarted between two turns. The partial answer is kept (on stdout
and in the history, marked as an error), the error is one line, the exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from chatterm.engine.events import ChatMessage
from chatterm.store.conversations import ConversationStore
from tests.conftest import REPO, run_cli
from tests.remote.conftest import endpoint_toml, write_config
from tests.remote.llama_servers import (
    MODEL,
    LlamaServer,
    Process,
    start_llama_server,
    start_rpc_setup,
)
from tests.remote.test_llama_server import GREEDY, local_reply

STORY = "Write a long story about a dragon."  # at temperature 0 it goes on for 1000 tokens
REMOTE = f"llama/{MODEL}"


def configure(home: Path, server: LlamaServer) -> None:
    # timeout: should a dead worker leave llama-server hanging, the answer still ends
    write_config(home, endpoint_toml("llama", server.base_url, None) + "timeout = 60\n")


def ask_then_kill(victim: Process) -> tuple[int, str, str]:
    """Start a long answer, kill ``victim`` (SIGKILL) once the answer streams, and return
    ``ask``'s exit code, all it printed, and stderr."""
    ask = subprocess.Popen(
        [sys.executable, "-m", "chatterm", "ask", "-m", REMOTE, *GREEDY, "-n", "1000", STORY],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
    )  # fmt: skip
    assert ask.stdout is not None
    first = os.read(ask.stdout.fileno(), 4096)  # the answer has started
    victim.kill()
    rest, err = ask.communicate(timeout=180)
    assert first.strip()
    return ask.returncode, (first + rest).decode(), err.decode()


def assert_partial_answer_kept(out: str, err: str) -> None:
    assert "Traceback" not in err
    *_, last = err.splitlines()
    assert last.startswith("chatterm: error: ") and "'llama'" in last
    with ConversationStore() as store:
        conversation = store.most_recent()
        assert conversation is not None
        user, reply = store.active_path(conversation.id)
    assert user.content == STORY
    assert reply.status == "error" and reply.content.strip()
    assert out in (reply.content, reply.content + "\n")  # ask ends its output with a newline


def test_an_rpc_worker_killed_mid_answer(chatterm_home, starter_path, tmp_path):
    server = start_rpc_setup(starter_path, tmp_path)
    try:
        configure(chatterm_home, server)
        code, out, err = ask_then_kill(server.workers[0])
    finally:
        server.stop()
    assert code == 1, err
    assert_partial_answer_kept(out, err)


def test_llama_server_killed_mid_answer(chatterm_home, starter_path, tmp_path):
    server = start_llama_server(starter_path, tmp_path / "server.log")
    try:
        configure(chatterm_home, server)
        code, out, err = ask_then_kill(server)
    finally:
        server.stop()
    assert code == 1, err
    assert err.splitlines()[-1].startswith(
        "chatterm: error: the connection to endpoint 'llama' broke mid-answer ("
    )
    assert_partial_answer_kept(out, err)


def test_a_server_restarted_between_two_turns(chatterm_home, starter_path, tmp_path):
    server = start_llama_server(starter_path, tmp_path / "first.log")
    configure(chatterm_home, server)
    try:
        first = run_cli("ask", "-m", REMOTE, *GREEDY, "-n", "12", "My name is Zed.")
        assert first.returncode == 0, first.stderr
    finally:
        server.stop()
    server = start_llama_server(starter_path, tmp_path / "second.log", port=server.port)
    try:
        second = run_cli("ask", "-c", *GREEDY, "-n", "12", "What is my name?")
    finally:
        server.stop()
    assert second.returncode == 0, second.stderr
    with ConversationStore() as store:
        conversation = store.most_recent()
        assert conversation is not None
        path = store.active_path(conversation.id)
    assert [m.status for m in path[1::2]] == ["complete", "complete"]
    # the new server knew nothing of the first turn: chatterm sent the whole conversation
    history = [ChatMessage(m.role, m.content) for m in path[:3]]
    assert second.stdout == local_reply(starter_path, history, 12) + "\n"
