"""``chatterm ask``: one-shot prompts that fit in shell pipes.

stdout carries only the answer (plain text when piped, Markdown on a terminal); status, spinner
and stats go to stderr, and only when stderr is a terminal or ``--stats`` is given.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from chatterm.cli import options
from chatterm.cli.attach import FILE_OPTION, GRAMMAR_OPTION, SCHEMA_OPTION
from chatterm.cli.errors import handle_errors
from chatterm.cli.options import sampling_options
from chatterm.cli.output import Sinks, ansi_terminal, make_sinks
from chatterm.errors import ChattermError, UsageError
from chatterm.outcome import outcome

if TYPE_CHECKING:
    from chatterm.engine.base import Engine
    from chatterm.engine.events import ChatMessage, Finished
    from chatterm.sampling import SamplingSettings
    from chatterm.store.turn import Turn


@sampling_options()
def ask(
    prompt: list[str] = typer.Argument(None, help="The question; piped stdin comes before it."),
    model: str = options.MODEL,
    system: str = options.SYSTEM,
    persona: str = options.PERSONA,
    template: str = options.TEMPLATE,
    var: list[str] = options.VAR,
    files: list[str] = FILE_OPTION,
    schema: str = SCHEMA_OPTION,
    grammar: str = GRAMMAR_OPTION,
    sampling: dict[str, Any] = {},  # noqa: B006 (replaced by one option per setting)
    think: bool = options.THINK,
    show_thinking: bool = typer.Option(
        False,
        "--show-thinking",
        help="Show a reasoning model's thinking: on stderr in a pipe (stdout keeps only the "
        "answer), in full instead of folded on a terminal.",
    ),
    stop: list[str] = typer.Option(
        None, "--stop", help="Stop when this text appears (repeatable)."
    ),
    ctx_size: int = options.CTX_SIZE,
    threads: int = options.THREADS,
    gpu_layers: int = options.GPU_LAYERS,
    cache_type: str = options.CACHE_TYPE,
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object: text, model, settings and stats."
    ),
    no_save: bool = typer.Option(False, "--no-save", help="Do not save this exchange."),
    continue_last: bool = typer.Option(
        False,
        "-c",
        "--continue",
        help="Continue the most recent conversation, with its model and settings.",
    ),
    conversation: str = typer.Option(
        None, "--conversation", metavar="ID", help="Continue this conversation (id or prefix)."
    ),
    stats: bool = typer.Option(False, "--stats", help="Print timing stats to stderr."),
    logprobs: int = typer.Option(
        0,
        "--logprobs",
        min=0,
        max=50,
        metavar="K",
        help="With --json: each token's probability and its K likeliest alternatives.",
    ),
    show_probs: bool = typer.Option(
        False,
        "--show-probs",
        help="On a terminal, colour each token by its probability (green likely … red not).",
    ),
) -> None:
    """Answer a prompt from arguments and/or stdin, streaming the reply to stdout.

    Example: git diff | chatterm ask "write a commit message"
    """
    from chatterm.cli import input_text
    from chatterm.cli.attach import check_settings, describe, measure, structure
    from chatterm.cli.inputs import compose_request
    from chatterm.config import load_config
    from chatterm.services import (
        EngineOptions,
        continued_model,
        input_limit,
        load_engine,
        sampling_settings,
    )

    shape = structure(schema, grammar)  # a bad schema or grammar fails before anything loads
    config = load_config()
    limit = input_limit(EngineOptions(model=model, ctx_size=ctx_size), config)
    composed = compose_request(prompt, persona, template, var, system, files, input_limit=limit)
    if not composed.user.strip() and not composed.attachments:
        raise UsageError('nothing to ask: give a prompt, e.g. chatterm ask "why is the sky blue?"')
    stop_strings = input_text.clean_all(stop)
    from chatterm.store.turn import Turn

    recorder = Turn.for_ask(
        save=not no_save, continue_last=continue_last, conversation_id=conversation, warn=_warn
    )
    continued = recorder.conversation
    if continued is not None and model is None:
        # Keep the conversation's model (and with it the KV state saved for it).
        model, note = continued_model(recorder.models_used(), config)
        if note:
            _warn(note)
    settings = sampling_settings(
        config,
        composed.settings,
        overrides={
            **sampling,
            "stop": tuple(stop_strings) if stop_strings else None,
            **shape,
            "think": think,
        },
        saved=continued.sampling if continued is not None else None,
    ).resolved_seed()
    check_settings(settings)
    messages = recorder.messages(composed.system, composed.user, composed.attachments)

    from chatterm.cli.output import StatusLine

    status = StatusLine()
    status.show("loading model…")
    try:
        engine = load_engine(
            EngineOptions(
                model=model,
                ctx_size=ctx_size,
                threads=threads,
                gpu_layers=gpu_layers,
                cache_type=options.cache_type(cache_type),
            ),
            config,
        )
    finally:
        status.clear()
    for note in engine.load_notes:
        print(f"chatterm: note: {note}", file=sys.stderr)  # e.g. a window past the trained one
    if gpu_layers and "no GPU support" in engine.gpu_note:
        print(f"chatterm: note: {engine.gpu_note}", file=sys.stderr)
    from chatterm.engine.reasoning import think_switch_note

    if hasattr(engine, "template"):  # a local model: its template decides (remote ones note it)
        switch_note = think_switch_note(engine.template, settings.think)
        if switch_note:
            print(f"chatterm: note: {switch_note}", file=sys.stderr)
    # Counted and checked before the question is saved: what does not fit is refused whole.
    attached = measure(engine, messages, composed.attachments, settings)
    if attached and (stats or (sys.stderr.isatty() and not as_json)):
        print(f"chatterm: attached {describe(attached)}", file=sys.stderr)
    recorder.begin(
        composed.user, engine=engine, sampling=settings, persona=persona, attachments=attached
    )
    if logprobs and not as_json:
        print("chatterm: note: --logprobs adds probabilities to --json output", file=sys.stderr)
    # Probabilities are read only when they will be shown: off costs nothing.
    colour = show_probs and not as_json and ansi_terminal(sys.stdout)
    record = as_json and logprobs > 0
    sinks = make_sinks(
        status,
        as_json=as_json,
        colour=colour,
        plain=settings.constrained,  # a reply shaped by a schema or grammar prints as written
        record=record,
        engine=engine,
        show_thinking=show_thinking,
    )
    finished = stream(
        engine,
        messages,
        settings,
        recorder,
        sinks,
        top_logprobs=logprobs if as_json else int(colour),
    )
    saved = sinks.records()
    recorder.finish(finished, logprobs=saved)  # shown again when the chat is reopened
    for note in engine.pop_notes():
        print(f"chatterm: note: {note}", file=sys.stderr)  # e.g. settings a server ignores
    text = sinks.text
    if sinks.reasoning and not text.strip() and not as_json:
        cut = finished.reason == "length"
        print(
            "chatterm: note: the reply was all thinking, no answer"
            + (
                " (it ran out of tokens: raise --max-tokens or set --thinking-budget)"
                if cut
                else ""
            ),
            file=sys.stderr,
        )
    verdict = _check_reply(text, settings, finished)
    if as_json:
        print(
            json.dumps(
                {
                    "text": text,
                    "reasoning": sinks.reasoning,
                    "model": engine.name,
                    "settings": settings.to_dict(),
                    "finish_reason": finished.reason,
                    "stats": finished.stats.to_dict(),
                    "conversation_id": recorder.conversation_id,
                    "attachments": [a.to_dict() for a in attached],
                    **verdict.json(),
                    **({"tokens": saved or []} if record else {}),
                },
                ensure_ascii=False,
            )
        )
    if finished.error:
        print(f"chatterm: error: {finished.error}", file=sys.stderr)
        raise typer.Exit(1)
    if verdict.error:
        print(f"chatterm: error: {verdict.error}", file=sys.stderr)
        raise typer.Exit(1)
    if finished.reason == "length" and not as_json and sys.stderr.isatty():
        # A cut answer must not pass for a whole one (scripts read finish_reason in --json).
        n = finished.stats.generated_tokens
        print(
            f"chatterm: note: the answer was cut at {n} token{'s' if n != 1 else ''} (max "
            "tokens or the context window); raise the limit with --max-tokens",
            file=sys.stderr,
        )
    if stats or (sys.stderr.isatty() and not as_json):
        word = outcome(finish_reason=finished.reason)
        print(f"[{word}] {finished.stats.summary()}", file=sys.stderr)


def stream(
    engine: Engine,
    messages: Sequence[ChatMessage],
    settings: SamplingSettings,
    turn: Turn,
    sinks: Sinks,
    *,
    top_logprobs: int = 0,
) -> Finished:
    """The engine loop: every event goes to the turn (which saves) and to the sinks (which
    show). Ctrl-C (or SIGTERM/SIGHUP, see cli/signals.py) keeps the partial answer as
    ``stopped`` and exits; a prompt the engine refuses before generating (too long, a broken
    template) is not saved and its error propagates (exit 4 for one that does not fit)."""
    from chatterm.cli import signals
    from chatterm.engine.events import Finished, PromptReady

    finished: Finished | None = None
    started = False
    try:
        for event in signals.guarded(
            engine.generate(messages, settings, top_logprobs=top_logprobs)
        ):
            started = started or isinstance(event, PromptReady)
            turn.on_event(event)  # saves the partial reply about once a second
            sinks.on_event(event)
            if isinstance(event, Finished):
                finished = event
    except KeyboardInterrupt as exc:
        turn.stop()
        sinks.close()
        kept = " (the partial answer is saved, marked stopped)" if turn.save else ""
        print(f"\nchatterm: {signals.describe(exc)}{kept}", file=sys.stderr)
        raise typer.Exit(signals.exit_code(exc)) from None
    except ChattermError:
        if not started:
            turn.refuse()
        sinks.close()
        raise
    sinks.close()
    assert finished is not None
    return finished


class _Verdict:
    """Whether a reply made with ``--schema`` matches it: ``--json`` gets ``schema_valid``,
    the parsed ``data`` and the ``schema_error``; an invalid reply exits 1."""

    def __init__(self, checked: bool, data: Any = None, error: str | None = None) -> None:
        self.checked, self.data, self.error = checked, data, error

    def json(self) -> dict[str, Any]:
        if not self.checked:
            return {}
        return {"schema_valid": self.error is None, "data": self.data, "schema_error": self.error}


def _check_reply(text: str, settings: Any, finished: Any) -> _Verdict:
    from chatterm.structured import ReplyInvalidError, validate_reply

    if not settings.schema or finished.error or finished.reason == "cancelled":
        return _Verdict(False)
    try:
        return _Verdict(True, validate_reply(text, settings.schema))
    except ReplyInvalidError as exc:
        return _Verdict(True, None, str(exc))


def _warn(message: str) -> None:
    print(f"chatterm: warning: {message}", file=sys.stderr)


def register(app: typer.Typer) -> None:
    app.command("ask")(handle_errors(ask))
