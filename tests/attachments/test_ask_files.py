"""`chatterm ask -f`, `render -f`, `history` and `lab compare --file` on the real model, in real
subprocesses, with the history in a real SQLite file."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from chatterm import paths
from chatterm.store import ConversationStore
from tests.conftest import run_cli

GREEDY = ["--temperature", "0", "--seed", "1", "-n", "8"]
SECRET = "The secret word is PELICAN.\n"


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.md"
    path.write_text(SECRET)
    return path


def _ask(*args: str, input: str | None = None) -> dict:
    result = run_cli("ask", *GREEDY, "--json", *args, input=input)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _blob_rows() -> int:
    with sqlite3.connect(paths.database_path()) as conn:
        return int(conn.execute("SELECT count(*) FROM attachment_blobs").fetchone()[0])


def test_ask_reports_each_attachment_with_its_tokens_and_saves_it(notes: Path) -> None:
    data = _ask("-f", str(notes), "What is the secret word?")
    (item,) = data["attachments"]
    assert item["source"] == str(notes) and item["kind"] == "file"
    assert item["size"] == len(SECRET) and item["tokens"] > 8
    assert data["stats"]["prompt_tokens"] > item["tokens"]
    shown = run_cli("history", "show", data["conversation_id"])
    assert shown.returncode == 0, shown.stderr
    assert f"[attached {notes} ({len(SECRET)} bytes, {item['tokens']} tokens)]" in shown.stdout
    assert "What is the secret word?" in shown.stdout
    assert "PELICAN" not in shown.stdout.split("user:")[1].split("assistant")[0].replace(
        str(notes), ""
    )  # listed, not pasted into the question


def test_continuing_resends_the_attachments_and_stores_each_text_once(notes: Path) -> None:
    first = _ask("-f", str(notes), "What is the secret word?")
    again = _ask("-c", "-f", str(notes), "Say it again.")
    assert again["conversation_id"] == first["conversation_id"]
    assert _blob_rows() == 1  # the same file attached in two turns is stored once
    with ConversationStore() as store:
        path = store.active_path(first["conversation_id"])
    users = [m for m in path if m.role == "user"]
    assert [len(m.attachments) for m in users] == [1, 1]
    assert users[0].content == "What is the secret word?"  # the question alone is the text
    sent = users[0].to_chat().content
    assert sent.startswith(f'<attachment source="{notes}">\n{SECRET}</attachment>')
    # The third turn's prompt holds both earlier attachments: the history resends them.
    third = _ask("-c", "And once more?")
    assert third["stats"]["prompt_tokens"] > 2 * first["attachments"][0]["tokens"]


def test_stdin_can_be_the_attachment(notes: Path) -> None:
    data = _ask("-f", "-", "What is the secret word?", input=SECRET)
    assert [a["source"] for a in data["attachments"]] == ["stdin"]


def test_what_does_not_fit_is_refused_naming_the_largest_and_nothing_is_saved(
    tmp_path: Path,
) -> None:
    big = tmp_path / "big.txt"
    big.write_text("lighthouse keeper notes, day after day. " * 400)
    small = tmp_path / "small.txt"
    small.write_text("tiny\n")
    result = run_cli(
        "ask", "--ctx-size", "512", "-f", str(small), "-f", str(big), "Summarise these."
    )
    assert result.returncode == 4, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("chatterm: error: the attachments do not fit")
    assert f"largest: {big} (" in line and "tokens)" in line
    assert line.index(str(big)) < line.index(str(small))
    assert not paths.database_path().exists() or _blob_rows() == 0
    listed = run_cli("history", "--json")
    assert json.loads(listed.stdout or "[]") == []


@pytest.mark.parametrize(
    ("source", "code", "message"),
    [
        ("/nonexistent/notes.md", 2, "-f /nonexistent/notes.md: no such file or directory"),
        ("/dev/null", 2, "not a regular file"),
    ],
)
def test_bad_input_is_one_line_before_the_model_loads(source: str, code: int, message: str):
    # An unloadable model proves the attachment failed first: it would exit 3.
    result = run_cli("ask", "-m", "/nonexistent/model.gguf", "-f", source, "hi")
    assert result.returncode == code
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("chatterm: error: -f ") and message in line


def test_render_shows_the_attachment_in_place_with_its_tokens(notes: Path) -> None:
    result = run_cli("render", "-f", str(notes), "What is the secret word?")
    assert result.returncode == 0, result.stderr
    assert f'<attachment source="{notes}">\n{SECRET}</attachment>\n\nWhat is' in result.stdout
    assert f"attachment {notes}: " in result.stderr
    data = json.loads(run_cli("render", "--json", "-f", str(notes), "Q?").stdout)
    assert data["attachments"][0]["tokens"] > 8


def test_a_template_takes_attachments_as_its_input(notes: Path) -> None:
    result = run_cli("render", "-t", "summarize", "-f", str(notes))
    assert result.returncode == 0, result.stderr
    assert "the attached text above" in result.stdout
    assert result.stdout.index("PELICAN") < result.stdout.index("the attached text above")


def test_lab_compare_gives_every_variant_the_attachments(notes: Path) -> None:
    result = run_cli(
        "lab", "compare", "-f", str(notes), "What is the secret word?",
        "--variant", "temperature=0", "--variant", "temperature=1",
        "--max-tokens", "4", "--seed", "3", "--json", "--no-save",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert len(runs) == 2
    for run in runs:
        assert run["messages"][-1]["content"].startswith(f'<attachment source="{notes}">')


def test_exports_carry_attachments_and_import_restores_them(notes: Path, tmp_path: Path) -> None:
    data = _ask("-f", str(notes), "What is the secret word?")
    out = tmp_path / "export.json"
    exported = run_cli(
        "history", "export", data["conversation_id"], "--format", "json", "-o", str(out)
    )
    assert exported.returncode == 0, exported.stderr
    saved = json.loads(out.read_text())
    (item,) = saved["messages"][0]["attachments"]
    assert item["content"] == SECRET and item["source"] == str(notes)
    markdown = run_cli("history", "export", data["conversation_id"], "--format", "md").stdout
    assert f"Attached `{notes}`:" in markdown and "PELICAN" in markdown
    assert run_cli("history", "rm", data["conversation_id"]).returncode == 0
    assert _blob_rows() == 0  # no conversation uses the text any more
    imported = run_cli("history", "import", str(out))
    assert imported.returncode == 0, imported.stderr
    with ConversationStore() as store:
        (conversation,) = store.list_conversations()
        first = store.active_path(conversation.id)[0]
    assert first.attachments[0].text == SECRET


def test_an_unreachable_url_exits_1_and_saves_nothing() -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("ask", "-f", f"http://127.0.0.1:{port}/notes", "Summarise it.")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"chatterm: error: -f http://127.0.0.1:{port}/notes: cannot fetch it")
    assert not paths.database_path().exists()
