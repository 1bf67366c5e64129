"""What a command reads as its input: piped stdin, the arguments, and the prompt composed
from them with a persona and a template. Shared by ``ask``, ``render`` and the lab commands."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatterm.prompts import ComposedPrompt


def read_stdin() -> str:
    """Text piped on stdin; empty when stdin is a terminal or absent (see
    :mod:`chatterm.cli.input_text` for the UTF-8 policy)."""
    from chatterm.cli.input_text import read_stdin as read

    return read()


def combine_input(stdin_text: str, args: list[str]) -> str:
    """stdin first, then the argument: ``git diff | chatterm ask "write a commit message"``.
    Arguments go through the UTF-8 policy (:func:`chatterm.cli.input_text.clean`)."""
    from chatterm.cli import input_text

    prompt = " ".join(input_text.clean_all(args)).strip()
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
    files: list[str] | None = None,
    *,
    input_limit: tuple[int, int, int] | None = None,
) -> ComposedPrompt:
    """Load the persona and template, read the attachments (``-f``) and the input, and
    compose the request; shared by ``ask`` and ``render`` so both send exactly the same
    messages. Piped stdin is the input unless ``-f -`` attaches it. Text arguments and stdin
    go through :mod:`chatterm.cli.input_text` (UTF-8 policy, size limit); ``input_limit`` is
    ``(bytes, window tokens, longest token bytes)`` from ``services.input_limit``."""
    from chatterm import prompts
    from chatterm.cli import input_text
    from chatterm.cli.attach import gather

    args, var = input_text.clean_all(args), input_text.clean_all(var)
    system = input_text.clean(system)
    variables = prompts.parse_variables(var)
    persona_file = prompts.load_prompt("persona", persona) if persona else None
    template_file = prompts.load_prompt("template", template) if template else None
    limit, window, per_token = input_limit or (None, None, None)
    collected = gather(files)
    stdin_text = (
        ""
        if collected.uses_stdin
        else input_text.read_stdin(limit, window=window, per_token=per_token)
    )
    text = combine_input(stdin_text, args)
    return prompts.compose(
        text,
        persona=persona_file,
        template=template_file,
        variables=variables,
        system=system,
        attachments=collected.attachments,
    )
