"""An API key never appears in any output, history row or experiment file: not when a server
echoes the Authorization header back in an error, not when the key itself is malformed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatterm import paths
from chatterm.store.conversations import ConversationStore
from tests.conftest import run_cli
from tests.remote.conftest import endpoint_toml, write_config
from tests.remote.fake_server import MODEL, FakeServer, Request, Send, answer, sse, stream, whole

KEY_VAR = "CHATTERM_TEST_FAKE_KEY"
KEY = "sk-test-5f3a9c0d1e2b4a6f"


def echo_401(send: Send, request: Request) -> None:
    """What some servers and proxies do: quote the header they refused."""
    auth = request.headers.get("authorization", "")
    body = {"error": {"message": f"invalid credentials: Authorization: {auth} (key {KEY})"}}
    send(whole(401, json.dumps(body).encode()))


@pytest.fixture
def fake(chatterm_home: Path) -> Iterator[FakeServer]:
    server = FakeServer()
    write_config(chatterm_home, endpoint_toml("fake", server.base_url, KEY_VAR))
    yield server
    server.stop()


def everything_written(result, home: Path) -> str:
    """stdout, stderr and every file under CHATTERM_HOME (history database, experiments)."""
    parts = [result.stdout, result.stderr]
    for path in home.rglob("*"):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_a_401_echoing_the_key_at_connect_is_redacted(fake, chatterm_home):
    fake.routes["/v1/models"] = echo_401
    result = run_cli("ask", "-m", f"fake/{MODEL}", "hi", env={KEY_VAR: KEY})
    assert result.returncode == 3
    assert result.stderr == (
        f"chatterm: error: endpoint 'fake' refused the API key in ${KEY_VAR} (401: invalid "
        "credentials: Authorization: Bearer [redacted] (key [redacted]))\n"
    )
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was sent
    listing = run_cli("models", "--json", env={KEY_VAR: KEY})
    assert listing.returncode == 0 and "[redacted]" in listing.stdout
    for each in (result, listing):
        assert KEY not in everything_written(each, chatterm_home)


def test_a_401_echoing_the_key_mid_conversation_stays_out_of_history(fake, chatterm_home):
    fake.chat = echo_401
    result = run_cli("ask", "-m", f"fake/{MODEL}", "hi", env={KEY_VAR: KEY})
    assert result.returncode == 1
    assert result.stderr.endswith("(key [redacted]))\n"), result.stderr
    (conversation,) = json.loads(run_cli("history", "--json").stdout)
    shown = run_cli("history", "show", "--json", conversation["id"])
    assert shown.returncode == 0 and '"status": "error"' in shown.stdout
    compare = run_cli(
        "lab", "compare", "--variant", f"model=fake/{MODEL}", "--max-tokens", "4", "hi",
        env={KEY_VAR: KEY},
    )  # fmt: skip
    assert list((paths.data_dir() / "experiments").glob("*.json")), compare.stderr
    for each in (result, shown, compare):
        assert KEY not in everything_written(each, chatterm_home)


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("sk-first-half\nsk-second-half", "holds a line break"),
        ("sk-ключ-секрет", "holds a non-ASCII character"),
        ("sk-tab\there", "holds a control character"),
    ],
    ids=["newline", "non-ascii", "control"],
)
def test_a_key_no_header_can_carry_is_named_never_shown(fake, chatterm_home, key, says):
    result = run_cli("ask", "-m", f"fake/{MODEL}", "hi", env={KEY_VAR: key})
    assert result.returncode == 3
    assert result.stderr == (
        f"chatterm: error: the API key in ${KEY_VAR} (endpoint 'fake') {says}, which an HTTP "
        "header cannot carry; check how the variable is set\n"
    )
    listing = run_cli("models", env={KEY_VAR: key})
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    for each in (result, listing):
        written = everything_written(each, chatterm_home)
        assert all(part not in written for part in key.split() if len(part) > 5)
    assert fake.requests == []  # nothing was sent with it


def test_a_key_echoed_in_the_answer_never_reaches_the_screen_or_history(fake, chatterm_home):
    """Split across chunks as a model would stream it; the text around it is kept."""
    pieces = ["Your key is ", KEY[:5], KEY[5:11], KEY[11:], " — and sk-t is not it."]
    fake.chat = stream(sse(*answer(*pieces)))
    result = run_cli("ask", "-m", f"fake/{MODEL}", "hi", env={KEY_VAR: KEY})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Your key is [redacted] — and sk-t is not it.\n"
    with ConversationStore() as store:
        conversation = store.most_recent()
        assert conversation is not None
        assert store.active_path(conversation.id)[-1].content == result.stdout[:-1]
    assert KEY not in everything_written(result, chatterm_home)
