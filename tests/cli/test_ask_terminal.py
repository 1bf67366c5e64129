"""``chatterm ask`` in a real terminal (tmux): what is left on the screen and in the
scrollback, and every byte written, on the real model.

What the answer should look like comes from the same test: the same greedy question asked with
``--json`` (the text), rendered with rich at the pane's width. No model's words are assumed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.tmux import END, chatterm_command, scrollback, start, wait_for_end, wait_for_screen

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 80, 12
GREEDY = ["--temperature", "0", "--seed", "1"]


def rendered(text: str, width: int = WIDTH) -> list[str]:
    """``text`` as rich renders Markdown at ``width`` columns, without colours, as tmux shows
    it: trailing spaces removed, no blank lines at either end."""
    from rich.console import Console
    from rich.markdown import Markdown

    console = Console(width=width, force_terminal=True, color_system=None)
    lines = console.render_lines(Markdown(text), console.options, pad=False)
    out = ["".join(segment.text for segment in line).rstrip() for line in lines]
    return _trimmed(out)


def _trimmed(lines: list[str]) -> list[str]:
    start, end = 0, len(lines)
    while start < end and not lines[start]:
        start += 1
    while end > start and not lines[end - 1]:
        end -= 1
    return lines[start:end]


def answer_lines(lines: list[str]) -> list[str]:
    """The answer as the pane holds it: everything before the first line chatterm itself
    wrote to stderr (a note, the stats line, "interrupted") or the end marker."""
    end = next(i for i, line in enumerate(lines) if line.startswith(("chatterm: ", "[", END)))
    return _trimmed(lines[:end])


def test_a_long_answer_is_left_once_and_without_escape_remnants(tmux):
    question = "Explain how to bake bread, with headings, a numbered list of steps and tips."
    args = ["ask", "--no-save", *GREEDY, "-n", "300", question]
    expected = json.loads(run_cli(*args, "--json").stdout)["text"]
    target = start(tmux, chatterm_command(args), size=(WIDTH, HEIGHT))
    assert wait_for_end(tmux, target) == 0
    lines = scrollback(tmux, target)
    assert len(rendered(expected)) > HEIGHT, "the answer must outgrow the screen"
    # Exactly one copy: what is left is the whole rendered answer, line for line.
    assert answer_lines(lines) == rendered(expected)
    text = "\n".join(lines)
    assert "[2K" not in text and "[0m" not in text and "thinking" not in text


def test_ctrl_c_leaves_the_partial_answer_once(tmux, chatterm_home: Path):
    args = ["ask", *GREEDY, "-n", "1000", "Write a very long story about a dragon."]
    target = start(tmux, chatterm_command(args, {"CHATTERM_HOME": str(chatterm_home)}))
    # Well past the first screen, so the answer has already scrolled.
    wait_for_screen(
        tmux,
        target,
        lambda s: len([x for x in s.splitlines() if x.strip()]) >= HEIGHT - 2,
        "a screenful of answer",
    )
    time.sleep(2)
    tmux("send-keys", "-t", target, "C-c")
    assert wait_for_end(tmux, target) == 130
    conn = sqlite3.connect(chatterm_home / "data" / "history.db")
    (saved,) = conn.execute("SELECT content FROM messages WHERE role = 'assistant'").fetchone()
    conn.close()
    lines = scrollback(tmux, target)
    assert any(line.startswith("chatterm: interrupted") for line in lines)
    assert answer_lines(lines) == rendered(saved)


def test_a_dumb_terminal_gets_no_escape_codes(tmux, tmp_path: Path):
    raw = tmp_path / "raw"
    args = ["ask", "--no-save", *GREEDY, "-n", "40", "Name three colours."]
    target = start(tmux, chatterm_command(args, {"TERM": "dumb"}), raw_log=raw)
    assert wait_for_end(tmux, target) == 0
    written = raw.read_bytes()
    answer = written.split(END.encode())[0]
    assert answer.strip(), "the answer was written"
    assert b"\x1b" not in answer


def test_no_color_keeps_the_probability_bands_apart(tmux, tmp_path: Path):
    raw = tmp_path / "raw"
    args = ["ask", "--no-save", *GREEDY, "-n", "40", "--show-probs", "Name three colours."]
    target = start(tmux, chatterm_command(args, {"NO_COLOR": "1"}), raw_log=raw)
    assert wait_for_end(tmux, target) == 0
    written = raw.read_bytes().split(END.encode())[0].decode("utf-8", "replace")
    # No colours at all (SGR 30-38, 90-97 foreground, 40-48 background)...
    assert "[38;" not in written and "[32m" not in written and "[31m" not in written
    # ...and the legend names the attributes the bands use instead.
    legend = next(x for x in scrollback(tmux, target) if x.startswith("token probability"))
    for word in ("plain", "underlined", "bold", "reversed"):
        assert word in legend
    assert "■" not in legend
