"""`chatterm personas`, `templates`, `render` and `ask -p/-t/-v` through real subprocesses."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from chatterm import prompts
from tests.conftest import run_cli

GREEDY = ["--temperature", "0", "--seed", "1"]


def editor(tmp_path: Path, action: str) -> dict[str, str]:
    """An $EDITOR that runs ``action`` (Python, with ``path`` bound) on the file it is given."""
    script = tmp_path / "editor.py"
    script.write_text(f"import sys, pathlib\npath = pathlib.Path(sys.argv[1])\n{action}\n")
    return {"EDITOR": f"{sys.executable} {script}", "VISUAL": ""}


# -- listing and showing -------------------------------------------------------------------


def test_personas_lists_bundled_ones_with_descriptions():
    result = run_cli("personas")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) >= 6
    teacher = next(line for line in lines if line.startswith("teacher "))
    assert "explains how language models work" in teacher
    assert str(prompts.user_dir("persona")) in result.stderr


def test_list_subcommand_and_json_agree():
    plain = run_cli("templates", "list")
    data = json.loads(run_cli("templates", "--json").stdout)
    assert [d["name"] for d in data] == [line.split()[0] for line in plain.stdout.splitlines()]
    assert {d["name"] for d in data} >= {
        "summarize",
        "explain-code",
        "commit-message",
        "translate",
        "proofread",
        "eli5",
    }
    translate = next(d for d in data if d["name"] == "translate")
    assert translate["variables"] == {"lang": "French"} and translate["error"] is None


def test_broken_file_is_marked_in_the_list_and_using_it_exits_2(write_user):
    path = write_user("template", "broken", "+++\ndescription = \n+++\n{{ input }}\n")
    listed = run_cli("templates")
    assert listed.returncode == 0
    line = next(x for x in listed.stdout.splitlines() if x.startswith("broken "))
    assert f"BROKEN: {path}:2: invalid front matter" in line
    assert any(x.startswith("summarize ") for x in listed.stdout.splitlines())
    used = run_cli("ask", "-t", "broken", "hello")
    assert used.returncode == 2
    assert used.stderr.startswith(f"chatterm: error: {path}:2: ")
    assert "Traceback" not in used.stderr


def test_show_prints_the_file_and_its_path_on_stderr():
    result = run_cli("personas", "show", "teacher")
    assert result.returncode == 0, result.stderr
    bundled = prompts.find_prompt("persona", "teacher").path
    assert result.stdout == bundled.read_text(encoding="utf-8")
    assert str(bundled) in result.stderr and "bundled" in result.stderr


def test_show_json_has_the_parsed_fields():
    data = json.loads(run_cli("templates", "show", "eli5", "--json").stdout)
    assert data["uses"] == ["age", "input"] and data["variables"] == {"age": "5"}
    assert "{{ input }}" in data["body"]


def test_show_unknown_name_exits_2():
    result = run_cli("personas", "show", "nobody")
    assert result.returncode == 2 and "no persona named 'nobody'" in result.stderr


# -- new and edit --------------------------------------------------------------------------


def test_new_opens_the_editor_on_a_skeleton(tmp_path):
    content = (
        "+++\ndescription = 'Talks like a pirate'\ntemperature = 0.9\n+++\nYou are a pirate.\n"
    )
    env = editor(
        tmp_path,
        f"assert 'description' in path.read_text()\npath.write_text({content!r})",
    )
    result = run_cli("personas", "new", "pirate", env=env)
    assert result.returncode == 0, result.stderr
    path = prompts.user_dir("persona") / "pirate.md"
    assert path.read_text() == content
    assert "saved" in result.stderr
    listed = run_cli("personas").stdout
    assert re.search(r"^pirate +Talks like a pirate  \(yours\)$", listed, re.M)


def test_new_with_broken_content_keeps_the_file_and_exits_2(tmp_path):
    env = editor(tmp_path, "path.write_text('{{ input }')")
    result = run_cli("templates", "new", "oops", env=env)
    path = prompts.user_dir("template") / "oops.md"
    assert result.returncode == 2
    assert f"{path}:1: template syntax error" in result.stderr and "saved anyway" in result.stderr
    assert path.read_text() == "{{ input }"


def test_edit_copies_the_bundled_file_and_leaves_it_intact(tmp_path):
    bundled = prompts.find_prompt("template", "eli5").path
    original = bundled.read_text()
    env = editor(tmp_path, "path.write_text(path.read_text().replace('five', 'ten'))")
    result = run_cli("templates", "edit", "eli5", env=env)
    assert result.returncode == 0, result.stderr
    mine = prompts.user_dir("template") / "eli5.md"
    assert "copied the bundled template" in result.stderr
    assert bundled.read_text() == original
    assert mine.read_text() == original.replace("five", "ten")
    listed = run_cli("templates").stdout
    assert "(yours, overrides the bundled one)" in next(
        x for x in listed.splitlines() if x.startswith("eli5 ")
    )


def test_new_refuses_path_separators(tmp_path):
    env = editor(tmp_path, "raise SystemExit('the editor must not run')")
    result = run_cli("personas", "new", "../escape", env=env)
    assert result.returncode == 2 and "invalid name" in result.stderr
    assert not (prompts.user_dir("persona").parent / "escape.md").exists()


def test_a_failing_editor_is_reported(tmp_path):
    env = editor(tmp_path, "raise SystemExit(3)")
    result = run_cli("personas", "edit", "concise", env=env)
    assert result.returncode == 1 and "editor exited with status 3" in result.stderr


# -- ask and render ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", "translate", "-v", "novalue", "hi"], "-v expects name=value"),
        (["-t", "translate", "-v", "lnag=German", "hi"], "has no variable 'lnag'"),
        (["-v", "lang=German", "hi"], "choose a template"),
        (["-p", "nobody", "hi"], "no persona named 'nobody'"),
        (["-t", "quiz", "ignored text"], "does not use"),
        (["-t", "needs-topic"], "no value for variable 'topic'"),
        (["-t", "translate"], "needs input"),
    ],
)
def test_bad_prompt_options_exit_2_before_loading_the_model(write_user, args, message):
    write_user("template", "needs-topic", "About {{ topic }}.\n")
    for command in ("ask", "render"):
        result = run_cli(command, *args)
        assert result.returncode == 2, (command, result.stderr)
        assert message in result.stderr and result.stdout == ""


def test_render_prints_the_chat_template_text_and_the_token_count():
    result = run_cli("render", "-t", "translate", "-v", "lang=German", input="Hello there\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("<|im_start|>system\n")  # SmolLM2's default system prompt
    assert "<|im_start|>user\nTranslate the following text into German." in result.stdout
    assert result.stdout.endswith("Hello there<|im_end|>\n<|im_start|>assistant\n")
    assert re.fullmatch(r"\d+ tokens · format: template\n", result.stderr)


def test_render_json_matches_what_ask_sends():
    args = ["-p", "concise", "-t", "eli5", "-v", "age=10", "rainbows"]
    rendered = json.loads(run_cli("render", "--json", *args).stdout)
    assert rendered["tokens"] == len(rendered["token_ids"]) > 20
    assert rendered["text"].startswith("<|im_start|>system\nYou are a concise assistant.")
    assert "Explain rainbows to a 10-year-old." in rendered["text"]
    assert [m["role"] for m in rendered["messages"]] == ["system", "user"]
    assert rendered["settings"]["temperature"] == 0.5  # the template's, over the persona's 0.3

    asked = run_cli("ask", "--json", "--seed", "1", "-n", "4", *args)
    assert asked.returncode == 0, asked.stderr
    data = json.loads(asked.stdout)
    assert data["stats"]["prompt_tokens"] == rendered["tokens"]
    assert data["settings"]["temperature"] == 0.5


def test_explicit_flags_override_persona_settings():
    result = run_cli("ask", "--json", "-p", "storyteller", *GREEDY, "-n", "3", "A cat.")
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert settings["temperature"] == 0  # the flag
    assert settings["repeat_penalty"] == 1.1  # the persona's default


def test_ask_with_a_template_that_needs_no_input():
    result = run_cli("ask", "-t", "quiz", "-v", "topic=bees", *GREEDY, "-n", "4", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["text"].strip()


def test_system_flag_wins_over_the_persona():
    result = run_cli("render", "--json", "-p", "teacher", "-s", "Be a pirate.", "hi")
    data = json.loads(result.stdout)
    assert data["messages"][0] == {"role": "system", "content": "Be a pirate."}
    assert data["settings"]["temperature"] == 0.6  # the persona's settings still apply
