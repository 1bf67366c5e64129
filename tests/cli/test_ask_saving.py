"""`chatterm ask` saves each exchange, continues conversations, and survives kill -9.

Real subprocesses on the real model; the database is read with the store while `ask` writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from chatterm import paths
from chatterm.store import ConversationStore
from tests.conftest import REPO, run_cli
from tests.store.conftest import exchange

GREEDY = ["--temperature", "0", "--seed", "1"]
LONG_PROMPT = "Write a very long story about a lighthouse keeper."


def _ask_json(*args: str) -> dict:
    result = run_cli("ask", *GREEDY, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _start_long_answer(chatterm_home) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CHATTERM_HOME": str(chatterm_home)}
    return subprocess.Popen(
        [sys.executable, "-m", "chatterm", "ask", *GREEDY, "-n", "2000", LONG_PROMPT],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )


def _wait_for_partial_reply(store: ConversationStore, proc: subprocess.Popen[bytes], size: int):
    """Poll the database (as another process would) until the streaming reply holds at least
    ``size`` characters; more than the first token means the once-a-second save ran."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "ask ended before its answer could be interrupted"
        conversation = store.most_recent()
        if conversation is not None:
            path = store.active_path(conversation.id)
            if len(path) == 2 and path[1].status == "streaming" and len(path[1].content) >= size:
                return conversation, path
        time.sleep(0.05)
    pytest.fail("no partial answer was saved in time")


def test_ask_saves_the_question_and_the_answer_with_its_provenance(starter_path):
    data = _ask_json("-n", "6", "Name a fruit.")
    conversation_id = data["conversation_id"]
    with ConversationStore() as store:
        conversation = store.get_conversation(conversation_id)
        question, reply = store.active_path(conversation_id)
    assert conversation.title == "Name a fruit." and conversation.model == data["model"]
    assert (question.role, question.content) == ("user", "Name a fruit.")
    assert (reply.role, reply.content, reply.status) == ("assistant", data["text"], "complete")
    assert reply.finish_reason == data["finish_reason"] and reply.stats == data["stats"]
    assert reply.sampling == data["settings"] and reply.sampling["seed"] == 1
    assert reply.model_path == str(starter_path) and reply.model_hash


def test_no_save_saves_nothing():
    data = _ask_json("-n", "2", "--no-save", "Hi")
    assert data["conversation_id"] is None
    assert json.loads(run_cli("history", "--json").stdout) == []


def _seed(system: str | None, question: str, answer: str) -> str:
    with ConversationStore() as store:
        conversation = store.create_conversation(system_prompt=system)
        exchange(store, conversation.id, question, answer)
        return conversation.id


def test_continue_sends_the_saved_conversation_as_history():
    system = "You are a helpful assistant."
    seeded = _seed(system, "My name is Zed.", "Nice to meet you, Zed!")
    alone = _ask_json("-n", "3", "--no-save", "-s", system, "Who am I?")
    continued = _ask_json("-n", "3", "-c", "Who am I?")
    assert continued["conversation_id"] == seeded
    # the earlier exchange went into the prompt, after the saved system prompt
    assert continued["stats"]["prompt_tokens"] - alone["stats"]["prompt_tokens"] >= 12
    with ConversationStore() as store:
        path = store.active_path(seeded)
    assert [(m.role, m.content) for m in path] == [
        ("user", "My name is Zed."),
        ("assistant", "Nice to meet you, Zed!"),
        ("user", "Who am I?"),
        ("assistant", continued["text"]),
    ]


def test_conversation_option_continues_a_given_one_by_prefix():
    older = _seed(None, "First topic.", "One.")
    _seed(None, "Second topic.", "Two.")
    again = _ask_json("-n", "2", "--conversation", older[:6], "More.")
    assert again["conversation_id"] == older
    with ConversationStore() as store:
        contents = [m.content for m in store.active_path(older)]
    assert contents[:3] == ["First topic.", "One.", "More."]


def test_continue_keeps_the_conversations_model_and_settings(starter_path):
    first = _ask_json("-m", str(starter_path), "--top-k", "7", "-n", "3", "Name a fruit.")
    # The default model now is one that does not exist: a new question cannot be answered...
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('default_model = "gone/model"\n', encoding="utf-8")
    assert run_cli("ask", "-n", "2", "Hi").returncode == 3
    # ...but continuing the conversation uses the model and settings it was started with.
    again = _ask_json("-c", "-n", "4", "Another one?")
    assert again["conversation_id"] == first["conversation_id"]
    assert again["model"] == first["model"]
    assert again["settings"]["top_k"] == 7 and again["settings"]["max_tokens"] == 4
    # An explicit flag still wins.
    assert _ask_json("-c", "--top-k", "3", "-n", "2", "And?")["settings"]["top_k"] == 3


def test_continue_when_the_conversations_model_is_gone_says_so_and_uses_the_default():
    seeded = _seed(None, "Hi.", "Hello.")
    with ConversationStore() as store:
        store.update_conversation(seeded, model="someone/deleted-model:Q4_K_M")
    result = run_cli("ask", *GREEDY, "--json", "-c", "-n", "2", "Still there?")
    assert result.returncode == 0, result.stderr
    assert "someone/deleted-model:Q4_K_M, which is not available" in result.stderr
    assert json.loads(result.stdout)["conversation_id"] == seeded


def test_continue_without_history_or_with_a_bad_id_is_a_usage_error():
    for args in (["-c"], ["--conversation", "fffffff0"], ["-c", "--conversation", "ab"]):
        result = run_cli("ask", *args, "Hi")
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr


def test_kill_9_mid_answer_keeps_the_question_and_the_partial_answer(chatterm_home):
    proc = _start_long_answer(chatterm_home)
    try:
        with ConversationStore() as store:
            conversation, _ = _wait_for_partial_reply(store, proc, size=30)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with ConversationStore(recover=False) as reader:  # as the killed process left it
        question, partial = reader.active_path(conversation.id)
    assert (question.role, question.content) == ("user", LONG_PROMPT)
    assert partial.status == "streaming" and len(partial.content) >= 30
    # the next start of chatterm marks the reply as interrupted and keeps its text
    shown = json.loads(run_cli("history", "show", conversation.id, "--json").stdout)
    assert [m["status"] for m in shown["messages"]] == ["complete", "interrupted"]
    assert shown["messages"][1]["content"] == partial.content


def test_ctrl_c_saves_the_partial_answer_as_stopped(chatterm_home):
    proc = _start_long_answer(chatterm_home)
    with ConversationStore() as store:
        conversation, _ = _wait_for_partial_reply(store, proc, size=1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    with ConversationStore() as store:
        question, reply = store.active_path(conversation.id)
    assert question.content == LONG_PROMPT
    assert (reply.status, reply.finish_reason) == ("stopped", "cancelled") and reply.content


def test_logprobs_are_saved_with_the_reply():
    data = _ask_json("-n", "5", "--logprobs", "3", "Name a fruit.")
    with ConversationStore() as store:
        _, reply = store.active_path(data["conversation_id"])
        saved = store.logprobs(reply.id)
    assert saved == data["tokens"]
    assert len(saved) == data["stats"]["generated_tokens"]
    assert all(len(t["top"]) == 3 and 0 < t["prob"] <= 1 for t in saved)


def test_a_question_refused_for_the_window_is_not_saved():
    """A refused message is not history (the rule in chatterm.store.turn): exit 4, no rows."""
    result = run_cli("ask", "--ctx-size", "256", "Summarise.", input="word " * 2000)
    assert result.returncode == 4
    with ConversationStore() as store:
        assert store.list_conversations() == []


def test_a_refused_question_leaves_a_continued_conversation_as_it_was():
    seeded = _seed(None, "First topic.", "One.")
    result = run_cli("ask", "--ctx-size", "256", "-c", "Summarise.", input="word " * 2000)
    assert result.returncode == 4
    with ConversationStore() as store:
        assert [m.content for m in store.messages(seeded)] == ["First topic.", "One."]
        assert [m.content for m in store.active_path(seeded)] == ["First topic.", "One."]
