"""Command-line options shared by several commands, each declared once.

Use an option as a parameter's default (``model: str = options.MODEL``). The sampling options
come from :data:`chatterm.sampling.FIELDS` through :func:`sampling_options`, so a setting added
there gets its ``--option`` (with its range in the help) in every command that takes its group.
Only typer is imported here: ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, get_type_hints

import typer

from chatterm import sampling

F = TypeVar("F", bound=Callable[..., Any])


def complete_model(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion for ``-m``: the installed models' names (no network is asked)."""
    try:
        from chatterm.catalog import Catalog

        entries = Catalog().entries()
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [(e.name, e.source) for e in entries if e.name.startswith(incomplete)]


def _complete_prompt(kind: str, incomplete: str) -> list[tuple[str, str]]:
    try:
        from chatterm.prompts import list_prompts

        found = list_prompts(kind)  # type: ignore[arg-type]
    except Exception:  # completion must never print a traceback into the shell
        return []
    return [(p.name, p.description) for p in found if p.ok and p.name.startswith(incomplete)]


def complete_persona(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion for ``-p``: personas by name, with their descriptions."""
    return _complete_prompt("persona", incomplete)


def complete_template(incomplete: str) -> list[tuple[str, str]]:
    """Shell completion for ``-t``: templates by name, with their descriptions."""
    return _complete_prompt("template", incomplete)


MODEL: Any = typer.Option(
    None,
    "-m",
    "--model",
    help="Model name (see `chatterm models`) or GGUF path.",
    envvar="CHATTERM_MODEL",
    show_envvar=True,
    autocompletion=complete_model,
)
SYSTEM: Any = typer.Option(None, "-s", "--system", help="System prompt (wins over -p).")
PERSONA: Any = typer.Option(
    None,
    "-p",
    "--persona",
    help="Persona: its text is the system prompt, its settings the defaults "
    "(see `chatterm personas`).",
    autocompletion=complete_persona,
)
TEMPLATE: Any = typer.Option(
    None,
    "-t",
    "--template",
    help="Template rendered with the input as the message (see `chatterm templates`).",
    autocompletion=complete_template,
)
VAR: Any = typer.Option(
    None, "-v", "--var", help="Set a template or persona variable: -v name=value (repeatable)."
)
THINK: Any = typer.Option(
    None,
    "--think/--no-think",
    help="Reasoning models: switch thinking on or off (templates with enable_thinking, such as "
    "Qwen3); default: the model's own.",
    show_default=False,
)
CTX_SIZE: Any = typer.Option(None, "--ctx-size", help="Context window in tokens.")
THREADS: Any = typer.Option(None, "--threads", help="CPU threads (default: physical cores).")
GPU_LAYERS: Any = typer.Option(
    None, "--gpu-layers", help="Layers to offload to the GPU (-1 = all), if the build can."
)
CACHE_TYPE: Any = typer.Option(
    None,
    "--cache-type",
    help="KV cache format: f16, q8_0 (about half the memory) or q4_0 (a quarter); "
    "see `chatterm lab kv-cache` [default: cache_type in config.toml, else f16].",
    envvar="CHATTERM_CACHE_TYPE",
)


def cache_type(value: str | None) -> str | None:
    """The ``--cache-type`` flag's value checked (exit 2 naming the flag), or ``None``."""
    if value is None:
        return None
    from chatterm.cache_types import cache_type as parse

    return parse(value, "--cache-type").name


def sampling_options(*groups: str) -> Callable[[F], F]:
    """Give a command one ``--option`` per sampling setting of ``groups`` (all when none).

    The command declares a parameter ``sampling: dict[str, Any]`` where the options should
    appear; it receives ``{name: value or None}`` for the options, in :data:`FIELDS` order, to
    pass on as overrides (``None``: not given)::

        @sampling_options("chain")
        def sample(prompt: list[str] = ..., sampling: dict[str, Any] = {}) -> None: ...
    """
    specs = [spec for spec in sampling.FIELDS if not groups or spec.group in groups]
    if groups and "chain" in groups:  # the lab's views show the chain in its own order
        specs.sort(key=lambda spec: (spec.group != "chain", spec.stage))

    def decorate(command: F) -> F:
        signature = inspect.signature(command)
        params = list(signature.parameters.values())
        at = [p.name for p in params].index("sampling")
        generated = [
            inspect.Parameter(
                spec.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=typer.Option(None, spec.option, *spec.flags, help=spec.option_help),
                annotation=spec.kind,
            )
            for spec in specs
        ]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> Any:
            values = {spec.name: kwargs.pop(spec.name, None) for spec in specs}
            return command(*args, sampling=values, **kwargs)

        hints = {k: v for k, v in get_type_hints(command).items() if k != "sampling"}
        run.__annotations__ = {**hints, **{spec.name: spec.kind for spec in specs}}
        run.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*params[:at], *generated, *params[at + 1 :]]
        )
        return run  # type: ignore[return-value]

    return decorate
