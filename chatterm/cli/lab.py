"""The lab on the command line: ``chatterm tokenize`` and ``chatterm lab sample|compare|
experiments``. The work happens in :mod:`chatterm.lab`; this module reads options and picks an
output (rich on a terminal, plain or Markdown in a pipe, JSON with ``--json``)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from chatterm.cli import options
from chatterm.cli.attach import FILE_OPTION, GRAMMAR_OPTION, SCHEMA_OPTION
from chatterm.cli.errors import handle_errors
from chatterm.cli.lab_common import load_lab_engine, text_input
from chatterm.cli.options import sampling_options
from chatterm.cli.output import StatusLine
from chatterm.errors import UsageError
from chatterm.sampling import FIELDS_BY_NAME

COMPARE_MAX_TOKENS = 256

lab_app = typer.Typer(
    name="lab",
    help="See what the model sees: next-token probabilities, sampling, side-by-side variants.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
experiments_app = typer.Typer(
    name="experiments",
    help="Saved comparisons: list them, show one, run one again.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
lab_app.add_typer(experiments_app)


# -- chatterm tokenize ---------------------------------------------------------------------


def tokenize(
    text: list[str] = typer.Argument(None, help="Text to split; read from stdin when absent."),
    model: list[str] = typer.Option(
        None,
        "-m",
        "--model",
        help="Model name (see `chatterm models`) or GGUF path; a vocab-only GGUF is enough. "
        "Repeat to compare how several models split the same text. [env var: CHATTERM_MODEL]",
    ),
    special: bool = typer.Option(
        False,
        "--special",
        help="Parse control-token text such as <|im_end|> as the control tokens themselves.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help='Print {"tokens": [{"id", "piece", …}], "count"} (several models: {"models": […]}).',
    ),
) -> None:
    """Show how the model's own tokenizer splits text into tokens.

    Each piece with its id; control tokens are marked, and bytes of a character split across
    tokens show as <0xE6>. Only the vocabulary is loaded. With several --model options, the
    splits are shown one under another. Example: chatterm tokenize "Hello, world!"
    """
    from chatterm.cli.lab_view import print_token_comparison, print_tokens
    from chatterm.config import load_config
    from chatterm.services import EngineOptions, load_vocabulary

    if text:
        from chatterm.cli.input_text import clean_all

        source = " ".join(clean_all(text))
    else:
        from chatterm.cli.inputs import read_stdin

        source = read_stdin().removesuffix("\n")
    if not source:
        raise UsageError('nothing to tokenize: give text, e.g. chatterm tokenize "Hello"')
    config = load_config()
    names: list[str | None] = list(dict.fromkeys(model)) if model else [None]
    rows = []
    status = StatusLine()
    for name in names:
        status.show(f"loading {name or 'the default model'}'s vocabulary…")
        try:
            vocab = load_vocabulary(EngineOptions(model=name, ctx_size=256), config)
        finally:
            status.clear()
        try:
            rows.append((vocab.name, vocab.tokenize(source, special=special)))
        finally:
            vocab.close()
    if len(rows) == 1:
        print_tokens(rows[0][1], as_json=as_json)
    else:
        print_token_comparison(rows, as_json=as_json)


# -- chatterm lab sample -------------------------------------------------------------------


@lab_app.command("sample")
@handle_errors
@sampling_options("chain")
def sample(
    prompt: list[str] = typer.Argument(None, help="The prompt; piped stdin comes before it."),
    model: str = options.MODEL,
    system: str = options.SYSTEM,
    persona: str = options.PERSONA,
    template: str = options.TEMPLATE,
    var: list[str] = options.VAR,
    sampling: dict[str, Any] = {},  # noqa: B006 (replaced by one option per chain setting)
    schema: str = SCHEMA_OPTION,
    grammar: str = GRAMMAR_OPTION,
    files: list[str] = FILE_OPTION,
    rows: int = typer.Option(20, "--top", "-n", min=1, max=256, help="Candidates to show."),
    raw: bool = typer.Option(
        False, "--raw", help="Continue the text as is, without the chat template."
    ),
    ctx_size: int = options.CTX_SIZE,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show the next-token distribution after a prompt and what sampling keeps of it.

    For the likeliest candidates: the model's probability, the stage that removes it (top-k,
    then top-p, then min-p, as the engine's sampler does) and its final probability after
    temperature. With --schema or --grammar a "grammar" stage comes first and shows which
    candidates the grammar removes. Example: chatterm lab sample --temperature 1.5 --top-k 0
    "Tell me a joke"
    """
    from chatterm.cli.attach import check_settings, structure
    from chatterm.cli.lab_view import print_explanation
    from chatterm.config import load_config
    from chatterm.engine.events import ChatMessage
    from chatterm.lab.distribution import (
        distribution_after,
        explain,
        next_token_distribution,
        raw_text_tokens,
    )
    from chatterm.services import sampling_settings
    from chatterm.structured import grammar_for

    shape = structure(schema, grammar)
    config = load_config()
    defaults: dict[str, Any] = {}
    messages: list[ChatMessage] = []
    text = ""
    if raw:
        if persona or template or system or var or files:
            raise UsageError(
                "--raw continues the text as is: it takes no persona, template, "
                "variables, system prompt or attachments"
            )
        text = text_input(prompt, what="sample")
    else:
        from chatterm.cli.inputs import compose_request

        composed = compose_request(prompt, persona, template, var, system, files)
        if not composed.user.strip() and not composed.attachments:
            raise UsageError("nothing to sample: give a prompt as an argument or on stdin")
        defaults = dict(composed.settings)
        messages = composed.messages()
    settings = sampling_settings(
        config,
        persona_defaults=defaults,
        overrides={**sampling, **shape},
    )
    check_settings(settings)
    gbnf = grammar_for(settings.schema, settings.grammar)
    label = "grammar" if settings.grammar else ("schema" if settings.schema else "")
    engine = load_lab_engine(model, ctx_size, None, config)
    try:
        if raw:
            dist = distribution_after(
                engine,
                raw_text_tokens(engine, text),
                prompt_text=text,
                grammar=gbnf,
                grammar_label=label,
            )
        else:
            dist = next_token_distribution(engine, messages, grammar=gbnf, grammar_label=label)
    finally:
        engine.close()
    print_explanation(dist, explain(dist, settings, rows), as_json=as_json, raw=raw)


# -- chatterm lab kv-cache -----------------------------------------------------------------


@lab_app.command("kv-cache")
@handle_errors
def kv_cache(
    text: list[str] = typer.Argument(None, help="The text to feed; read from stdin when absent."),
    model: str = options.MODEL,
    types: str = typer.Option(
        "f16,q8_0,q4_0", "--types", help="Cache types to compare, f16 first (comma-separated)."
    ),
    tokens: int = typer.Option(
        512, "--tokens", "-n", min=2, max=16384, help="How many tokens of the text to feed."
    ),
    ctx_size: int = options.CTX_SIZE,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """What a smaller KV cache costs: memory against agreement with f16.

    Feeds the same text through the model once per cache type, one token at a time as
    decoding does, and reports the KV cache's size for the window, the share of positions
    where the likeliest next token matches the f16 run, and the speed.
    Example: chatterm lab kv-cache --ctx-size 8192 < README.md
    """
    import json

    from chatterm.config import load_config
    from chatterm.lab.cache_types import compare_cache_types
    from chatterm.services import EngineOptions, load_engine

    body = text_input(text, what="feed")
    config = load_config()
    from chatterm.cache_types import cache_type

    wanted = [cache_type(t, "--types").name for t in types.split(",") if t.strip()]
    status = StatusLine()

    def load(name: str) -> Any:
        status.show(f"loading with a {name} KV cache…")
        options = EngineOptions(
            model=model, ctx_size=ctx_size, cache_type=name, adapt_threads=False
        )
        engine = load_engine(options, config)
        from chatterm.engine.base import LocalModel

        if not isinstance(engine, LocalModel):
            engine.close()
            raise UsageError("lab kv-cache needs a local GGUF model: a server keeps its own cache")
        status.show(f"feeding {tokens} tokens through the {name} cache…")
        return engine

    try:
        results = compare_cache_types(load, body, types=wanted, tokens=tokens)
    finally:
        status.clear()
    if as_json:
        print(json.dumps({"results": [r.to_dict() for r in results]}, indent=2))
        return
    print(f"{'cache':<6} {'KV cache':>10} {'top-1 agreement':>16} {'first diff':>11} {'tok/s':>7}")
    for r in results:
        first = "-" if r.first_difference is None else str(r.first_difference)
        mib = r.kv_cache_bytes / 2**20
        agree = f"{r.agreement * 100:.1f}% of {r.positions}"
        print(f"{r.cache_type:<6} {mib:>6.1f} MiB {agree:>16} {first:>11} {r.tokens_per_s:>7.1f}")
    print(f"(KV cache for a {results[0].n_ctx:,}-token window; use one with --cache-type)")


# -- chatterm lab compare ------------------------------------------------------------------


@lab_app.command("compare")
@handle_errors
@sampling_options("chain")
def compare(
    prompt: list[str] = typer.Argument(None, help="The prompt; piped stdin comes before it."),
    variant: list[str] = typer.Option(
        None,
        "--variant",
        "-V",
        help="key=value[,key=value…]: a sampling setting (temperature, top_k, top_p, min_p, "
        "seed, max_tokens, thinking_budget, …), think=on|off, persona, template, system or "
        "model. Repeat for each column.",
    ),
    runs: int = typer.Option(
        1, "--runs", "-r", min=1, max=100, help="Runs per variant, with seeds seed, seed+1, …"
    ),
    seed: int = typer.Option(None, help="Seed of the first run (default: random, and saved)."),
    model: str = options.MODEL,
    system: str = typer.Option(None, "-s", "--system", help="System prompt for every variant."),
    sampling: dict[str, Any] = {},  # noqa: B006 (replaced by one option per chain setting)
    max_tokens: int = typer.Option(
        None,
        "--max-tokens",
        "-n",
        help=f"Stop each reply after this many tokens (default {COMPARE_MAX_TOKENS}).",
    ),
    files: list[str] = FILE_OPTION,
    schema: str = SCHEMA_OPTION,
    ctx_size: int = options.CTX_SIZE,
    as_json: bool = typer.Option(False, "--json", help="Print the experiment as JSON."),
    no_save: bool = typer.Option(False, "--no-save", help="Do not save the experiment."),
) -> None:
    """Run one prompt through several variants with the same seed, side by side.

    --file attachments and a --schema apply to every variant.

    Example: chatterm lab compare "Explain rain" --variant temperature=0
    --variant temperature=1.2 --variant persona=teacher --runs 3
    """
    from chatterm.cli.attach import gather, structure
    from chatterm.config import load_config
    from chatterm.lab.compare import Variant, plan
    from chatterm.lab.experiments import new_experiment
    from chatterm.sampling import SamplingSettings

    if not variant:
        raise UsageError("give at least one --variant, e.g. --variant temperature=0")
    shape = structure(schema, None)
    collected = gather(files)
    from chatterm.cli.inputs import combine_input, read_stdin

    text = combine_input("" if collected.uses_stdin else read_stdin(), prompt or [])
    if not text.strip() and not collected.attachments:
        raise UsageError("nothing to compare: give text as an argument or on stdin")
    variants = [Variant.parse(v) for v in variant]
    config = load_config()
    overrides: dict[str, Any] = {**sampling, "max_tokens": max_tokens, **shape}
    if max_tokens is None and "max_tokens" not in config.sampling:
        overrides["max_tokens"] = COMPARE_MAX_TOKENS
    if seed is None:
        seed = SamplingSettings().merge(config.sampling).resolved_seed().seed
    else:
        FIELDS_BY_NAME["seed"].check(seed)
    runs_planned = plan(
        text,
        variants,
        seed=seed,
        runs=runs,
        system=system,
        model=model,
        config=config,
        overrides=overrides,
        attachments=collected.attachments,
    )
    experiment = new_experiment(
        text,
        variants,
        runs_planned,
        seed=seed,
        n_runs=runs,
        system=system,
        model=model,
        overrides=overrides,
    )
    _execute(experiment, config, ctx_size)
    _finish(experiment, as_json=as_json, save=not no_save)


def _execute(experiment: Any, config: Any, ctx_size: int | None) -> None:
    from chatterm.engine.events import Finished, PromptReady
    from chatterm.lab.compare import EnginePool, default_loader, stream

    status = StatusLine()
    pool = EnginePool(default_loader(config, ctx_size=ctx_size))
    total = len(experiment.runs)
    done = 0
    try:
        status.show("loading model…")
        for run, event in stream(experiment.runs, pool):
            if isinstance(event, Finished):
                done += 1
                if run.error:
                    status.clear()
                    print(f"chatterm: warning: {run.label}: {run.error}", file=sys.stderr)
            if isinstance(event, (PromptReady, Finished)):  # not per token: stderr stays calm
                status.show(f"{run.label} · run {run.run + 1} · {done}/{total} done")
    finally:
        status.clear()
        pool.close()


def _finish(experiment: Any, *, as_json: bool, save: bool, **extra: Any) -> None:
    from chatterm.cli.lab_view import print_experiment
    from chatterm.errors import ChattermError
    from chatterm.lab import experiments as store

    saved = failure = None
    if save:
        try:
            saved = store.save(experiment)
        except ChattermError as exc:
            failure = exc  # the results are printed first: they took minutes to compute
    print_experiment(experiment, as_json=as_json, saved=saved is not None, **extra)
    if failure is not None:
        raise failure
    if saved is not None and not as_json:
        print(
            f"chatterm: saved experiment {experiment.short_id} "
            f"(chatterm lab experiments show {experiment.short_id})",
            file=sys.stderr,
        )


# -- chatterm lab experiments --------------------------------------------------------------


@experiments_app.callback()
def experiments_root(ctx: typer.Context) -> None:
    """Saved comparisons: list them (the default), show one, run one again."""
    if ctx.invoked_subcommand is None:
        list_command(as_json=False)


@experiments_app.command("list")
@handle_errors
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list."),
) -> None:
    """List saved experiments, newest first."""
    from chatterm.cli.lab_view import print_experiment_list
    from chatterm.lab.experiments import list_experiments

    problems: list[str] = []
    found = list_experiments(problems)
    for problem in problems:
        print(f"chatterm: warning: skipped {problem}", file=sys.stderr)
    print_experiment_list(found, as_json=as_json)


@experiments_app.command("show")
@handle_errors
def show_command(
    ref: str = typer.Argument(..., metavar="ID", help="Experiment id or a unique prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print the experiment as JSON."),
) -> None:
    """Show a saved experiment's replies and stats."""
    from chatterm.cli.lab_view import print_experiment
    from chatterm.lab.experiments import load

    print_experiment(load(ref), as_json=as_json)


@experiments_app.command("rerun")
@handle_errors
def rerun_command(
    ref: str = typer.Argument(..., metavar="ID", help="Experiment id or a unique prefix."),
    ctx_size: int = options.CTX_SIZE,
    as_json: bool = typer.Option(False, "--json", help="Print the new experiment as JSON."),
    no_save: bool = typer.Option(False, "--no-save", help="Do not save the new run."),
) -> None:
    """Run a saved experiment again (same messages, settings and seeds) and say whether the
    replies came out the same."""
    from chatterm.config import load_config
    from chatterm.lab.experiments import load, rerun, same_outputs

    original = load(ref)
    again = rerun(original)
    _execute(again, load_config(), ctx_size)
    same = same_outputs(original, again)
    _finish(again, as_json=as_json, save=not no_save, same_as_original=same)
    if not as_json:
        print(
            f"chatterm: {sum(same)} of {len(same)} replies are identical to experiment "
            f"{original.short_id}",
            file=sys.stderr,
        )


def register(app: typer.Typer) -> None:
    from chatterm.cli import lab_inside

    app.command("tokenize")(handle_errors(tokenize))
    lab_inside.register(lab_app)
    app.add_typer(lab_app)
