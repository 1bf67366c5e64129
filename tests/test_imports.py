"""Start-up hygiene: the CLI's help and the domain modules load no UI or engine libraries."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("textual", "llama_cpp", "huggingface_hub", "numpy", "jinja2")


def loaded_modules(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize("args", [["--help"], ["ask", "--help"]])
def test_help_loads_no_heavy_library(args):
    code = (
        "import sys\n"
        f"sys.argv = ['chatterm', *{args!r}]\n"
        "from chatterm.cli.app import app\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    loaded = loaded_modules(code)
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize(
    "module",
    [
        "chatterm.engine.llama_engine",
        "chatterm.engine.fake",
        "chatterm.catalog",
        "chatterm.config",
        "chatterm.sampling",
        "chatterm.services",
        "chatterm.gguf_file",
    ],
)
def test_domain_modules_import_no_ui(module):
    loaded = loaded_modules(f"import {module}")
    assert "textual" not in loaded and "rich" not in loaded
