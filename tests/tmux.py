"""A real terminal for end-to-end tests: tmux on a private socket, a command in a pane of a
given size, and what the pane shows (or everything the command wrote, escape codes included).

tmux is required in CI (``CHATTERM_REQUIRE_TMUX=1``); elsewhere these tests are skipped
without it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from tests.conftest import REPO

TIMEOUT = 180.0
END = "END-OF-COMMAND"
"""Printed in the pane after the command, with its exit status: ``END-OF-COMMAND 0``."""


@pytest.fixture
def tmux() -> Iterator[Callable[..., str]]:
    """Run tmux commands on a private server (its own socket), killed afterwards."""
    if shutil.which("tmux") is None:
        if os.environ.get("CHATTERM_REQUIRE_TMUX") == "1":
            pytest.fail("tmux is required (CHATTERM_REQUIRE_TMUX=1) but not installed")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    # A server of its own per test: one ending (kill-server) must not race the next starting.
    socket = f"chatterm-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    def run(*args: str) -> str:
        return subprocess.run(
            ["tmux", "-L", socket, *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    yield run
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)


def chatterm_command(args: list[str], env: Mapping[str, str] | None = None) -> str:
    """A shell line that runs ``python -m chatterm ARGS`` from this checkout, then prints
    :data:`END` and the exit status, and keeps the pane open to be read."""
    # COLUMNS/LINES (set under pytest) would override the terminal's real size.
    assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    return (
        f"cd {shlex.quote(str(REPO))} && env -u COLUMNS -u LINES {assignments} "
        f"{shlex.quote(sys.executable)} -m chatterm {shlex.join(args)}; "
        f"echo {END} $?; sleep 600"
    )


def start(
    tmux: Callable[..., str],
    command: str,
    *,
    size: tuple[int, int] = (80, 12),
    raw_log: Path | None = None,
    name: str = "pane",
) -> str:
    """Start ``command`` in a new pane of ``size`` (columns, rows); with ``raw_log``, every
    byte the pane receives is also written there. Returns the target name."""
    width, height = size
    tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), "sleep 600")
    if raw_log is not None:
        tmux("pipe-pane", "-t", name, f"cat > {shlex.quote(str(raw_log))}")
    tmux("respawn-pane", "-k", "-t", name, command)
    return name


def screen(tmux: Callable[..., str], target: str) -> str:
    return tmux("capture-pane", "-p", "-t", target)


def scrollback(tmux: Callable[..., str], target: str) -> list[str]:
    """Every line the pane holds, the scrollback first, trailing spaces removed."""
    return [
        line.rstrip() for line in tmux("capture-pane", "-p", "-S", "-", "-t", target).split("\n")
    ]


def wait_for_screen(
    tmux: Callable[..., str],
    target: str,
    check: Callable[[str], bool],
    what: str,
    timeout: float = TIMEOUT,
) -> str:
    deadline = time.monotonic() + timeout
    shown = ""
    while time.monotonic() < deadline:
        shown = screen(tmux, target)
        if check(shown):
            return shown
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; the screen was:\n{shown}")


def wait_for_end(tmux: Callable[..., str], target: str, timeout: float = TIMEOUT) -> int:
    """Wait for the command to finish; its exit status."""
    shown = wait_for_screen(tmux, target, lambda s: f"{END} " in s, "the command to end", timeout)
    line = next(x for x in shown.splitlines() if x.startswith(f"{END} "))
    return int(line.split()[1])
