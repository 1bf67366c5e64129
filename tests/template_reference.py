"""A reference chat-template renderer written to Hugging Face transformers' semantics, and the
conformance check that compares chatterm's renderer with it.

Independent of chatterm on purpose (it imports nothing from ``chatterm``): it is what
``transformers.utils.chat_template_utils._compile_jinja_template`` and
``render_jinja_template`` do (transformers 4.5x), restated with Jinja alone:

- ``ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
  extensions=[AssistantTracker, jinja2.ext.loopcontrols])``; the AssistantTracker extension
  turns ``{% generation %}…{% endgeneration %}`` into a call block that returns its body;
- ``tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`` =
  ``json.dumps`` with those arguments; globals ``raise_exception(message)`` (raises
  ``jinja2.exceptions.TemplateError``) and ``strftime_now(format)``;
- ``template.render(messages=…, tools=None, documents=None, add_generation_prompt=…,
  **special_tokens)``.

Used by ``tests/test_template_conformance.py`` on llama.cpp's real templates and by
``scripts/template_check.py`` on any template file or GGUF.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The conversations every template is rendered with (the list).
CONVERSATIONS: dict[str, list[dict[str, str]]] = {
    "user only": [{"role": "user", "content": "Hello! What is 2+2?"}],
    "system + user": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": "Name a colour."},
    ],
    "several turns": [
        {"role": "user", "content": "Hi there."},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a fact."},
        {"role": "assistant", "content": "Octopuses have three hearts."},
        {"role": "user", "content": "Another one?"},
    ],
    "assistant with <think>": [
        {"role": "user", "content": "What is 7*6?"},
        {
            "role": "assistant",
            "content": "<think>\nSeven sixes: 6+6+6+6+6+6+6 = 42.\n</think>\n\nIt is 42.",
        },
        {"role": "user", "content": "And 6*7?"},
    ],
    "markup, braces, emoji, blank lines": [
        {
            "role": "user",
            "content": (
                "Render `{{ x }}` and {% raw %} in <b>HTML</b> 🎉\n\n\n"
                '  with {"json": [1, 2]}, a {brace} and <|im_end|> as text.  \n\n'
            ),
        }
    ],
}
SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>"}


class _AssistantTracker(jinja2.ext.Extension):
    tags = {"generation"}

    def parse(self, parser: Any) -> Any:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_generation_support")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context: Any, caller: Any) -> str:
        return caller()


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    x: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys=False
) -> str:
    return json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def reference_render(
    source: str,
    messages: list[dict[str, Any]],
    *,
    add_generation_prompt: bool = True,
    **special_tokens: str,
) -> str:
    """Render as transformers' ``apply_chat_template(..., tokenize=False)`` would."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_AssistantTracker, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    template = env.from_string(source)
    return template.render(
        messages=messages,
        tools=None,
        documents=None,
        add_generation_prompt=add_generation_prompt,
        **special_tokens,
    )


@dataclass(frozen=True)
class CaseResult:
    """One conversation through one template: ``agree`` when both gave the same text or both
    refused; ``detail`` says how they differ otherwise."""

    conversation: str
    agree: bool
    outcome: str  # "equal", "both refuse", "differ", "only chatterm refuses", "only reference…"
    detail: str = ""


def _first_difference(a: str, b: str) -> str:
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"from character {n}: chatterm {a[n : n + 40]!r} vs reference {b[n : n + 40]!r}"


def compare(
    source: str, chatterm_render: Any, special_tokens: dict[str, str] | None = None
) -> list[CaseResult]:
    """Render ``source`` with ``chatterm_render(source, messages, **special_tokens)`` and with
    the reference for every conversation in :data:`CONVERSATIONS`."""
    tokens = special_tokens or SPECIAL_TOKENS
    results = []
    for name, messages in CONVERSATIONS.items():
        try:
            expected, ref_error = reference_render(source, messages, **tokens), ""
        except Exception as exc:  # the template refused or broke: both must refuse
            expected, ref_error = None, f"{type(exc).__name__}: {exc}"
        try:
            got, our_error = chatterm_render(source, messages, **tokens), ""
        except Exception as exc:
            got, our_error = None, str(exc)
        if expected is None and got is None:
            results.append(CaseResult(name, True, "both refuse", ref_error))
        elif expected is None:
            results.append(CaseResult(name, False, "only the reference refuses", ref_error))
        elif got is None:
            results.append(CaseResult(name, False, "only chatterm refuses", our_error))
        elif got == expected:
            results.append(CaseResult(name, True, "equal"))
        else:
            results.append(CaseResult(name, False, "differ", _first_difference(got, expected)))
    return results
