"""Render a conversation with the model's own chat template, exactly as its authors meant.

**The reference.** A chat template means what Hugging Face transformers' ``apply_chat_template``
renders (``transformers.utils.chat_template_utils._compile_jinja_template`` and
``render_jinja_template``): an immutable sandbox with ``trim_blocks`` and ``lstrip_blocks``, the
``loopcontrols`` extension (``{% break %}``, ``{% continue %}``), a ``{% generation %}`` block
that renders its body, a ``tojson`` filter taking ``ensure_ascii``, ``indent``, ``separators``
and ``sort_keys``, the globals ``raise_exception`` and ``strftime_now``, and the variables
``messages``, ``tools=None``, ``documents=None``, ``add_generation_prompt`` and the special
tokens. Templates are code from model files, so chatterm's budgets
(:mod:`chatterm.jinja_sandbox`) stay on top.

**Content never becomes control tokens, yet the template sees it** (Qwen3 strips earlier
``<think>`` blocks, many templates ``| trim`` content): see :mod:`chatterm.engine.control_text`.

**Templates without a system role** (Gemma 2, several Mistral templates) get the system prompt
folded into the first user message, as llama.cpp and ollama do, with a note saying so.

**Models without a template** get a format chosen from their vocabulary
(:mod:`chatterm.engine.chat_formats`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatterm.engine.chat_formats import (
    CHATML_TEMPLATE,
    FALLBACK_TEMPLATE,
    GEMMA_TEMPLATE,
    LLAMA3_TEMPLATE,
    PLAIN_TEMPLATE,
    ChatFormat,
    choose_format,
    looks_instruct,
)
from chatterm.engine.control_text import Segment, neutralise, restore
from chatterm.engine.events import ChatMessage
from chatterm.errors import ChatTemplateError
from chatterm.jinja_sandbox import RenderError

__all__ = [  # the formats and segments are declared in their own modules, re-exported here
    "CHATML_TEMPLATE",
    "FALLBACK_TEMPLATE",
    "FOLD_NOTE",
    "GEMMA_TEMPLATE",
    "LLAMA3_TEMPLATE",
    "PLAIN_TEMPLATE",
    "ChatFormat",
    "Rendered",
    "Segment",
    "as_dict",
    "choose_format",
    "fold_system",
    "has_system_role",
    "looks_instruct",
    "neutralise",
    "render",
    "render_conversation",
    "render_segments",
    "render_text",
    "restore",
]

MAX_OUTPUT_CHARS = 4_000_000

FOLD_NOTE = (
    "this model's chat template has no system role: the system prompt was put at the start of "
    "the first user message"
)
_SYSTEM_PROBE = "chatterm-probe-system-7f3a"
_USER_PROBE = "chatterm-probe-user-7f3a"


@dataclass(frozen=True)
class Rendered:
    """A rendered conversation: its segments and notes for the user (system folding)."""

    segments: tuple[Segment, ...]
    notes: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments)


# -- the environment -------------------------------------------------------------------------


def _raise_exception(message: Any) -> None:
    from chatterm.jinja_sandbox import TemplateRaised

    raise TemplateRaised(str(message))


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: Any = None,
    sort_keys: bool = False,
) -> str:
    """transformers' ``tojson``: ``json.dumps`` with its options, no HTML escaping."""
    import json

    if separators is not None:
        separators = tuple(separators)
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@functools.lru_cache(maxsize=1)
def _environment() -> Any:
    from jinja2 import nodes
    from jinja2.ext import Extension

    from chatterm.jinja_sandbox import environment, guard_filters

    class Generation(Extension):
        """``{% generation %}…{% endgeneration %}`` (transformers marks assistant text with it
        for training masks): a call block that renders its body."""

        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            call = self.call_method("_body")
            return nodes.CallBlock(call, [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    env = environment(
        MAX_OUTPUT_CHARS,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[Generation, "jinja2.ext.loopcontrols"],
    )
    env.filters["tojson"] = _tojson
    guard_filters(env)
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


@functools.lru_cache(maxsize=16)
def _compile(source: str) -> Any:
    from chatterm.jinja_sandbox import compile_template

    return compile_template(_environment(), source)


def _error(origin: str, exc: RenderError) -> ChatTemplateError:
    where = f" (line {exc.line})" if exc.line else ""
    if exc.kind == "raised":
        return ChatTemplateError(f"{origin}: the chat template refused the conversation: {exc}")
    if exc.kind == "syntax":
        return ChatTemplateError(f"{origin}: the chat template does not compile{where}: {exc}")
    if exc.kind == "budget":
        return ChatTemplateError(f"{origin}: the chat template {exc}{where}; refusing it")
    return ChatTemplateError(f"{origin}: the chat template failed{where}: {exc}")


def as_dict(message: ChatMessage | Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """A message as the template sees it: ``role``, ``content`` and any other field set.
    An assistant reply's thinking (``ChatMessage.reasoning``) goes as ``reasoning_content``
    where the template ``source`` reads it, else back in front of the answer between its
    markers, so the template's own stripping decides (see
    :func:`chatterm.engine.reasoning.message_fields`)."""
    if isinstance(message, Mapping):
        return dict(message)
    out = {"role": message.role, "content": message.content}
    if dataclasses.is_dataclass(message):
        for f in dataclasses.fields(message):
            value = getattr(message, f.name)
            if f.name == "reasoning":
                continue
            if f.name not in out and value is not None and value != f.default:
                out[f.name] = value
    reasoning = getattr(message, "reasoning", "")
    if reasoning and message.role == "assistant":
        from chatterm.engine.reasoning import message_fields

        out.update(message_fields(source, message.content, reasoning))
    return out


def render_text(
    source: str,
    messages: Iterable[ChatMessage | Mapping[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    origin: str = "the model",
    **template_kwargs: Any,
) -> str:
    """Render ``messages`` with ``source`` as transformers would, under the budgets.

    ``template_kwargs`` are passed to the template as variables (``enable_thinking``, ``tools``,
    other special tokens…). Raises :class:`ChatTemplateError` (exit 3) with the template's own
    message when it refuses, fails, does not compile or goes past its budget; ``origin`` (the
    model file) starts the message.
    """
    from chatterm.jinja_sandbox import render_bounded

    try:
        template = _compile(source)
        context: dict[str, Any] = {
            "messages": [as_dict(m, source) for m in messages],
            "tools": None,
            "documents": None,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": bos_token,
            "eos_token": eos_token,
            **template_kwargs,
        }
        return render_bounded(template, context, max_chars=MAX_OUTPUT_CHARS)
    except RenderError as exc:
        raise _error(origin, exc) from None


def render(
    source: str,
    messages: Sequence[ChatMessage] | Sequence[dict[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    **template_kwargs: Any,
) -> str:
    """:func:`render_text` without control-token protection or system folding (for tests and
    for checking a template against the reference)."""
    return render_text(
        source,
        messages,
        bos_token=bos_token,
        eos_token=eos_token,
        add_generation_prompt=add_generation_prompt,
        **template_kwargs,
    )


@functools.lru_cache(maxsize=16)
def has_system_role(source: str) -> bool:
    """Whether the template renders a system message (False when it refuses one or drops its
    text), probed once per template with a system and a user message."""
    try:
        text = render_text(
            source,
            [
                {"role": "system", "content": _SYSTEM_PROBE},
                {"role": "user", "content": _USER_PROBE},
            ],
        )
    except ChatTemplateError:
        return False
    return _SYSTEM_PROBE in text


def fold_system(
    messages: Sequence[dict[str, Any]],
) -> tuple[list[dict[str, Any]], bool]:
    """The system prompt moved to the start of the first user message (llama.cpp's and
    ollama's behaviour for templates without a system role); returns the messages and
    whether anything was folded."""
    if not messages or messages[0].get("role") != "system":
        return list(messages), False
    system = str(messages[0].get("content") or "")
    rest = [dict(m) for m in messages[1:]]
    for m in rest:
        if m.get("role") == "user":
            m["content"] = f"{system}\n\n{m.get('content') or ''}" if system else m["content"]
            return rest, True
    return [{"role": "user", "content": system}, *rest], True


def render_conversation(
    source: str,
    messages: Sequence[ChatMessage | Mapping[str, Any]],
    *,
    control_texts: frozenset[str] = frozenset(),
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    origin: str = "the model",
    **template_kwargs: Any,
) -> Rendered:
    """Render for the model: system folded when the template has no system role, control-token
    text in content kept as plain text (see the module docstring).

    Raises :class:`ChatTemplateError` (exit 3) naming ``origin`` when the template fails, and
    when it renders nothing at all (llama.cpp aborts on an empty prompt).
    """
    items = [as_dict(m, source) for m in messages]
    notes: tuple[str, ...] = ()
    if items and items[0].get("role") == "system" and not has_system_role(source):
        items, folded = fold_system(items)
        if folded:
            notes = (FOLD_NOTE,)
    safe, swapped, base = neutralise(items, control_texts)
    text = render_text(
        source,
        safe,
        bos_token=bos_token,
        eos_token=eos_token,
        add_generation_prompt=add_generation_prompt,
        origin=origin,
        **template_kwargs,
    )
    if not text and items:
        raise ChatTemplateError(
            f"{origin}: the chat template rendered nothing for this conversation"
        )
    return Rendered(tuple(restore(text, swapped, base)), notes)


def render_segments(
    source: str,
    messages: Sequence[ChatMessage],
    *,
    control_texts: Iterable[str] = ("<|im_start|>", "<|im_end|>"),
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
    **template_kwargs: Any,
) -> list[Segment]:
    """The segments of :func:`render_conversation` (kept for older callers)."""
    return list(
        render_conversation(
            source,
            messages,
            control_texts=frozenset(control_texts),
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
            **template_kwargs,
        ).segments
    )
