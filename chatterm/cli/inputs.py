"""What a command reads as its input: piped stdin, the arguments, and the prompt composed
from them with a persona and a template. Shared by ``ask``, ``render`` and the lab commands."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatterm.prompts import ComposedPrompt


def read_stdin() -> str:
    """Text piped on stdin; empty when stdin is a terminal or absent."""
    stream = sys.stdin
    if stream is None or stream.closed:
        return ""
    try:
        if stream.isatty():
            return ""
        return stream.read()
    except (OSError, ValueError):
        return ""


def combine_input(stdin_text: str, args: list[str]) -> str:
    """stdin first, then the argument: ``git diff | chatterm ask "write a commit message"``."""
    prompt = " ".join(args).strip()
    stdin_text = stdin_text.strip("\n")
    if stdin_text and prompt:
        return f"{stdin_text}\n\n{prompt}"
    return stdin_text or prompt


def compose_request(
    args: list[str] | None,
    persona: str | None,
    template: str | None,
    var: list[str] | None,
    system: str | None,
) -> ComposedPrompt:
    """Load the persona and template, read the input and compose the request; shared by
    ``ask`` and ``render`` so both send exactly the same messages."""
    from chatterm import prompts

    variables = prompts.parse_variables(var or [])
    persona_file = prompts.load_prompt("persona", persona) if persona else None
    template_file = prompts.load_prompt("template", template) if template else None
    text = combine_input(read_stdin(), args or [])
    return prompts.compose(
        text, persona=persona_file, template=template_file, variables=variables, system=system
    )
