"""``chatterm personas``, ``chatterm templates`` and ``chatterm render``.

The groups list, show, create and edit the Markdown files handled by :mod:`chatterm.prompts`;
``render`` shows the exact text a request would put in front of the model. Only typer is
imported here at module level, so ``chatterm --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import typer

from chatterm.cli import options
from chatterm.cli.attach import FILE_OPTION
from chatterm.cli.errors import handle_errors
from chatterm.cli.inputs import compose_request
from chatterm.errors import TemplateError, UsageError

if TYPE_CHECKING:
    from chatterm.prompts import Kind, PromptFile


# -- the personas and templates groups ------------------------------------------------------


def _as_dict(item: PromptFile) -> dict[str, Any]:
    return {
        "name": item.name,
        "kind": item.kind,
        "description": item.description,
        "origin": item.origin,
        "overrides_bundled": item.overrides_bundled,
        "path": str(item.path),
        "settings": dict(item.settings),
        "variables": dict(item.variables),
        "uses": sorted(item.uses),
        "error": item.error,
    }


def _list(kind: Kind, as_json: bool) -> None:
    from chatterm import prompts

    items = prompts.list_prompts(kind)
    if as_json:
        print(json.dumps([_as_dict(i) for i in items], indent=2, ensure_ascii=False))
        return
    width = max((len(i.name) for i in items), default=0)
    for item in items:
        if item.error:
            text = f"BROKEN: {item.error}"
        else:
            text = item.description.splitlines()[0] if item.description else "(no description)"
            if item.origin == "user":
                text += (
                    "  (yours, overrides the bundled one)"
                    if item.overrides_bundled
                    else ("  (yours)")
                )
        print(f"{item.name:<{width}}  {text}")
    print(f"your {prompts.SUBDIRS[kind]}: {prompts.user_dir(kind)}", file=sys.stderr)


def _show(kind: Kind, name: str, as_json: bool) -> None:
    from chatterm import prompts

    item = prompts.find_prompt(kind, name)
    if as_json:
        data = _as_dict(item)
        data["body"] = item.body
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        origin = "yours" if item.origin == "user" else "bundled"
        if item.overrides_bundled:
            origin += ", overrides the bundled one"
        print(f"chatterm: {item.path} ({origin})", file=sys.stderr)
        sys.stdout.write(item.path.read_text(encoding="utf-8", errors="replace"))
        sys.stdout.flush()
    item.check()


def _saved(kind: Kind, path: Any) -> None:
    """Re-read the file after the editor: say where it is, or what is wrong with it."""
    from chatterm import prompts

    item = prompts.read_prompt(path, kind, "user")
    if item.error:
        group = prompts.SUBDIRS[kind]
        raise TemplateError(
            f"{item.error} (saved anyway; fix it with `chatterm {group} edit {item.name}`)"
        )
    print(f"chatterm: saved {path}", file=sys.stderr)


def _new(kind: Kind, name: str) -> None:
    from chatterm import prompts

    path = prompts.new_prompt(kind, name)
    print(f"chatterm: created {path} from a skeleton; opening the editor", file=sys.stderr)
    prompts.run_editor(path)
    _saved(kind, path)


def _edit(kind: Kind, name: str) -> None:
    from chatterm import prompts

    path, copied = prompts.editable_path(kind, name)
    if copied:
        print(
            f"chatterm: copied the bundled {kind} to {path}; your copy overrides it",
            file=sys.stderr,
        )
    prompts.run_editor(path)
    _saved(kind, path)


def _group(kind: Kind, plural: str) -> typer.Typer:
    what = (
        "system prompts with default settings"
        if kind == "persona"
        else ("reusable prompts with {{ input }} and variables")
    )
    group = typer.Typer(
        help=f"List, show, create and edit {plural} ({what}).\n\n"
        f"Your own {plural} override bundled ones of the same name.",
        invoke_without_command=True,
        no_args_is_help=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    json_option = typer.Option(False, "--json", help="Print JSON.")

    @group.callback()
    @handle_errors
    def default(ctx: typer.Context, as_json: bool = json_option) -> None:
        if ctx.invoked_subcommand is None:
            _list(kind, as_json)

    @group.command("list")
    @handle_errors
    def list_command(as_json: bool = json_option) -> None:
        """List them with their descriptions (the default); broken files are marked."""
        _list(kind, as_json)

    @group.command("show")
    @handle_errors
    def show_command(
        name: str = typer.Argument(..., help=f"The {kind}'s name."),
        as_json: bool = typer.Option(False, "--json", help="Print the parsed file as JSON."),
    ) -> None:
        """Print the file (its path goes to stderr)."""
        _show(kind, name, as_json)

    @group.command("new")
    @handle_errors
    def new_command(name: str = typer.Argument(..., help=f"The new {kind}'s name.")) -> None:
        """Create one from a skeleton in your directory and open $EDITOR on it."""
        _new(kind, name)

    @group.command("edit")
    @handle_errors
    def edit_command(name: str = typer.Argument(..., help=f"The {kind}'s name.")) -> None:
        """Open $EDITOR on your copy (a bundled one is copied to your directory first)."""
        _edit(kind, name)

    return group


# -- render ---------------------------------------------------------------------------------


def render(
    prompt: list[str] = typer.Argument(
        None, help="The message (with -c or --messages: an optional next message)."
    ),
    persona: str = options.PERSONA,
    template: str = options.TEMPLATE,
    var: list[str] = options.VAR,
    system: str = options.SYSTEM,
    model: str = typer.Option(
        None,
        "-m",
        "--model",
        help="Model name (see `chatterm models`) or GGUF path; a vocab-only GGUF is enough.",
        envvar="CHATTERM_MODEL",
        show_envvar=True,
    ),
    messages_file: str = typer.Option(
        None,
        "--messages",
        metavar="FILE",
        help='A whole conversation: {"messages": [{"role", "content"}, …]} as `history export` '
        "writes it; - reads stdin.",
    ),
    conversation: str = typer.Option(
        None,
        "-c",
        "--conversation",
        metavar="ID",
        help="A saved conversation (id or prefix), as its next reply would see it.",
    ),
    files: list[str] = FILE_OPTION,
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object: text, token count and ids, chat format, notes, messages.",
    ),
) -> None:
    """Print the exact text the model sees after its chat template, special tokens included.

    Only the model's vocabulary is loaded; nothing is generated. The token count, each
    attachment's, and notes (a system prompt folded into the first user message) go to stderr.
    Examples: chatterm render -p teacher "What is a token?" · chatterm render -c 3f2a "and then?"
    · chatterm history export 3f2a | chatterm render --messages -
    """
    from chatterm.attachments import count_tokens
    from chatterm.config import load_config
    from chatterm.services import EngineOptions, load_vocabulary, sampling_settings

    config = load_config()
    attachments: Any = ()
    if messages_file is not None and conversation is not None:
        raise UsageError("choose one of --messages and -c")
    settings_from: Any = None
    if messages_file is not None or conversation is not None:
        messages, model, settings_from = _whole_conversation(
            messages_file, conversation, prompt, persona, template, var, system, model, config
        )
        extra: dict[str, Any] = {}
    else:
        composed = compose_request(prompt, persona, template, var, system, files)
        if not composed.user.strip() and not composed.attachments:
            raise UsageError('nothing to render: give a prompt, e.g. chatterm render "hello"')
        messages = composed.messages()
        extra = dict(composed.settings)
        attachments = composed.attachments
    settings = sampling_settings(config, extra, saved=settings_from)
    tokenizer = load_vocabulary(EngineOptions(model=model), config)
    try:
        rendered = tokenizer.render(messages)
        attached = count_tokens(tokenizer, attachments)
        n_ctx = tokenizer.n_ctx
    finally:
        tokenizer.close()
    count = len(rendered.tokens)
    if as_json:
        print(
            json.dumps(
                {
                    "text": rendered.text,
                    "tokens": count,
                    "token_ids": list(rendered.tokens),
                    "model": tokenizer.name,
                    "n_ctx": n_ctx,
                    "format": rendered.format,
                    "notes": list(rendered.notes),
                    "messages": [{"role": m.role, "content": m.content} for m in messages],
                    "settings": settings.to_dict(),
                    "attachments": [a.to_dict() for a in attached],
                },
                ensure_ascii=False,
            )
        )
        return
    for note in rendered.notes:
        print(f"chatterm: note: {note}", file=sys.stderr)
    sys.stdout.write(rendered.text)
    if sys.stdout.isatty() and not rendered.text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()
    note = f" (more than the {n_ctx}-token context window)" if n_ctx and count > n_ctx else ""
    fmt = f" · format: {rendered.format}" if rendered.format else ""
    for item in attached:
        tokens = f"{item.tokens:,}" if item.tokens is not None else "?"
        print(f"attachment {item.source}: {tokens} tokens", file=sys.stderr)
    print(f"{count} tokens{note}{fmt}", file=sys.stderr)


def _whole_conversation(
    messages_file: str | None,
    conversation: str | None,
    prompt: list[str] | None,
    persona: str | None,
    template: str | None,
    var: list[str] | None,
    system: str | None,
    model: str | None,
    config: Any,
) -> tuple[list[Any], str | None, Any]:
    """The messages of ``--messages FILE`` or ``-c ID``, with -p/-s as their system prompt and
    the argument (through -t when given) as a next user message; the model (a saved
    conversation keeps its own unless -m says otherwise) and the saved sampling settings."""
    from chatterm import conversation_input
    from chatterm.cli.inputs import read_stdin
    from chatterm.engine.events import ChatMessage
    from chatterm.services import continued_model

    saved = None
    if messages_file is not None:
        stdin_text = read_stdin() if messages_file == "-" else None
        messages = conversation_input.read_messages(messages_file, stdin_text)
        next_text = " ".join(prompt or []).strip()
    else:
        assert conversation is not None
        found, messages = conversation_input.saved_conversation(conversation)
        saved = found.sampling
        if model is None:
            from chatterm.store import ConversationStore

            with ConversationStore() as store:
                path = [m.model_path for m in store.active_path(found.id) if m.model_path]
            used = [m for m in (found.model, *path[-1:]) if m]
            model, _ = continued_model(used, config)
        next_text = ""
    if conversation is not None or persona or template or var:
        composed = compose_request(prompt, persona, template, var, system)
        next_text = composed.user
        system = composed.system if (persona or system is not None) else None
    messages = conversation_input.with_system(messages, system)
    if next_text.strip():
        messages = [*messages, ChatMessage("user", next_text)]
    if not messages:
        raise UsageError("nothing to render: the conversation has no messages")
    return messages, model, saved


def register(app: typer.Typer) -> None:
    app.add_typer(_group("persona", "personas"), name="personas")
    app.add_typer(_group("template", "templates"), name="templates")
    app.command("render")(handle_errors(render))
