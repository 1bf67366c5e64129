"""The store is domain code: importing it loads neither a UI library nor the model runtime."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_store_imports_no_ui_or_model_libraries():
    code = (
        "import sys, chatterm.store, chatterm.store.turn\n"
        "heavy = {'textual', 'rich', 'llama_cpp', 'numpy', 'jinja2'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"


def test_history_cli_module_imports_only_typer_at_load():
    code = "import sys, chatterm.cli.history\nprint('chatterm.store' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "False"
