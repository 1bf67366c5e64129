"""`chatterm history` through real subprocesses, on a real database."""

from __future__ import annotations

import json
import shlex

import pytest

from chatterm import paths
from chatterm.store import ConversationStore
from tests.conftest import REPO, run_cli
from tests.store.conftest import exchange


@pytest.fixture
def two(chatterm_home):
    with ConversationStore() as store:
        older = store.create_conversation(model="m", system_prompt="Be kind.")
        q, a = exchange(store, older.id, "How do bees fly?", "With fast wing beats.")
        again = store.regenerate(a.id)
        store.finish_assistant_message(again.id, "They flap.", status="stopped")
        newer = store.create_conversation()
        exchange(store, newer.id, "Recipe for pancakes", "Flour, eggs, milk.")
        return store.get_conversation(older.id), store.get_conversation(newer.id)


def _ok(*args: str, **kwargs) -> str:
    result = run_cli(*args, **kwargs)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _usage_error(*args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("chatterm: error: ") and "Traceback" not in result.stderr
    return result.stderr


def test_empty_history_lists_nothing():
    result = run_cli("history")
    assert result.returncode == 0 and result.stdout == ""
    assert "no saved conversations" in result.stderr


def test_history_lists_most_recent_first_and_list_is_an_alias(two):
    older, newer = two
    out = _ok("history")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines] == [newer.id, older.id]
    assert "Recipe for pancakes" in lines[0] and "3 msgs" in lines[1]
    assert _ok("history", "list") == out


def test_a_limit_that_hides_rows_says_how_many_and_how_to_see_them(two):
    older, newer = two
    listed = run_cli("history", "-n", "1")
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [newer.id]
    assert listed.stderr == "… 1 more conversation not shown (--limit 0 shows all)\n"
    assert run_cli("history", "-n", "0").stderr == ""
    found = run_cli("history", "search", "f", "-n", "1")  # flap, fly, flour
    assert len(found.stdout.splitlines()) == 1
    assert found.stderr.startswith("… ") and "more matches not shown (--limit 0" in found.stderr
    assert len(run_cli("history", "search", "f", "-n", "0").stdout.splitlines()) >= 3


def test_history_json_is_a_list_of_objects(two):
    older, newer = two
    data = json.loads(_ok("history", "--json"))
    assert [item["id"] for item in data] == [newer.id, older.id]
    assert {"id", "title", "created", "updated"} <= set(data[0])
    assert data[1]["title"] == "How do bees fly?"
    assert json.loads(_ok("history", "list", "--json")) == data
    filtered = json.loads(_ok("history", "--json", "--search", "wing"))
    assert [item["id"] for item in filtered] == [older.id]


def test_show_prints_the_current_branch_with_branch_marks(two):
    older, _ = two
    out = _ok("history", "show", older.id[:5])
    assert out.startswith(f"How do bees fly?  [{older.id}]\n")
    assert "system:\nBe kind." in out
    assert "user:\nHow do bees fly?\n" in out
    assert "assistant (branch 2/2, stopped):\nThey flap.\n" in out
    assert "fast wing beats" not in out


def test_show_json_is_the_export(two):
    older, _ = two
    data = json.loads(_ok("history", "show", older.id, "--json"))
    assert data["id"] == older.id and len(data["messages"]) == 3


def test_unknown_and_ambiguous_ids_are_usage_errors(two):
    with ConversationStore() as store:
        for fixed in ("abc00001", "abc00002"):
            store.import_json({"id": fixed, "messages": [{"role": "user", "content": fixed}]})
    assert "no conversation" in _usage_error("history", "show", "fffffff0")
    message = _usage_error("history", "show", "abc")
    assert "abc00001" in message and "abc00002" in message
    assert len(message.strip().splitlines()) == 1


def test_search_json_lists_matches_with_conversation_id_and_text(two):
    older, newer = two
    data = json.loads(_ok("history", "search", "eggs", "--json"))
    assert [(hit["id"], hit["text"]) for hit in data] == [(newer.id, "Flour, eggs, milk.")]
    # every branch is searched, not only the one showing
    assert [hit["id"] for hit in json.loads(_ok("history", "search", "wing", "--json"))] == [
        older.id
    ]
    text = _ok("history", "search", "pancake")
    assert newer.id in text and "[pancakes]" in text
    assert json.loads(_ok("history", "search", "zebra", "--json")) == []


def test_rename(two):
    older, _ = two
    assert _ok("history", "rename", older.id[:4], "Bee", "flight") == f"{older.id}  Bee flight\n"
    with ConversationStore() as store:
        assert store.get_conversation(older.id).title == "Bee flight"


def test_rm_deletes_only_when_every_id_is_valid(two):
    older, newer = two
    _usage_error("history", "rm", older.id, "fffffff0")
    assert len(json.loads(_ok("history", "--json"))) == 2
    out = _ok("history", "rm", older.id, newer.id[:5])
    assert f"deleted {older.id}" in out and f"deleted {newer.id}" in out
    assert json.loads(_ok("history", "--json")) == []
    assert json.loads(_ok("history", "search", "bees", "--json")) == []


def test_export_markdown_and_json_then_import_round_trip(two, tmp_path):
    older, _ = two
    markdown = _ok("history", "export", older.id, "--format", "md")
    assert markdown.startswith("# How do bees fly?") and "They flap." in markdown
    target = tmp_path / "bees.json"
    _ok("history", "export", older.id, "--format", "json", "-o", str(target))
    exported = json.loads(target.read_text())
    assert exported["id"] == older.id
    assert [(m["role"], m["content"]) for m in exported["messages"]][:2] == [
        ("user", "How do bees fly?"),
        ("assistant", "With fast wing beats."),
    ]
    new_id = _ok("history", "import", str(target)).strip()
    assert new_id != older.id and len(new_id) == 8
    again = json.loads(_ok("history", "export", new_id, "--format", "json"))
    assert {**again, "id": None} == {**exported, "id": None}
    via_stdin = _ok("history", "import", "-", input=target.read_text()).strip()
    assert via_stdin not in (older.id, new_id)


def test_bad_import_files_and_formats_are_usage_errors(two, tmp_path):
    older, _ = two
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert str(broken) in _usage_error("history", "import", str(broken))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"messages": [{"role": "robot", "content": "x"}]}))
    assert "role" in _usage_error("history", "import", str(wrong))
    assert "cannot read" in _usage_error("history", "import", str(tmp_path / "missing.json"))
    assert "md or json" in _usage_error("history", "export", older.id, "--format", "xml")
    assert len(json.loads(_ok("history", "--json"))) == 2


def test_a_garbage_database_is_reported_and_left_alone():
    path = paths.database_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\x01 not sqlite " * 100)
    result = run_cli("history")
    assert result.returncode == 1
    assert str(path) in result.stderr and "Traceback" not in result.stderr
    assert path.read_bytes() == b"\x00\x01 not sqlite " * 100


def test_help_lists_the_commands():
    out = _ok("history", "--help")
    for command in ("list", "show", "search", "rename", "rm", "export", "import"):
        assert f"  {command} " in out


def _readme_history_commands() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## History\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [shlex.split(line.split("#", 1)[0]) for line in block.splitlines() if line.strip()]


def test_readme_history_examples_use_real_commands_and_options():
    import typer.main

    from chatterm.cli.app import app

    root = typer.main.get_command(app)
    commands = _readme_history_commands()
    assert len(commands) >= 10
    for words in commands:
        assert words[0] == "chatterm"
        command = root.commands[words[1]]  # type: ignore[attr-defined]
        if hasattr(command, "commands") and len(words) > 2 and words[2] in command.commands:
            command = command.commands[words[2]]
        options = {opt for param in command.params for opt in param.opts}
        for word in words[2:]:
            if word.startswith("-"):
                assert word in options, (words, word)
