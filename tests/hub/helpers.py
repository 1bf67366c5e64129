"""Helpers shared by the Hub tests: the installed models, the CLI's one-line errors, and a
pseudo-terminal run for what only happens on a terminal (questions, progress bars)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.conftest import REPO, run_cli


def installed() -> dict[str, dict]:
    result = run_cli("models", "--json")
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's error: exactly one `chatterm: error:` line and never a traceback."""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("chatterm: error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def run_on_terminal(args: list[str], answer: str) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout/stderr, typing ``answer`` once the
    question appears."""
    main, child = pty.openpty()
    # A real terminal size: a 0x0 pty makes tqdm draw zero-width progress bars.
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatterm", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        cwd=REPO,
        env=dict(os.environ),
        close_fds=True,
    )
    os.close(child)
    output = b""
    deadline = time.monotonic() + 60
    answered = False
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"[y/N]" in output:
                os.write(main, answer.encode())
                answered = True
        return proc.wait(timeout=30), output.decode(errors="replace")
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
