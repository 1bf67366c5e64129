"""The root ``chatterm`` command: the TUI with no arguments, subcommands otherwise."""

from __future__ import annotations

import json
import sys

import typer

from chatterm import __version__, paths
from chatterm.cli.errors import handle_errors

EXIT_CODES_HELP = (
    "Exit codes: 0 success, 1 failure (network, Hub, database), 2 usage error, "
    "3 model missing or unusable, 4 input does not fit the context window, 130 interrupted, "
    "143/129 stopped by SIGTERM/SIGHUP."
)

app = typer.Typer(
    name="chatterm",
    help="Chat with local GGUF language models in your terminal, and see how they work.\n\n"
    "Run without a command to open the chat app.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=False,
    invoke_without_command=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"chatterm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    if ctx.invoked_subcommand is None:
        from chatterm.cli.chat import run_chat

        run_chat()


@app.command("paths")
@handle_errors
def paths_command(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show where chatterm keeps its config, data, cache, models and history."""
    locations = {name: str(path) for name, path in paths.all_paths().items()}
    if as_json:
        print(json.dumps(locations, indent=2))
        return
    width = max(map(len, locations))
    for name, path in locations.items():
        print(f"{name:<{width}}  {path}")


def _register() -> None:
    from chatterm.cli import ask, chat, history, lab, models, prompts_cmd

    ask.register(app)
    chat.register(app)
    models.register(app)
    history.register(app)
    prompts_cmd.register(app)
    lab.register(app)


_register()


def main() -> None:
    try:
        # The name shells complete, also under `python -m chatterm` (Click would derive
        # "python -m chatterm" and a completion variable no shell script sets).
        app(prog_name="chatterm")
    except KeyboardInterrupt:  # Ctrl-C outside a command's own handling
        sys.exit(130)
