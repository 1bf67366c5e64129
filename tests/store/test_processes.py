"""Several real processes on one database: concurrent writers, and crashed replies."""

from __future__ import annotations

import os
import subprocess
import sys

from chatterm.store import ConversationStore
from tests.conftest import REPO

WRITER = r"""
import sys
from chatterm.store import ConversationStore

name, count, shared = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = ConversationStore()
print("ready", flush=True)
sys.stdin.readline()  # both start writing at the same moment
for i in range(count):
    own = store.create_conversation()
    store.add_user_message(own.id, f"{name} question {i}")
    reply = store.start_assistant_message(own.id, model=name)
    store.update_partial(reply.id, f"{name} partial {i}")
    store.finish_assistant_message(reply.id, f"{name} answer {i}", finish_reason="stop")
    store.add_user_message(shared, f"{name} shared {i}")
print("done", flush=True)
"""

STREAMER = r"""
import os, sys
from chatterm.store import ConversationStore

store = ConversationStore()
conversation = store.create_conversation()
store.add_user_message(conversation.id, "Tell me a long story")
reply = store.start_assistant_message(conversation.id, model="m")
store.update_partial(reply.id, "Once upon a time")
print(reply.id, flush=True)
sys.stdin.readline()
os._exit(0)  # gone without finishing the reply, like a crash
"""


def _spawn(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=os.environ.copy(),
    )


def test_two_processes_writing_at_once_both_succeed(store):
    shared = store.create_conversation()
    count = 60
    writers = [_spawn(WRITER, name, str(count), shared.id) for name in ("alpha", "beta")]
    for proc in writers:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    for proc in writers:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = [proc.communicate(timeout=120) for proc in writers]
    for proc, (out, err) in zip(writers, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    conversations = store.list_conversations(limit=None)
    assert len(conversations) == 2 * count + 1
    replies = [m for c in conversations for m in store.messages(c.id) if m.role == "assistant"]
    assert len(replies) == 2 * count and {m.status for m in replies} == {"complete"}
    shared_path = store.active_path(shared.id)  # each append went under the current leaf
    assert len(shared_path) == 2 * count
    assert sorted(m.content for m in shared_path) == sorted(
        f"{name} shared {i}" for name in ("alpha", "beta") for i in range(count)
    )


def test_a_reply_left_streaming_by_a_dead_process_is_marked_interrupted():
    proc = _spawn(STREAMER)
    assert proc.stdout is not None and proc.stdin is not None
    reply_id = int(proc.stdout.readline())
    # while its writer lives, opening the store elsewhere leaves the reply alone
    with ConversationStore() as store:
        assert store.get_message(reply_id).status == "streaming"
    proc.stdin.write("exit\n")
    proc.stdin.flush()
    proc.wait(timeout=30)
    with ConversationStore() as store:
        reply = store.get_message(reply_id)
        assert (reply.status, reply.content) == ("interrupted", "Once upon a time")
        path = store.active_path(reply.conversation_id)
        assert [m.content for m in path] == ["Tell me a long story", "Once upon a time"]


def test_this_process_own_streaming_reply_is_not_interrupted(store):
    conversation = store.create_conversation()
    reply = store.start_assistant_message(conversation.id)
    assert store.mark_interrupted() == []
    with ConversationStore() as second:
        assert second.get_message(reply.id).status == "streaming"
