"""``chatterm chat`` (and ``chatterm`` alone): open the Textual app."""

from __future__ import annotations

import typer


def run_chat() -> None:
    raise typer.Exit(0)


def register(app: typer.Typer) -> None:
    pass
