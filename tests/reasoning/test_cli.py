"""``chatterm ask`` with a reasoning model, in real subprocesses with real pipes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from chatterm.store import ConversationStore
from tests.conftest import run_cli

ARGS = ("--temperature", "0", "--seed", "3")


def _ask(path: Path, *extra: str) -> Any:
    return run_cli("ask", "-m", str(path), *ARGS, *extra, "Explain why the sky is blue.")


def test_json_keeps_reasoning_and_text_apart_and_marks_reasoning_tokens(r1_path: Path) -> None:
    done = _ask(r1_path, "--thinking-budget", "6", "-n", "40", "--json", "--logprobs", "2")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["reasoning"].strip() and data["text"].strip()
    assert "</think>" not in data["text"] and "</think>" not in data["reasoning"]
    assert data["settings"]["thinking_budget"] == 6
    assert data["stats"]["reasoning_tokens"] >= 6 and not data["stats"]["reasoning_open"]
    tokens = data["tokens"]
    thinking = [t for t in tokens if t.get("reasoning")]
    answer = [t for t in tokens if not t.get("reasoning")]
    assert thinking and answer
    assert "".join(t["text"] for t in answer) == data["text"]
    assert tokens.index(thinking[-1]) < tokens.index(answer[0])


def test_a_pipe_gets_only_the_answer_and_show_thinking_sends_thinking_to_stderr(
    r1_path: Path,
) -> None:
    as_json = json.loads(_ask(r1_path, "--thinking-budget", "6", "-n", "40", "--json").stdout)
    piped = _ask(r1_path, "--thinking-budget", "6", "-n", "40")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() == as_json["text"].strip()
    assert as_json["reasoning"].strip() not in piped.stdout
    assert as_json["reasoning"].strip() not in piped.stderr
    shown = _ask(r1_path, "--thinking-budget", "6", "-n", "40", "--show-thinking")
    assert shown.stdout == piped.stdout
    assert as_json["reasoning"].strip() in shown.stderr
    assert "thought for" in shown.stderr


def test_all_thinking_says_so_and_is_saved_marked_open(r1_path: Path) -> None:
    done = _ask(r1_path, "-n", "5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
    assert "the reply was all thinking" in done.stderr and "--thinking-budget" in done.stderr
    with ConversationStore() as store:
        conversation = store.most_recent()
        assert conversation is not None
        reply = store.active_path(conversation.id)[-1]
    assert reply.reasoning.strip() and reply.content == "" and reply.reasoning_open
    assert reply.sampling is not None


def test_thinking_settings_are_saved_and_continue_uses_them(r1_path: Path) -> None:
    first = _ask(r1_path, "--thinking-budget", "5", "-n", "30")
    assert first.returncode == 0, first.stderr
    again = run_cli("ask", "-c", "--json", "-n", "30", "And at sunset?")
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["settings"]["thinking_budget"] == 5
    assert data["stats"]["reasoning_tokens"] >= 5


def test_no_think_on_a_model_without_the_switch_says_it_cannot(starter_path: Path) -> None:
    done = _ask(starter_path, "--no-think", "-n", "4")
    assert done.returncode == 0, done.stderr
    assert "cannot switch thinking off" in done.stderr


def test_no_think_on_a_qwen3_template_switches_thinking_off(qwen3_path: Path) -> None:
    done = _ask(qwen3_path, "--no-think", "-n", "4", "--json")
    assert done.returncode == 0, done.stderr
    assert "cannot switch" not in done.stderr
    data = json.loads(done.stdout)
    assert data["settings"]["think"] is False and data["reasoning"] == ""


def test_a_bad_thinking_budget_is_a_usage_error(starter_path: Path) -> None:
    done = _ask(starter_path, "--thinking-budget", "-3")
    assert done.returncode == 2
    assert "thinking_budget must be between 0 and" in done.stderr
    assert "Traceback" not in done.stderr


def test_lab_compare_shows_what_thinking_buys(r1_path: Path) -> None:
    args = ("lab", "compare", "Why is the sky blue?", "-m", str(r1_path), "--seed", "1")
    variants = ("-V", "thinking_budget=3", "-V", "thinking_budget=10", "-V", "think=off")
    done = run_cli(*args, *variants, "--temperature", "0", "-n", "40", "--json", "--no-save")
    assert done.returncode == 0, done.stderr
    runs = sorted(json.loads(done.stdout)["runs"], key=lambda r: r["variant"])
    short, long, off = runs
    assert short["settings"]["thinking_budget"] == 3 and off["settings"]["think"] is False
    assert 0 < short["stats"]["reasoning_tokens"] < long["stats"]["reasoning_tokens"]
    assert short["text"].strip() and short["reasoning"].strip()
    table = run_cli(*args, *variants[:4], "--temperature", "0", "-n", "40", "--no-save")
    assert table.returncode == 0, table.stderr
    assert "| tokens | thinking |" in table.stdout
    bad = run_cli(*args, "-V", "think=maybe", "--no-save")
    assert bad.returncode == 2 and "think must be on, off or auto" in bad.stderr


def test_on_a_terminal_thinking_folds_to_one_line_above_the_answer(
    r1_path: Path, chatterm_home: Path, tmp_path: Path
) -> None:
    """In a real terminal (tmux): the thinking shows under "thinking…" while it streams, and
    when the answer starts only "▸ thought for …" is left of it on screen."""
    import os
    import shlex
    import shutil
    import subprocess
    import sys
    import time

    import pytest

    from tests.conftest import REPO

    if shutil.which("tmux") is None:
        if os.environ.get("CHATTERM_REQUIRE_TMUX") == "1":
            pytest.fail("tmux is required (CHATTERM_REQUIRE_TMUX=1) but not installed")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    as_json = json.loads(_ask(r1_path, "--thinking-budget", "12", "-n", "50", "--json").stdout)
    socket = f"chatterm-reasoning-{os.getpid()}"
    done = tmp_path / "done"
    command = (
        f"cd {shlex.quote(str(REPO))} && env -u COLUMNS -u LINES "
        f"CHATTERM_HOME={shlex.quote(str(chatterm_home))} {shlex.quote(sys.executable)} "
        f"-m chatterm ask -m {shlex.quote(str(r1_path))} {' '.join(ARGS)} --thinking-budget 12 "
        f"-n 50 --no-save 'Explain why the sky is blue.'; touch {shlex.quote(str(done))}; sleep 60"
    )

    def tmux(*args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", socket, *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    tmux("new-session", "-d", "-s", "ask", "-x", "100", "-y", "40", command)
    try:
        deadline = time.monotonic() + 180
        while not done.exists():
            assert time.monotonic() < deadline, "chatterm ask did not finish"
            time.sleep(0.05)
        screen = tmux("capture-pane", "-p", "-t", "ask")
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)
    assert "▸ thought for" in screen and "tokens" in screen
    assert "thinking…" not in screen
    thinking = " ".join(as_json["reasoning"].split())
    assert thinking not in " ".join(screen.split())
    flat = " ".join(screen.split())
    # The answer is rendered as Markdown: look for a plain word of it, after the folded line.
    word = re.findall(r"[A-Za-z]{5,}", as_json["text"])[0]
    assert word in flat
    assert flat.index("▸ thought for") < flat.index(word)


def test_a_persona_sets_thinking_in_its_front_matter(r1_path: Path) -> None:
    from chatterm import prompts

    directory = prompts.user_dir("persona")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "brief-thinker.md").write_text(
        '+++\ndescription = "Thinks briefly"\nthink = true\nthinking_budget = 4\n+++\nBe brief.\n',
        encoding="utf-8",
    )
    done = _ask(r1_path, "-p", "brief-thinker", "-n", "30", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["settings"]["thinking_budget"] == 4 and data["settings"]["think"] is True
    assert 4 <= data["stats"]["reasoning_tokens"] < 12
    (directory / "bad-thinker.md").write_text(
        '+++\nthink = "sometimes"\n+++\nBe brief.\n', encoding="utf-8"
    )
    bad = _ask(r1_path, "-p", "bad-thinker", "-n", "4")
    assert bad.returncode == 2 and "think must be on, off or auto" in bad.stderr
