"""The lab's domain modules stay headless and light; its help loads no heavy library."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_modules(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize(
    "module",
    [
        "chatterm.lab.distribution",
        "chatterm.lab.compare",
        "chatterm.lab.experiments",
        "chatterm.lab.probs",
    ],
)
def test_lab_modules_import_no_ui_and_no_numpy(module):
    loaded = loaded_modules(f"import {module}")
    assert not loaded & {"textual", "rich", "numpy", "llama_cpp"}


@pytest.mark.parametrize(
    "args", [["lab", "--help"], ["lab", "sample", "--help"], ["tokenize", "--help"]]
)
def test_lab_help_loads_no_heavy_library(args):
    code = (
        "import sys\n"
        f"sys.argv = ['chatterm', *{args!r}]\n"
        "from chatterm.cli.app import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    loaded = loaded_modules(code)
    assert not loaded & {"textual", "llama_cpp", "numpy", "jinja2", "rich"}


@pytest.mark.parametrize("module", ["chatterm.lab.attention", "chatterm.lab.lens"])
def test_inside_views_import_no_ui_and_no_llama_cpp(module):
    assert not loaded_modules(f"import {module}") & {"textual", "rich", "llama_cpp"}


@pytest.mark.parametrize("view", ["attention", "lens"])
def test_inside_views_help_loads_no_heavy_library(view):
    code = (
        "import sys\n"
        f"sys.argv = ['chatterm', 'lab', {view!r}, '--help']\n"
        "from chatterm.cli.app import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert not loaded_modules(code) & {"textual", "llama_cpp", "numpy", "jinja2", "rich"}
