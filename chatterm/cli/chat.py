"""``chatterm chat`` (and ``chatterm`` alone): open the Textual app.

Textual is imported only when the app starts, so ``chatterm --help`` stays fast.
"""

from __future__ import annotations

import os
import signal
import sys

import typer

from chatterm.cli import options
from chatterm.cli.errors import handle_errors


@handle_errors
def run_chat(
    model: str | None = None,
    persona: str | None = None,
    ctx_size: int | None = None,
    threads: int | None = None,
    gpu_layers: int | None = None,
    cache_type: str | None = None,
) -> None:
    """Run the app (``chatterm`` with no command calls this too, hence the error wrapper).

    Resolve everything that can fail with a one-line message first (config, model name,
    persona, database), then run the app; the model itself loads inside the app."""
    from chatterm.cli import options as cli_options
    from chatterm.cli.output import DUMB_TERMS
    from chatterm.config import load_config
    from chatterm.services import EngineOptions, resolve, window_size

    if os.environ.get("TERM", "").lower() in DUMB_TERMS:
        # Textual draws in 24-bit colour whatever TERM says; a terminal that calls itself
        # dumb gets the 16 standard colours (read by Textual when it is imported, below).
        os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "standard")
    from chatterm.tui.factory import make_app, make_services

    config = load_config()
    options = EngineOptions(
        model=model,
        ctx_size=ctx_size,
        threads=threads,
        gpu_layers=gpu_layers,
        cache_type=cli_options.cache_type(cache_type),
    )
    resolve(options, config)  # an unknown model name fails here, before the screen is drawn
    window_size(options, config)  # and so does a --ctx-size out of range
    services = make_services(options, persona=persona, config=config)
    app = make_app(services)
    try:
        app.run()
    finally:
        app.close_engines()
        services.store.close()
    code = app.return_code or 0
    if code in (128 + signal.SIGTERM, 128 + getattr(signal, "SIGHUP", 1)):
        name = signal.Signals(code - 128).name
        print(
            f"chatterm: stopped by {name}; a reply that was streaming is saved, marked stopped",
            file=sys.stderr,
        )
    raise typer.Exit(code)


def chat(
    model: str = options.MODEL,
    persona: str = typer.Option(
        None,
        "-p",
        "--persona",
        help="Persona new conversations start with (see `chatterm personas`).",
    ),
    ctx_size: int = options.CTX_SIZE,
    threads: int = options.THREADS,
    gpu_layers: int = options.GPU_LAYERS,
    cache_type: str = options.CACHE_TYPE,
) -> None:
    """Open the chat app: conversations, streaming replies, live sampling settings.

    Keys: Enter sends, Ctrl+J newline, Esc stops a reply, F1 help, Ctrl+Q quits.
    """
    run_chat(model, persona, ctx_size, threads, gpu_layers, cache_type)


def register(app: typer.Typer) -> None:
    app.command("chat")(chat)
