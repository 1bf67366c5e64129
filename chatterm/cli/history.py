"""``chatterm history``: list, show, search, rename, remove, export and import conversations.

Ids are the 8-character ones ``chatterm history`` prints; any unambiguous prefix works. Lists
and JSON go to stdout, notes to stderr. Only typer is imported at module level, so ``chatterm
--help`` stays fast; the store loads when a command runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from chatterm.cli.errors import handle_errors
from chatterm.errors import UsageError
from chatterm.outcome import outcome

if TYPE_CHECKING:
    from chatterm.store import Conversation, ConversationStore

JSON_HELP = "Print JSON instead of text."
MAX_IMPORT_BYTES = 256 << 20
"""An export of the longest conversation is a few megabytes; refuse more before reading it."""
LIMIT_HELP = "Show at most this many (0 = all)."


def _store() -> ConversationStore:
    from chatterm.store import ConversationStore

    return ConversationStore()


def _local(moment: Any) -> str:
    return str(moment.astimezone().strftime("%Y-%m-%d %H:%M"))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def list_conversations(
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    limit: int = typer.Option(50, "--limit", "-n", help=LIMIT_HELP),
    search: str = typer.Option(
        None, "--search", "-s", help="Only conversations whose title or messages match."
    ),
) -> None:
    """List saved conversations, most recent first."""
    with _store() as store:
        found = store.list_conversations(limit=limit or None, search=search)
        hidden = store.count_conversations(search=search) - len(found) if limit > 0 else 0
    if as_json:
        _print_json([conversation.to_dict() for conversation in found])
        return
    if not found:
        print("no saved conversations" + (" match" if search else ""), file=sys.stderr)
        return
    for conversation in found:
        n = conversation.message_count
        count = f"{n} msg" + ("s" if n != 1 else "")
        title = _one_line(conversation.title or "(untitled)", 70)
        print(f"{conversation.id}  {_local(conversation.updated)}  {count:>7}  {title}")
    if hidden > 0:
        _more(hidden, "conversation", limit)


def show(
    conversation_id: str = typer.Argument(..., metavar="ID", help="Conversation id or prefix."),
    as_json: bool = typer.Option(
        False, "--json", help="Print the JSON export (every branch) instead."
    ),
) -> None:
    """Show a conversation's current branch, with branch points marked "(branch 2/3)"."""
    with _store() as store:
        conversation = store.get_conversation(conversation_id)
        if as_json:
            _print_json(store.export_json(conversation.id))
            return
        path = store.active_path(conversation.id)
        positions = store.branch_positions(conversation.id)
    _print_transcript(conversation, path, positions)


def _print_transcript(conversation: Conversation, path: list[Any], positions: dict) -> None:
    print(f"{conversation.title or '(untitled)'}  [{conversation.id}]")
    facts = [f"created {_local(conversation.created)}", f"updated {_local(conversation.updated)}"]
    if conversation.model:
        facts.insert(0, f"model {conversation.model}")
    if conversation.persona:
        facts.insert(0, f"persona {conversation.persona}")
    print(" · ".join(facts))
    if conversation.system_prompt:
        print(f"\nsystem:\n{conversation.system_prompt}")
    for message in path:
        labels = []
        number, total = positions.get(message.id, (1, 1))
        if total > 1:
            labels.append(f"branch {number}/{total}")
        if message.role == "assistant":
            word = outcome(message.status, message.finish_reason)
            if word != "done":
                labels.append(word)
        elif message.status != "complete":
            labels.append(message.status)
        suffix = f" ({', '.join(labels)})" if labels else ""
        print(f"\n{message.role}{suffix}:")
        for item in message.attachments:
            tokens = f", {item.tokens:,} tokens" if item.tokens is not None else ""
            print(f"[attached {item.source} ({_size(item.size)}{tokens})]")
        if message.reasoning:  # the thinking, folded to its summary line (--json has it all)
            print(f"[{message.thinking_summary}]")
        print(
            message.content if message.content.strip() or not message.reasoning else "(no answer)"
        )


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    return f"{size / 1024:.1f} KB" if size < 2**20 else f"{size / 2**20:.1f} MB"


def search(
    query: list[str] = typer.Argument(..., help="Words to find (all must appear)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
    limit: int = typer.Option(20, "--limit", "-n", help=LIMIT_HELP),
) -> None:
    """Find messages containing every word of QUERY (prefixes match, case ignored)."""
    from chatterm.cli.input_text import clean_all

    text = " ".join(clean_all(query))
    with _store() as store:
        hits = store.search(text, limit=-1)  # all, to say how many are not shown
    hidden = max(0, len(hits) - limit) if limit > 0 else 0
    hits = hits[:limit] if limit > 0 else hits
    if as_json:
        _print_json([hit.to_dict() for hit in hits])
        return
    if not hits:
        print(f"nothing matches {text!r}", file=sys.stderr)
        return
    for hit in hits:
        title = _one_line(hit.conversation_title or "(untitled)", 40)
        print(f"{hit.conversation_id}  {title}  {hit.role}: {_one_line(hit.snippet, 90)}")
    if hidden > 0:
        _more(hidden, "match", limit)


def _more(hidden: int, what: str, limit: int) -> None:
    """Say on stderr how many rows ``--limit`` left out, and how to see them all."""
    plural = what + ("es" if what.endswith("ch") else "s") if hidden != 1 else what
    print(f"… {hidden} more {plural} not shown (--limit 0 shows all)", file=sys.stderr)


def rename(
    conversation_id: str = typer.Argument(..., metavar="ID", help="Conversation id or prefix."),
    title: list[str] = typer.Argument(..., help="The new title."),
) -> None:
    """Give a conversation a new title."""
    from chatterm.cli.input_text import clean_all

    with _store() as store:
        conversation = store.rename(conversation_id, " ".join(clean_all(title)))
    print(f"{conversation.id}  {conversation.title}")


def remove(
    conversation_ids: list[str] = typer.Argument(
        ..., metavar="ID...", help="Conversation ids or prefixes."
    ),
) -> None:
    """Delete conversations and all their messages."""
    with _store() as store:
        targets = [store.resolve_id(prefix) for prefix in conversation_ids]  # all valid first
        for conversation_id in dict.fromkeys(targets):
            deleted = store.delete(conversation_id)
            print(f"deleted {deleted.id}  {deleted.title}")


def export(
    conversation_id: str = typer.Argument(..., metavar="ID", help="Conversation id or prefix."),
    fmt: str = typer.Option(
        "md", "--format", "-f", help="md (the current branch, to read) or json (everything)."
    ),
    output: Path = typer.Option(
        None, "--output", "-o", help="Write to this file instead of stdout."
    ),
) -> None:
    """Export a conversation as Markdown or as JSON (which `history import` reads back)."""
    if fmt not in ("md", "json"):
        raise UsageError(f"unknown format {fmt!r}: use md or json")
    with _store() as store:
        if fmt == "json":
            text = json.dumps(store.export_json(conversation_id), indent=2, ensure_ascii=False)
            text += "\n"
        else:
            text = store.export_markdown(conversation_id)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{output}: cannot write ({exc.strerror or exc})") from None
    print(f"wrote {output}", file=sys.stderr)


def import_file(
    file: Path = typer.Argument(..., help="A JSON export (- reads stdin)."),
) -> None:
    """Import a conversation from a JSON export; prints its id."""
    from chatterm.safe_files import NotRegularFileError, read_bytes
    from chatterm.store import ImportFormatError

    try:
        if str(file) == "-":
            raw = sys.stdin.buffer.read(MAX_IMPORT_BYTES + 1)
            if len(raw) > MAX_IMPORT_BYTES:
                raise OSError(f"larger than {MAX_IMPORT_BYTES:,} bytes")
        else:
            raw = read_bytes(file, MAX_IMPORT_BYTES)
        text = raw.decode("utf-8")
    except NotRegularFileError as exc:
        raise UsageError(f"{file}: cannot read ({exc.strerror}, not a file)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{file}: not JSON ({exc})") from None
    except RecursionError:
        raise UsageError(f"{file}: not a chatterm conversation export: nested too deeply") from None
    with _store() as store:
        try:
            conversation = store.import_json(data)
        except ImportFormatError as exc:
            raise UsageError(f"{file}: not a chatterm conversation export: {exc}") from None
    print(conversation.id)


def register(app: typer.Typer) -> None:
    history = typer.Typer(
        name="history",
        help="Browse, search and manage saved conversations (no command: list them).",
        invoke_without_command=True,
        no_args_is_help=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @history.callback()
    @handle_errors
    def default(
        ctx: typer.Context,
        as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
        limit: int = typer.Option(50, "--limit", "-n", help=LIMIT_HELP),
        search_text: str = typer.Option(
            None, "--search", "-s", help="Only conversations whose title or messages match."
        ),
    ) -> None:
        if ctx.invoked_subcommand is None:
            list_conversations(as_json=as_json, limit=limit, search=search_text)

    history.command("list")(handle_errors(list_conversations))
    history.command("show")(handle_errors(show))
    history.command("search")(handle_errors(search))
    history.command("rename")(handle_errors(rename))
    history.command("rm")(handle_errors(remove))
    history.command("export")(handle_errors(export))
    history.command("import")(handle_errors(import_file))
    app.add_typer(history)
