"""Helpers for the prompt tests: write persona and template files into the user directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chatterm import prompts


@pytest.fixture
def write_user() -> Callable[[str, str, str], Path]:
    """``write_user("template", "name", text)`` → the path of a new user file."""

    def write(kind: str, name: str, text: str) -> Path:
        directory = prompts.user_dir(kind)  # type: ignore[arg-type]
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.md"
        path.write_text(text, encoding="utf-8")
        return path

    return write
