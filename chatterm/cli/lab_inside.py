"""``chatterm lab attention`` and ``chatterm lab lens``: inside the transformer, on the user's
own model. The work happens in :mod:`chatterm.lab.attention` and :mod:`chatterm.lab.lens`; the
drawing in :mod:`chatterm.cli.inside_view`."""

from __future__ import annotations

from typing import Any

import typer

from chatterm.cli import options
from chatterm.cli.errors import handle_errors
from chatterm.errors import UsageError

TEXT_ARGUMENT = typer.Argument(None, help="The text; piped stdin comes before it.")


def _prepare(
    model: str | None, ctx_size: int | None, text: list[str] | None, what: str
) -> tuple[Any, list[int]]:
    """Read the text, load the model and tokenize the text as is (BOS if the model wants)."""
    from chatterm.cli.lab_common import load_lab_engine, text_input
    from chatterm.config import load_config
    from chatterm.lab.distribution import raw_text_tokens

    source = text_input(text, what=what)
    engine = load_lab_engine(model, ctx_size, None, load_config())
    try:
        return engine, raw_text_tokens(engine, source)
    except BaseException:
        engine.close()
        raise


def attention(
    text: list[str] = TEXT_ARGUMENT,
    model: str = options.MODEL,
    layer: int = typer.Option(None, "--layer", help="One layer (0-based); default: all, averaged."),
    head: int = typer.Option(None, "--head", help="One head (0-based); default: all, averaged."),
    top: int = typer.Option(3, "--top", "-n", min=1, max=20, help="Tokens to list per token."),
    ctx_size: int = options.CTX_SIZE,
    as_json: bool = typer.Option(
        False, "--json", help="Print every weight as JSON (all layers and heads, or the selection)."
    ),
) -> None:
    """Show which earlier tokens each token attends to.

    Each layer has several attention heads; a head gives every earlier token a weight (the
    weights sum to 1) and mixes their values into the current token. Shown: for each token, the
    tokens it attends to most, averaged over all layers and heads or for one --layer/--head,
    and (on a terminal) every earlier token coloured by its weight. Most heads park much of
    their weight on the first token (an "attention sink"). The text is evaluated as is,
    without the chat template, in a separate context with flash attention off. Attention
    takes layers × heads × tokens² × 4 bytes: prompts over 256 MiB are refused (exit 4).
    Example: chatterm lab attention "The cat sat on the mat because it was tired."
    """
    from chatterm.cli.inside_view import print_attention
    from chatterm.lab.attention import capture_attention

    if (layer is not None and layer < 0) or (head is not None and head < 0):
        raise UsageError("--layer and --head count from 0")
    engine, tokens = _prepare(model, ctx_size, text, "look at")
    try:
        result = capture_attention(engine, tokens)
    finally:
        engine.close()
    result.check(layer, head)
    print_attention(result, layer=layer, head=head, top=top, as_json=as_json)


def lens(
    text: list[str] = TEXT_ARGUMENT,
    model: str = options.MODEL,
    ctx_size: int = options.CTX_SIZE,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show what the model would predict if it stopped after each layer (the logit lens).

    Every layer's hidden state at the last position goes through the model's final norm and
    output matrix (read from the GGUF), giving the top 5 next tokens per layer and the layer
    at which the model's final answer first becomes the top choice. The text is continued as
    is, without the chat template. Example: chatterm lab lens "The capital of France is"
    """
    from chatterm.cli.inside_view import print_lens
    from chatterm.config import load_config
    from chatterm.gguf_file import read_gguf
    from chatterm.lab.lens import check_architecture, logit_lens
    from chatterm.services import EngineOptions, resolve

    config = load_config()
    # Refuse an architecture the lens cannot read before spending a model load on it.
    if config.remote_model(model or config.default_model) is None:
        check_architecture(read_gguf(resolve(EngineOptions(model=model), config).path))
    engine, tokens = _prepare(model, ctx_size, text, "predict from")
    try:
        result = logit_lens(engine, tokens)
    finally:
        engine.close()
    print_lens(result, as_json=as_json)


def register(app: typer.Typer) -> None:
    app.command("attention")(handle_errors(attention))
    app.command("lens")(handle_errors(lens))
