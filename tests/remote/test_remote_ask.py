"""``chatterm ask -m ENDPOINT/MODEL`` through real pipes, against a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from chatterm.engine.events import ChatMessage, Token
from chatterm.sampling import SamplingSettings
from chatterm.store.conversations import ConversationStore
from tests.conftest import REPO, run_cli
from tests.remote.conftest import MODEL, endpoint_toml, start_server, write_config

QUESTION = "What is the capital of France?"
STORY = "Write a long story about a dragon."  # at temperature 0 it loops for 1000 tokens


def test_remote_reply_equals_the_local_engines_at_temperature_0(remote_home, key_env, starter_path):
    result = run_cli(
        "ask", "-m", f"local/{MODEL}", "--temperature", "0", "--seed", "1", "-n", "16", QUESTION,
        env=key_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # The server renders the GGUF's own chat template (with SmolLM2's default system prompt),
    # as the local engine does, and samples greedily with the same llama.cpp: same tokens.
    # A fresh engine, as the server's is: llama.cpp's logits depend slightly on how the KV
    # cache was filled before (cell placement after reuse), enough to flip a greedy choice.
    from chatterm.engine.llama_engine import LlamaEngine

    settings = SamplingSettings().replace(temperature=0, seed=1, max_tokens=16)
    engine = LlamaEngine(starter_path, n_ctx=2048)
    try:
        events = list(engine.generate([ChatMessage("user", QUESTION)], settings))
    finally:
        engine.close()
    local = "".join(e.text for e in events if isinstance(e, Token))
    assert local.strip()
    assert result.stdout == local + "\n"


def test_unknown_remote_model_names_what_the_server_has(remote_home, key_env):
    result = run_cli("ask", "-m", "local/no-such-model", "hi", env=key_env)
    assert result.returncode == 3
    assert result.stderr == (
        "chatterm: error: endpoint 'local' has no model 'no-such-model'; it serves: smollm2\n"
    )


def test_server_down_is_a_one_line_error(remote_home):
    result = run_cli("ask", "-m", "down/any-model", "hi")
    assert result.returncode == 3
    assert result.stderr.startswith("chatterm: error: cannot reach endpoint 'down' at http://")
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_server_stopped_mid_answer_keeps_the_partial_reply(chatterm_home, starter_path, tmp_path):
    server = start_server(starter_path, tmp_path / "flaky.log")
    try:
        write_config(chatterm_home, endpoint_toml("flaky", server.base_url, None))
        ask = subprocess.Popen(
            [sys.executable, "-m", "chatterm", "ask", "-m", f"flaky/{MODEL}",
             "--temperature", "0", "-n", "1000", STORY],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        )  # fmt: skip
        assert ask.stdout is not None
        first = os.read(ask.stdout.fileno(), 4096)  # the answer has started streaming
        server.process.kill()
        rest, err = ask.communicate(timeout=60)
    finally:
        server.stop()
    partial = (first + rest).decode()
    assert first and partial.strip()
    assert ask.returncode == 1
    assert (
        err.decode()
        .splitlines()[-1]
        .startswith("chatterm: error: the connection to endpoint 'flaky' broke mid-answer (")
    )
    # The question and the partial answer are in the history, marked as failed.
    with ConversationStore() as store:
        conversation = store.most_recent()
        assert conversation is not None and conversation.model == f"flaky/{MODEL}"
        user, reply = store.active_path(conversation.id)
    assert (user.role, user.content) == ("user", STORY)
    assert reply.status == "error"
    assert partial in (reply.content, reply.content + "\n")  # ask ends the output with a newline


def test_ctrl_c_stops_a_remote_answer_and_keeps_it(remote_home, key_env, llama_server):
    disconnects = llama_server.disconnects()
    ask = subprocess.Popen(
        [sys.executable, "-m", "chatterm", "ask", "-m", f"local/{MODEL}",
         "--temperature", "0", "-n", "1000", STORY],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
        env={**os.environ, **key_env},
    )  # fmt: skip
    assert ask.stdout is not None
    first = os.read(ask.stdout.fileno(), 4096)
    ask.send_signal(signal.SIGINT)
    rest, err = ask.communicate(timeout=60)
    assert ask.returncode == 130 and first
    # one line at the end: interrupted, and what became of the partial answer
    assert err.decode().splitlines()[-1].startswith("chatterm: interrupted")
    with ConversationStore() as store:
        conversation = store.most_recent()
        assert conversation is not None
        reply = store.active_path(conversation.id)[-1]
    assert reply.status == "stopped" and (first + rest).decode().startswith(reply.content)
    llama_server.wait_for_disconnect(disconnects)


@pytest.mark.parametrize("command", ["tokenize", "render"])
def test_tokens_or_prompt_from_a_server_that_cannot_show_them_is_a_usage_error(
    remote_home, key_env, command
):
    # llama-cpp-python's server has neither /tokenize nor /apply-template: the request cannot
    # be served by this model, which is exit 2; exit 1 means the network, Hub or database.
    result = run_cli(command, "-m", f"local/{MODEL}", "hello", env=key_env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("chatterm: error: endpoint 'local'")
    assert "cannot show" in result.stderr and result.stderr.count("\n") == 1
