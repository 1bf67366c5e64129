"""``chatterm chat`` fails with one line before drawing anything when it cannot start, and the
README's key table stays true to the key bindings."""

from __future__ import annotations

import re
from pathlib import Path

from chatterm.tui import keys
from tests.conftest import REPO, run_cli


def test_chat_help_lists_its_options():
    result = run_cli("chat", "--help")
    assert result.returncode == 0
    for option in ("--model", "-m", "--persona", "-p", "--ctx-size", "--threads", "--gpu-layers"):
        assert option in result.stdout


def test_an_unknown_persona_is_a_usage_error():
    result = run_cli("chat", "-p", "no-such-persona")
    assert result.returncode == 2
    assert result.stderr.startswith("chatterm: error: no persona named 'no-such-persona'")
    assert "Traceback" not in result.stderr


def test_an_unknown_model_fails_before_the_app_starts():
    result = run_cli("chat", "-m", "no-such-model")
    assert result.returncode == 3
    assert "unknown model 'no-such-model'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_history_file_that_is_not_a_database_is_reported(chatterm_home: Path):
    database = chatterm_home / "data" / "history.db"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"this is not sqlite" * 100)
    result = run_cli()
    assert result.returncode != 0
    assert result.stderr.startswith("chatterm: error:") and str(database) in result.stderr
    assert database.read_bytes() == b"this is not sqlite" * 100, "the user's file is untouched"


def readme_section() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index("## The chat app")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_readme_lists_every_key_binding():
    prose = re.sub(r"^```.*?^```", "", readme_section(), flags=re.M | re.S)
    documented = set(re.findall(r"`([^`\n]+)`", prose))
    for binding in [*keys.APP_BINDINGS, *keys.CHAT_BINDINGS]:
        for key in binding.key.split(","):
            shown = key.replace("question_mark", "?")
            assert shown in documented, f"README's chat section does not mention {shown}"


def test_readme_keymap_example_uses_real_binding_ids_and_draws_no_warning():
    from chatterm.tui.lab.keys import LAB_BINDINGS

    ids = {b.id for b in [*keys.APP_BINDINGS, *keys.CHAT_BINDINGS]}
    example = dict(re.findall(r'^"([\w.]+)" = "([^"]+)"', readme_section(), flags=re.M))
    assert example and set(example) <= ids
    remappable = [*keys.APP_BINDINGS, *keys.CHAT_BINDINGS, *LAB_BINDINGS]
    assert keys.keymap_warnings(example, remappable) == []
