"""Shell completion (Typer's ``--install-completion`` / ``--show-completion``): the script
chatterm prints, loaded into a real bash in a real terminal, completes commands, options and
the names of models, personas and templates."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.tmux import screen, start, wait_for_screen


def test_the_completion_script_names_chatterm():
    result = run_cli("--show-completion", "bash")
    assert result.returncode == 0, result.stderr
    assert "complete -o default -F _chatterm_completion chatterm" in result.stdout
    assert "_CHATTERM_COMPLETE=complete_bash" in result.stdout


@pytest.mark.slow
def test_tab_completes_commands_and_options_in_bash(tmux, tmp_path: Path):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "chatterm"  # `chatterm` from this checkout, as an installed one runs
    wrapper.write_text(
        f"#!/bin/sh\nPYTHONPATH={shlex.quote(str(REPO))} exec {shlex.quote(sys.executable)} "
        '-m chatterm "$@"\n'
    )
    wrapper.chmod(0o755)
    rc = tmp_path / "bashrc"
    rc.write_text(f'PATH={shlex.quote(str(bin_dir))}:$PATH\nPS1="$ "\n')
    target = start(tmux, f"env -u COLUMNS -u LINES bash --rcfile {shlex.quote(str(rc))} -i")
    wait_for_screen(tmux, target, lambda s: s.rstrip().endswith("$"), "the shell")
    tmux("send-keys", "-t", target, "-l", 'eval "$(chatterm --show-completion bash)"')
    tmux("send-keys", "-t", target, "Enter")
    wait_for_screen(tmux, target, lambda s: s.rstrip().endswith(')"\n$'), "the script loaded")

    def completes(typed: str, expected: str) -> None:
        tmux("send-keys", "-t", target, "C-u")
        tmux("send-keys", "-t", target, "-l", typed)
        tmux("send-keys", "-t", target, "Tab")
        wait_for_screen(
            tmux, target, lambda s: s.rstrip().endswith(f"$ {expected}"), expected, timeout=60
        )

    completes("chatterm hi", "chatterm history")
    completes("chatterm history sea", "chatterm history search")
    completes("chatterm ask --max-t", "chatterm ask --max-tokens")
    completes("chatterm ask -p teach", "chatterm ask -p teacher")  # names, not only options
    completes("chatterm ask -t summ", "chatterm ask -t summarize")
    completes("chatterm ask -m smollm2-135m-ins", "chatterm ask -m smollm2-135m-instruct")
    assert "Traceback" not in screen(tmux, target)
