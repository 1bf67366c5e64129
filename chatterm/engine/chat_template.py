"""Render a conversation with the model's own chat template (from the GGUF metadata).

Chat templates are Jinja code shipped inside model files, so they run in the budgeted sandbox of
:mod:`chatterm.jinja_sandbox`.

User content must never become control tokens: a message containing ``<|im_end|>`` would
otherwise end its turn early. :func:`render_segments` renders with placeholders in place of each
message's content and returns the scaffold and the content as separate segments, so the engine
tokenizes the scaffold with special tokens and the content as plain text.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatterm.engine.events import ChatMessage
from chatterm.errors import TemplateError

MAX_OUTPUT_CHARS = 2_000_000

# Used when a GGUF has no chat template (base models): plain text, one turn after another.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}{% if m.role == 'system' %}{{ m.content }}\n\n"
    "{% elif m.role == 'user' %}{{ m.content }}{% else %}{{ m.content }}\n\n{% endif %}"
    "{% endfor %}"
)


@dataclass(frozen=True)
class Segment:
    """A piece of the rendered prompt: scaffold (``special=True``) or message content."""

    text: str
    special: bool


def _raise_exception(message: str) -> None:
    raise TemplateError(f"the model's chat template refused the conversation: {message}")


def _environment() -> Any:
    from chatterm.jinja_sandbox import environment

    env = environment(
        MAX_OUTPUT_CHARS, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True
    )

    def tojson(value: Any, indent: int | None = None, **_: Any) -> str:
        import json

        return json.dumps(value, indent=indent, ensure_ascii=False)

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


_ENV: Any = None
_COMPILED: dict[str, Any] = {}


def _compile(source: str) -> Any:
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    template = _COMPILED.get(source)
    if template is None:
        from jinja2 import TemplateSyntaxError

        try:
            template = _ENV.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"the chat template has a syntax error on line {exc.lineno}: {exc.message}"
            ) from None
        _COMPILED[source] = template
    return template


def render(
    source: str,
    messages: Sequence[ChatMessage] | Sequence[dict[str, Any]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render ``messages`` with template ``source`` under the sandbox and budgets."""
    from jinja2 import TemplateError as JinjaError

    from chatterm.jinja_sandbox import BudgetExceeded, render_bounded

    template = _compile(source)
    items = [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in messages]
    context = {
        "messages": items,
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_generation_prompt": add_generation_prompt,
    }
    try:
        return render_bounded(template, context, max_chars=MAX_OUTPUT_CHARS)
    except BudgetExceeded as exc:
        raise TemplateError(f"the chat template {exc}; refusing it") from None
    except JinjaError as exc:
        raise TemplateError(f"the chat template failed: {exc}") from None


def render_segments(
    source: str,
    messages: Sequence[ChatMessage],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> list[Segment]:
    """Render with content kept apart from scaffold (see the module docstring).

    Falls back to one scaffold segment holding everything when the template transforms content
    (so the placeholders do not survive intact); that path tokenizes content with special tokens
    on, which only matters if the content contains control-token text.
    """
    tag = uuid.uuid4().hex[:12]
    marks = [f"\x00{tag}{i}\x00" for i in range(len(messages))]
    masked = [ChatMessage(m.role, mark) for m, mark in zip(messages, marks)]
    text = render(
        source,
        masked,
        bos_token=bos_token,
        eos_token=eos_token,
        add_generation_prompt=add_generation_prompt,
    )
    segments: list[Segment] = []
    rest = text
    for message, mark in zip(messages, marks):
        head, found, tail = rest.partition(mark)
        if not found:
            continue  # the template dropped this message (or transformed it: checked below)
        if head:
            segments.append(Segment(head, True))
        if message.content:
            segments.append(Segment(message.content, False))
        rest = tail
    if rest:
        segments.append(Segment(rest, True))
    # Any trace of a placeholder left in the scaffold means the template transformed content
    # (upper-cased, sliced, repeated it): the split is wrong, so render the plain way.
    key = tag.casefold()
    intact = not any(s.special and (key in s.text.casefold() or "\x00" in s.text) for s in segments)
    if intact:
        return segments
    full = render(
        source,
        messages,
        bos_token=bos_token,
        eos_token=eos_token,
        add_generation_prompt=add_generation_prompt,
    )
    return [Segment(full, True)]
