"""Stream quirks through `chatterm ask` in a real subprocess: exit codes, one-line errors, what
reaches stdout and the history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatterm.store.conversations import ConversationStore
from tests.conftest import run_cli
from tests.remote.conftest import endpoint_toml, write_config
from tests.remote.fake_server import (
    MODEL,
    FakeServer,
    Request,
    Send,
    answer,
    chunk,
    head,
    sse,
    stream,
    whole,
)


@pytest.fixture
def fake(chatterm_home: Path) -> Iterator[FakeServer]:
    server = FakeServer()
    # timeout: what a held connection would cost without the fix (run_cli gives up sooner)
    write_config(chatterm_home, endpoint_toml("fake", server.base_url, None) + "timeout = 600\n")
    yield server
    server.stop()


def ask(*args: str) -> tuple[int, str, str]:
    result = run_cli("ask", "-m", f"fake/{MODEL}", *args, "Say hello.", timeout=60)
    return result.returncode, result.stdout, result.stderr


def last_reply():
    with ConversationStore() as store:
        conversation = store.most_recent()
        assert conversation is not None
        return store.active_path(conversation.id)[-1]


def test_ask_ends_at_the_finish_chunk_of_a_held_connection(fake):
    def script(send: Send, request: Request) -> None:
        send(head() + sse(*answer("Hello", " there."), done=False))
        fake.hold()

    fake.chat = script
    code, out, err = ask("--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["text"] == "Hello there." and data["finish_reason"] == "stop"
    assert last_reply().status == "complete"


def test_ask_accepts_a_json_body_instead_of_a_stream(fake):
    body = {"choices": [{"index": 0, "message": {"content": "Whole."}, "finish_reason": "stop"}]}
    fake.chat = lambda send, request: send(whole(200, json.dumps(body).encode()))
    assert ask() == (0, "Whole.\n", "")


def test_ask_keeps_the_partial_answer_when_the_server_errs_mid_stream(fake):
    fake.chat = stream(sse(chunk("Hello"), {"error": {"message": "out of memory"}}))
    code, out, err = ask()
    assert (code, out) == (1, "Hello\n")
    assert err == "chatterm: error: endpoint 'fake': out of memory\n"
    reply = last_reply()
    assert (reply.status, reply.content) == ("error", "Hello")


def test_ask_says_which_field_of_a_chunk_is_malformed(fake):
    fake.chat = stream(sse(chunk("Hi"), {"choices": [{"index": 0, "delta": "abc"}]}))
    code, out, err = ask()
    assert (code, out) == (1, "Hi\n")
    assert err == (
        "chatterm: error: endpoint 'fake' sent a malformed chunk (\"delta\" is the string "
        "'abc', not an object)\n"
    )


@pytest.mark.parametrize(
    ("models", "says"),
    [
        ({"data": 5}, '("data" is the number 5, not a list)'),
        ({"data": [{"id": 7}]}, '(a model "id" is the number 7, not a name)'),
        ([], "(the answer is a list, not an object)"),
    ],
)
def test_a_malformed_model_list_is_a_one_line_model_error(fake, models, says):
    fake.models = models
    code, out, err = ask()
    assert (code, out) == (3, "")
    assert err == (
        f"chatterm: error: endpoint 'fake' sent a malformed model list for {fake.base_url}"
        f"/models {says}\n"
    )
    listing = run_cli("models", "--json")
    assert listing.returncode == 0
    (row,) = [r for r in json.loads(listing.stdout) if r["name"].startswith("fake/")]
    assert "malformed model list" in row["error"]


def test_an_html_page_for_the_model_list_says_so(fake):
    page = b"<html><head><title>Welcome to nginx!</title></head><body></body></html>"
    fake.routes["/v1/models"] = lambda send, request: send(whole(200, page, "text/html"))
    code, out, err = ask()
    assert (code, out) == (3, "")
    assert err == (
        "chatterm: error: endpoint 'fake' sent an HTML page (Welcome to nginx!) for "
        f"{fake.base_url}/models; does base_url point at the API?\n"
    )
