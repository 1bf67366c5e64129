"""``chatterm pull`` and ``chatterm models``: get GGUF models from the Hub, list, inspect,
register, remove, and pick the default.

Results go to stdout (tables, cards, JSON); notes and progress bars go to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from chatterm.cli.errors import handle_errors
from chatterm.errors import EXIT_FAILURE, EXIT_INTERRUPTED, UsageError

models_app = typer.Typer(
    name="models",
    help="List installed models (the default), inspect, add, remove, or set the default.",
    invoke_without_command=True,
    no_args_is_help=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _printable(text: str) -> str:
    """Text from a model file, safe for a terminal: control characters (an ANSI escape in a
    chat template could rewrite the screen) are shown as ``\\x1b`` escapes."""
    return "".join(
        ch if ch in "\n\t" or (ord(ch) >= 32 and ord(ch) != 127) else repr(ch)[1:-1] for ch in text
    )


def format_count(n: int | None) -> str:
    if not n:
        return "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _size(n: int) -> str:
    from chatterm.hub import format_size

    return format_size(n)


def _effective_default() -> str | None:
    """The model ``chatterm ask`` would use without ``-m``."""
    from chatterm.catalog import resolve_model
    from chatterm.config import load_config
    from chatterm.errors import ChattermError

    try:
        return resolve_model(None, load_config().default_model).name
    except ChattermError:
        return None


# ----------------------------------------------------------------------------------------------
# pull


def pull(
    spec: str = typer.Argument(
        ...,
        metavar="REPO[:QUANT]",
        help="A Hub repo of GGUF files, e.g. bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M. "
        "QUANT is matched case-insensitively; default Q4_K_M, else the closest available.",
    ),
    file: str = typer.Option(
        None, "--file", help="Download this exact GGUF file of the repo (any shard of a split one)."
    ),
) -> None:
    """Download a GGUF model from the Hugging Face Hub and register it as REPO:QUANT.

    Every shard of a split model is downloaded and checked against the Hub's sha256; a failed
    or interrupted pull registers nothing. Gated repos use HF_TOKEN or `hf auth login`;
    HF_ENDPOINT selects a mirror.

    \b
    Examples:
      chatterm pull bartowski/SmolLM2-135M-Instruct-GGUF:Q8_0
      chatterm pull bartowski/SmolLM2-135M-Instruct-GGUF --file SmolLM2-135M-Instruct-Q4_K_M.gguf
    """
    from chatterm import hub

    try:
        result = hub.pull(spec, file=file, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        print(
            "\nchatterm: pull interrupted; nothing was registered and its partial files were "
            "deleted",
            file=sys.stderr,
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    entry = result.entry
    if result.already_present:
        print(f"{entry.name} is already present ({_size(entry.size)}, {entry.path})")
        return
    print(f"pulled {entry.name} ({_size(entry.size)}) to {entry.path}")
    if sys.stderr.isatty():
        print(f'chatterm: try it: chatterm ask -m {entry.name} "hello"', file=sys.stderr)


# ----------------------------------------------------------------------------------------------
# models [list]


def _rows() -> list[dict[str, Any]]:
    from chatterm.catalog import Catalog
    from chatterm.model_card import summaries

    entries = Catalog().entries()
    default = _effective_default()
    rows = []
    for entry, summary in zip(entries, summaries(entries), strict=True):
        rows.append(
            {
                "name": entry.name,
                "quant": entry.quant or summary.get("quantization"),
                "size": summary["size"],
                "parameters": summary.get("parameters"),
                "context_length": summary.get("context_length"),
                "architecture": summary.get("architecture"),
                "path": entry.path,
                "files": [str(p) for p in entry.file_paths],
                "source": entry.source,
                "repo": entry.repo,
                "default": entry.name == default,
                "missing": bool(summary.get("missing")),
                "error": summary.get("error"),
            }
        )
    return rows + _remote_rows()


def _remote_rows() -> list[dict[str, Any]]:
    """Models served by the endpoints in config.toml, named ``ENDPOINT/MODEL``; an endpoint
    that cannot be listed shows as one row with its error, so a down server is visible."""
    from chatterm.config import load_config

    config = load_config()
    if not config.endpoints:
        return []
    from chatterm.engine.remote_http import list_remote_models

    errors: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for endpoint, ids in list_remote_models(config, errors=errors).items():
        base: dict[str, Any] = {
            "quant": None,
            "size": 0,
            "parameters": None,
            "context_length": None,
            "architecture": None,
            "files": [],
            "source": "remote",
            "repo": None,
            "default": False,
            "missing": False,
        }
        url = config.endpoints[endpoint].base_url
        if endpoint in errors:
            rows.append({**base, "name": f"{endpoint}/", "path": url, "error": errors[endpoint]})
        for model_id in ids:
            rows.append({**base, "name": f"{endpoint}/{model_id}", "path": url, "error": None})
    return rows


def list_models(as_json: bool = False) -> None:
    rows = _rows()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = [("", "NAME", "QUANT", "SIZE", "PARAMS", "CONTEXT", "PATH")]
    for r in rows:
        path = r["path"]
        if r["missing"]:
            path += "  (missing: pull or add it again)"
        elif r["source"] == "remote" and r["error"]:
            path += f"  ({r['error']})"
        elif r["error"]:
            path += "  (unreadable: see `chatterm models show`)"
        table.append(
            (
                "*" if r["default"] else "",
                r["name"],
                r["quant"] or "-",
                _size(r["size"]) if r["source"] != "remote" else "remote",
                format_count(r["parameters"]),
                str(r["context_length"] or "-"),
                path,
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]) - 1)]
    for row in table:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)]
        print(_printable("  ".join([*cells, row[-1]]).rstrip()))
    if len(rows) and sys.stdout.isatty():
        print("\n* = default (used when -m is not given)", file=sys.stderr)


@models_app.callback()
def models_root(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """Installed models: NAME, QUANT, SIZE, PARAMS, CONTEXT, PATH (* marks the default)."""
    if ctx.invoked_subcommand is None:
        handle_errors(list_models)(as_json)


@models_app.command("list")
@handle_errors
def list_command(as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
    """List installed models (same as `chatterm models`)."""
    list_models(as_json)


# ----------------------------------------------------------------------------------------------
# models show


@models_app.command("show")
@handle_errors
def show(
    name: str = typer.Argument(None, help="Model name or GGUF path (default: the default model)."),
    ctx_size: int = typer.Option(
        None, "--ctx-size", help="Context size for the RAM estimate (default: from config)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show a model card from the GGUF metadata, with a RAM estimate for --ctx-size.

    The chat template is printed as text; it is never executed.
    """
    from chatterm.catalog import resolve_model
    from chatterm.config import load_config
    from chatterm.model_card import build_card

    config = load_config()
    from chatterm.context_window import check_ctx_size

    n_ctx = config.ctx_size if ctx_size is None else check_ctx_size(ctx_size)
    if n_ctx <= 0:
        raise UsageError("--ctx-size must be a positive number of tokens")
    from chatterm.engine.vocab import chat_format_of

    entry = resolve_model(name, config.default_model)
    card = build_card(entry, n_ctx)
    fmt = chat_format_of(entry.file_paths[0])
    if as_json:
        data = {**card.to_dict(), "chat_format": fmt.name, "chat_format_reason": fmt.reason}
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return
    source = card.source
    if card.repo:
        source += f": {card.repo}" + (f" @ {card.revision[:12]}" if card.revision else "")
    quant = card.quantization or "-"
    if card.quant_tag and card.quantization and card.quant_tag.upper() != card.quantization:
        quant += f" (file type; the file name says {card.quant_tag})"
    shape = []
    if card.embedding_length:
        shape.append(f"{card.embedding_length} wide")
    if card.head_count:
        shape.append(f"{card.head_count} attention heads")
    if card.head_count_kv and card.head_count_kv != card.head_count:
        shape.append(f"{card.head_count_kv} KV heads")
    tokenizer = card.tokenizer or "-"
    if card.tokenizer_pre:
        tokenizer += f" (pre-tokenizer {card.tokenizer_pre})"
    if card.vocab_size:
        tokenizer += f", {card.vocab_size:,} tokens"
    n_files = len(card.files)
    lines = [
        ("name", card.name),
        ("title", card.title or "-"),
        ("source", source),
        ("path", card.path),
        ("architecture", card.architecture),
        ("parameters", f"{format_count(card.parameters)} ({card.parameters:,})"),
        ("layers", str(card.layers or "-")),
        ("context", f"{card.context_length:,} tokens (trained)" if card.context_length else "-"),
        ("shape", ", ".join(shape) or "-"),
        ("quantization", quant),
        ("size", f"{_size(card.file_size)} ({n_files} file{'s' if n_files > 1 else ''})"),
        ("tokenizer", tokenizer),
        ("chat format", f"{fmt.name} ({fmt.reason})"),
        (
            "RAM estimate",
            f"{_size(card.ram_bytes)} at --ctx-size {card.ctx_size} (weights "
            f"{_size(card.file_size)} + KV cache {_size(card.kv_cache_bytes)})",
        ),
        (
            "KV cache",
            " · ".join(f"{name} {_size(size)}" for name, size in card.kv_cache_by_type.items())
            + " (--cache-type)",
        ),
    ]
    for label, value in lines:
        print(_printable(f"{label:<13} {value}"))
    if card.chat_template:
        print(
            f"\nchat template ({len(card.chat_template):,} characters, shown as text, "
            "never executed):"
        )
        print(_printable(card.chat_template))
    else:
        print("\nchat template: none in the file (see chat format above)")


# ----------------------------------------------------------------------------------------------
# models rm / add / default


@models_app.command("rm")
@handle_errors
def rm(
    name: str = typer.Argument(..., help="Model name, as `chatterm models` lists it."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove a model: delete the files `chatterm pull` downloaded and unregister it.

    A file registered with `models add` stays where it is; it is only unregistered.
    Asks for confirmation when run on a terminal (skip with --yes).
    """
    from chatterm import hub
    from chatterm.catalog import Catalog
    from chatterm.errors import ModelError

    entry = Catalog().get(name)
    if entry is None:
        raise ModelError(f"no model named {name!r}; see `chatterm models`")
    Catalog.check_removable(entry)  # refuse before asking, not after
    if not yes and sys.stdin.isatty() and sys.stderr.isatty():
        question = (
            f"Remove {entry.name} and delete its files ({_size(entry.size)})?"
            if entry.source == "hub"
            else f"Unregister {entry.name}? (the file stays at {entry.path})"
        )
        if not typer.confirm(question, default=False, err=True):
            print(f"chatterm: kept {entry.name}", file=sys.stderr)
            raise typer.Exit(EXIT_FAILURE)
    result = hub.remove(entry.name)
    if result.freed_bytes or result.entry.source == "hub":
        print(f"removed {result.entry.name}; freed {_size(result.freed_bytes)}")
    else:
        print(f"unregistered {result.entry.name}; its file stays at {result.entry.path}")
    if result.entry.source == "hub" and result.kept_files:
        print(
            f"chatterm: note: kept {len(result.kept_files)} file(s) that another model uses "
            "or that lie outside the models directory",
            file=sys.stderr,
        )


@models_app.command("add")
@handle_errors
def add(
    path: str = typer.Argument(..., help="A GGUF file (the first shard of a split model)."),
    name: str = typer.Option(None, "--name", help="Name to register (default: the file name)."),
) -> None:
    """Register a local GGUF file in place (it is not copied, and `models rm` never deletes it)."""
    from chatterm.catalog import Catalog

    entry = Catalog().add_local(path, name)
    print(f"added {entry.name} ({_size(entry.size)}, {entry.path})")


@models_app.command("default")
@handle_errors
def default(
    name: str = typer.Argument(None, help="Model to use when -m is not given; omit to print it."),
) -> None:
    """Set (or print) the default model."""
    import os

    from chatterm.catalog import Catalog, resolve_model
    from chatterm.config import load_config

    if name is None:
        current = _effective_default()
        print(current or "no model installed; see `chatterm pull --help`")
        return
    catalog = Catalog()
    entry = resolve_model(name)
    if catalog.get(entry.name) is None:
        raise UsageError(f"register {entry.path} first with `chatterm models add PATH`")
    catalog.set_default(entry.name)
    print(f"default model: {entry.name}")
    config = load_config()
    if os.environ.get("CHATTERM_MODEL"):
        print("chatterm: note: CHATTERM_MODEL is set and takes precedence", file=sys.stderr)
    elif config.default_model:
        print(f"chatterm: note: default_model in {config.source} takes precedence", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("pull")(handle_errors(pull))
    app.add_typer(models_app, name="models")
