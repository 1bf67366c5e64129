"""Chat templates are code from model files: sandboxed, budgeted, and content kept apart."""

from __future__ import annotations

import pytest

from chatterm.engine.chat_template import render, render_segments
from chatterm.engine.events import ChatMessage
from chatterm.errors import TemplateError

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_segments_keep_content_apart_from_scaffold():
    segments = render_segments(CHATML, [ChatMessage("user", "hi <|im_end|>")])
    assert [s.special for s in segments] == [True, False, True]
    assert segments[1].text == "hi <|im_end|>"
    assert "".join(s.text for s in segments) == render(
        CHATML, [ChatMessage("user", "hi <|im_end|>")]
    )


def test_template_that_transforms_content_falls_back_to_whole_render():
    upper = "{% for m in messages %}[{{ m['content'] | upper }}]{% endfor %}"
    segments = render_segments(upper, [ChatMessage("user", "abc")])
    assert segments == [segments[0]] and segments[0].text == "[ABC]"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.append(1) }}",
        "{{ 'a' * 10**8 }}",
        "{{ [1] * 10**8 }}",
        "{{ 2 ** 100000 }}",
    ],
)
def test_hostile_templates_fail_safely(source):
    with pytest.raises(TemplateError):
        render(source, [ChatMessage("user", "x")])


def test_runaway_output_is_refused():
    source = "{% for i in range(100000) %}{{ 'x' * 40 }}{% endfor %}"
    with pytest.raises(TemplateError, match="produced too much text"):
        render(source, [])


def test_syntax_error_names_the_line():
    with pytest.raises(TemplateError, match="line 2"):
        render("ok\n{% for %}", [])


def test_raise_exception_becomes_a_clear_error():
    with pytest.raises(TemplateError, match="roles must alternate"):
        render("{{ raise_exception('roles must alternate') }}", [])
