"""``chatterm ask``: one-shot prompts that fit in shell pipes.

stdout carries only the answer (plain text when piped, Markdown on a terminal); status, spinner
and stats go to stderr, and only when stderr is a terminal or ``--stats`` is given.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from chatterm.cli import options
from chatterm.cli.attach import FILE_OPTION, GRAMMAR_OPTION, SCHEMA_OPTION
from chatterm.cli.errors import handle_errors
from chatterm.cli.options import sampling_options
from chatterm.errors import UsageError
from chatterm.outcome import outcome


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
    stop: list[str] = typer.Option(
        None, "--stop", help="Stop when this text appears (repeatable)."
    ),
    ctx_size: int = options.CTX_SIZE,
    threads: int = options.THREADS,
    gpu_layers: int = options.GPU_LAYERS,
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
    from chatterm.store.recorder import ExchangeRecorder

    recorder = ExchangeRecorder.for_ask(
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
            EngineOptions(model=model, ctx_size=ctx_size, threads=threads, gpu_layers=gpu_layers),
            config,
        )
    finally:
        status.clear()
    for note in engine.load_notes:
        print(f"chatterm: note: {note}", file=sys.stderr)  # e.g. a window past the trained one
    if gpu_layers and "no GPU support" in engine.gpu_note:
        print(f"chatterm: note: {engine.gpu_note}", file=sys.stderr)
    # Counted and checked before the question is saved: what does not fit is refused whole.
    attached = measure(engine, messages, composed.attachments, settings)
    if attached and (stats or (sys.stderr.isatty() and not as_json)):
        print(f"chatterm: attached {describe(attached)}", file=sys.stderr)
    recorder.begin(
        composed.user, engine=engine, sampling=settings, persona=persona, attachments=attached
    )
    _stream(
        engine,
        messages,
        settings,
        as_json=as_json,
        stats=stats,
        status=status,
        logprobs=logprobs,
        show_probs=show_probs,
        recorder=recorder,
        attachments=attached,
    )


def _stream(
    engine: Any,
    messages: list[Any],
    settings: Any,
    *,
    as_json: bool,
    stats: bool,
    status: Any,
    logprobs: int = 0,
    show_probs: bool = False,
    recorder: Any = None,
    attachments: Any = (),
) -> None:
    from chatterm.cli.output import ansi_terminal, make_probability_writer, make_writer
    from chatterm.engine.events import Finished, PromptReady, Token

    # Probabilities are read only when they will be shown: off costs nothing.
    colour = show_probs and not as_json and ansi_terminal(sys.stdout)
    top_k = logprobs if as_json else int(colour)
    if logprobs and not as_json:
        print("chatterm: note: --logprobs adds probabilities to --json output", file=sys.stderr)
    record: list[Token] | None = [] if as_json and logprobs else None
    writer = (
        make_probability_writer()
        if colour
        else make_writer(as_json=as_json, plain=settings.constrained)
    )
    parts: list[str] = []
    finished: Finished | None = None
    status.show("thinking…")
    from chatterm.cli import signals

    try:
        # SIGTERM/SIGHUP while the answer streams act as Ctrl-C (see cli/signals.py)
        for event in signals.guarded(engine.generate(messages, settings, top_logprobs=top_k)):
            if recorder is not None:
                recorder.on_event(event)  # saves the partial reply about once a second
            if isinstance(event, Token):
                if not parts:
                    status.clear()
                parts.append(event.text)
                if colour:
                    writer.write_token(event.text, event.prob)  # type: ignore[attr-defined]
                else:
                    writer.write(event.text)
                if record is not None:
                    record.append(event)
            elif isinstance(event, PromptReady):
                for note in event.notes:  # e.g. the system prompt folded into the user turn
                    print(f"chatterm: note: {note}", file=sys.stderr)
                if event.dropped_messages:
                    print(
                        f"chatterm: note: dropped {event.dropped_messages} old messages to fit "
                        f"the {event.n_ctx}-token context window",
                        file=sys.stderr,
                    )
            elif isinstance(event, Finished):
                finished = event
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (see cli/signals.py)
        if recorder is not None:
            recorder.stop()
        status.clear()
        writer.close()
        kept = (
            " (the partial answer is saved, marked stopped)"
            if recorder is not None and recorder.save
            else ""
        )
        print(f"\nchatterm: {signals.describe(exc)}{kept}", file=sys.stderr)
        raise typer.Exit(signals.exit_code(exc)) from None
    finally:
        status.clear()
    writer.close()
    assert finished is not None
    saved = None
    if record:
        from chatterm.lab.records import token_records

        saved = token_records(record, engine)
    if recorder is not None:
        recorder.finish(finished, logprobs=saved)  # shown again when the chat is reopened
    for note in engine.pop_notes():
        print(f"chatterm: note: {note}", file=sys.stderr)  # e.g. settings a server ignores
    text = "".join(parts)
    verdict = _check_reply(text, settings, finished)
    if as_json:
        print(
            json.dumps(
                {
                    "text": text,
                    "model": engine.name,
                    "settings": settings.to_dict(),
                    "finish_reason": finished.reason,
                    "stats": finished.stats.to_dict(),
                    "conversation_id": recorder.conversation_id if recorder else None,
                    "attachments": [a.to_dict() for a in attachments],
                    **verdict.json(),
                    **({"tokens": saved or []} if record is not None else {}),
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
