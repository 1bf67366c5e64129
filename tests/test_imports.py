"""Start-up hygiene: the CLI's help and the domain modules load no UI or engine libraries."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import chatterm

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


def headless_modules() -> list[str]:
    """Every chatterm module except the front ends (``tui``, ``cli``) and ``__main__``: a new
    domain module is guarded the day it is added."""
    return sorted(
        info.name
        for info in pkgutil.walk_packages(chatterm.__path__, "chatterm.")
        if not info.name.startswith(("chatterm.tui", "chatterm.cli"))
        and info.name != "chatterm.__main__"
    )


def test_the_headless_list_covers_the_domain():
    names = headless_modules()
    assert {"chatterm.prompts", "chatterm.hub", "chatterm.engine.remote"} <= set(names)
    assert not [n for n in names if n.startswith(("chatterm.tui", "chatterm.cli"))]


@pytest.mark.parametrize("module", headless_modules())
def test_every_headless_module_imports_no_ui_and_no_model_runtime(module):
    """Domain code never loads a UI library, and llama.cpp only inside the functions that
    need it."""
    loaded = loaded_modules(f"import {module}")
    assert not loaded & {"textual", "rich", "llama_cpp"}, loaded & {"textual", "rich", "llama_cpp"}


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
