"""The options ``-f``/``--file``, ``--schema`` and ``--grammar``, declared once for ``ask``,
``render`` and the lab, and the small steps every command takes with them: check the schema
and read the attachments before a model loads, then count the attachments' tokens and refuse
what does not fit. The work itself lives in :mod:`chatterm.attachments` and
:mod:`chatterm.structured`."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from chatterm.attachments import Attachment, Collected
    from chatterm.engine.events import ChatMessage

FILE_OPTION = typer.Option(
    None,
    "-f",
    "--file",
    metavar="PATH|DIR|-|URL",
    help="Attach a text file, a directory (honouring .gitignore, binary files skipped), - for "
    "stdin, or an http(s) URL; repeatable. Each goes before the question, naming its source.",
)
SCHEMA_OPTION = typer.Option(
    None,
    "--schema",
    metavar="SCHEMA",
    help="Make the reply JSON that follows this schema: inline JSON, a .json file, or "
    "'name, age int, tags list' (types str, int, float, bool, list).",
)
GRAMMAR_OPTION = typer.Option(
    None,
    "--grammar",
    metavar="FILE.gbnf",
    help="Constrain the reply with a llama.cpp GBNF grammar file.",
)


def structure(schema: str | None, grammar: str | None) -> dict[str, str]:
    """The ``schema``/``grammar`` sampling settings for the flags, checked (exit 2 with one
    line) before any model loads; empty when neither flag is given."""
    from chatterm import structured
    from chatterm.errors import UsageError

    if schema is not None and grammar is not None:
        raise UsageError(
            "--schema and --grammar both constrain the reply: give one (a schema becomes a "
            "grammar itself)"
        )
    out: dict[str, str] = {}
    if schema is not None:
        text = structured.canonical(structured.parse_schema(schema))
        structured.schema_grammar(text)  # a construct llama.cpp cannot convert fails here
        out["schema"] = text
    if grammar is not None:
        out["grammar"] = structured.read_grammar(grammar)
    return out


def check_settings(settings: Any) -> None:
    """Check a schema or grammar that came from a persona or template before the model
    loads."""
    from chatterm import structured

    if settings.grammar:
        structured.check_grammar(settings.grammar)
    elif settings.schema:
        structured.schema_grammar(settings.schema)


def gather(files: Sequence[str] | None) -> Collected:
    """Read the ``-f`` sources (stdin for ``-``), telling the user what was skipped."""
    from chatterm.attachments import Collected, collect

    if not files:
        return Collected()
    found = collect(files)
    for note in found.notes:
        print(f"chatterm: note: {note}", file=sys.stderr)
    return found


def measure(
    engine: Any, messages: Sequence[ChatMessage], attachments: Sequence[Attachment], settings: Any
) -> list[Attachment]:
    """Each attachment with its token count; raises ``ContextOverflowError`` (exit 4) naming
    the largest ones when the newest message with its attachments does not fit the window
    (older history may still be dropped to make room, attachments never)."""
    from chatterm.attachments import check_fit, count_tokens
    from chatterm.engine.context import reply_reserve
    from chatterm.errors import ChattermError

    if not attachments:
        return []
    counted = count_tokens(engine, attachments)
    head = [m for m in messages[:1] if m.role == "system"]
    try:
        prompt = engine.render([*head, messages[-1]])
    except ChattermError:
        return counted  # a server that cannot render: it reports overflows itself
    n_ctx = engine.n_ctx
    check_fit(len(prompt.tokens), n_ctx, reply_reserve(n_ctx, settings.max_tokens), counted)
    return counted


def describe(attachments: Sequence[Attachment]) -> str:
    """``notes.md (1,204 tokens), https://… (310 tokens)``."""
    return ", ".join(
        f"{a.source} ({a.tokens:,} tokens)" if a.tokens is not None else a.source
        for a in attachments
    )
