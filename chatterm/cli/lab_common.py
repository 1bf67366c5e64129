"""What the lab commands share: their text input and loading a model for them (with a fixed
thread count). Imported by ``cli.lab`` and ``cli.lab_inside``, which import nothing of each
other's."""

from __future__ import annotations

from typing import Any

from chatterm.cli.output import StatusLine
from chatterm.errors import UsageError


def text_input(args: list[str] | None, *, what: str) -> str:
    from chatterm.cli.inputs import combine_input, read_stdin

    text = combine_input(read_stdin(), args or [])
    if not text.strip():
        raise UsageError(f"nothing to {what}: give text as an argument or on stdin")
    return text


def load_lab_engine(
    model: str | None, ctx_size: int | None, threads: int | None, config: Any
) -> Any:
    from chatterm.services import EngineOptions, load_engine

    status = StatusLine()
    status.show("loading model…")
    try:
        # The lab teaches "same seed, same reply": never let the machine's load change it.
        options = EngineOptions(
            model=model, ctx_size=ctx_size, threads=threads, adapt_threads=False
        )
        return load_engine(options, config)
    finally:
        status.clear()
