"""The streaming reasoning splitter and what goes back to the template (no model needed)."""

from __future__ import annotations

import pytest

from chatterm.engine import chat_template
from chatterm.engine.events import ChatMessage
from chatterm.engine.reasoning import (
    Markers,
    ReasoningSplitter,
    ReasoningTracker,
    markers_for,
    message_fields,
    opens_inside,
    split_message,
    split_text,
    template_variables,
)
from tests.reasoning.ggufs import R1_STYLE_TEMPLATE, qwen3_template


def _split_in_chunks(text: str, size: int, **kwargs: object) -> tuple[str, str, str]:
    splitter = ReasoningSplitter(**kwargs)  # type: ignore[arg-type]
    pieces = []
    for i in range(0, len(text), size):
        pieces += splitter.feed(text[i : i + size])
    pieces += splitter.flush()
    reasoning = "".join(t for t, r in pieces if r)
    answer = "".join(t for t, r in pieces if not r)
    return reasoning, answer, splitter.state


@pytest.mark.parametrize("size", [1, 2, 3, 5, 1000])
def test_markers_split_across_tokens_are_found(size: int) -> None:
    reasoning, answer, state = _split_in_chunks("<think>\nstep one\n</think>\n\nFour.", size)
    assert (reasoning, answer, state) == ("\nstep one\n", "\n\nFour.", "answer")


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_a_reply_that_starts_inside_the_block_needs_only_the_end_marker(size: int) -> None:
    reasoning, answer, _ = _split_in_chunks("hmm\n</think>\n\nYes.", size, start_inside=True)
    assert (reasoning, answer) == ("hmm\n", "\n\nYes.")


def test_think_in_the_middle_of_an_answer_is_answer_text() -> None:
    text = "Use the <think> tag like this: <think>x</think>"
    reasoning, answer, _ = _split_in_chunks(text, 2)
    assert (reasoning, answer) == ("", text)


def test_an_unclosed_block_stays_reasoning_and_is_marked_open() -> None:
    split = split_text("<think>still going when the tokens ran o")
    assert split == split_text("<think>still going when the tokens ran o")
    assert split.reasoning == "still going when the tokens ran o"
    assert split.answer == ""
    assert split.open


def test_a_partial_end_marker_at_the_end_is_kept_as_reasoning() -> None:
    split = split_text("<think>almost</thi")
    assert (split.reasoning, split.answer, split.open) == ("almost</thi", "", True)


def test_a_template_with_its_own_markers_is_split_by_them() -> None:
    markers = markers_for("…[THINK]{{ m.reasoning_content }}[/THINK]…")
    assert markers == Markers("[THINK]", "[/THINK]")
    reasoning, answer, _ = _split_in_chunks("[THINK]plan[/THINK]done", 3, markers=markers)
    assert (reasoning, answer) == ("plan", "done")


def test_old_rows_with_a_think_block_in_their_text_are_split() -> None:
    assert split_message("<think>why</think>because", None).reasoning == "why"
    assert split_message("<think>why</think>because", None).answer == "because"
    # Text saved apart wins, and plain text stays plain.
    assert split_message("answer", "kept apart").reasoning == "kept apart"
    assert split_message("plain", None).reasoning == ""


def test_tracker_counts_tokens_and_says_when_the_budget_is_spent() -> None:
    ticks = iter(range(100))
    tracker = ReasoningTracker(start_inside=True, budget=3, clock=lambda: float(next(ticks)))
    events = []
    for i, piece in enumerate(["a", "b"]):
        events += tracker.token(piece, i)
    assert not tracker.over_budget
    events += tracker.token("c", 2)
    assert tracker.over_budget
    closing = tracker.closing_text()
    assert closing == "\n</think>\n\n"
    assert not tracker.over_budget  # asked once: the engine is closing the block
    events += tracker.token(closing, 3)
    events += tracker.token("Answer", 4)
    events += tracker.finish()
    assert "".join(e.text for e in events if e.reasoning) == "abc\n"
    assert "".join(e.text for e in events if not e.reasoning) == "\n\nAnswer"
    fields = tracker.stats_fields()
    assert fields["reasoning_tokens"] == 4
    assert not fields["reasoning_open"]
    assert fields["reasoning_s"] > 0


def test_a_token_spanning_the_end_of_the_block_becomes_two_events() -> None:
    tracker = ReasoningTracker(start_inside=True)
    events = tracker.token("done</think>Hi", 7, 0.5)
    assert [(e.text, e.reasoning, e.token_id) for e in events] == [
        ("done", True, 7),
        ("Hi", False, -1),
    ]
    assert events[0].prob == 0.5


def test_a_plain_reply_has_no_reasoning_stats() -> None:
    tracker = ReasoningTracker()
    events = tracker.token("Hello", 1) + tracker.finish()
    assert [e.reasoning for e in events] == [False]
    assert tracker.stats_fields() == {}


def test_r1_style_generation_prompt_opens_the_block() -> None:
    text = chat_template.render(R1_STYLE_TEMPLATE, [ChatMessage("user", "hi")])
    bare = chat_template.render(
        R1_STYLE_TEMPLATE, [ChatMessage("user", "hi")], add_generation_prompt=False
    )
    assert opens_inside(text[len(bare) :], markers_for(R1_STYLE_TEMPLATE))
    assert not opens_inside("<|im_start|>assistant\n<think>\n\n</think>\n\n", markers_for(None))


def test_qwen3_template_gets_reasoning_content_and_enable_thinking() -> None:
    source = qwen3_template()
    assert template_variables(source, None) == {"enable_thinking": True}
    assert template_variables(source, False) == {"enable_thinking": False}
    assert template_variables(R1_STYLE_TEMPLATE, False) == {}
    assert message_fields(source, "Four.", "2+2") == {
        "content": "Four.",
        "reasoning_content": "2+2",
    }
    history = [
        ChatMessage("user", "2+2?"),
        ChatMessage("assistant", "Four.", "adding two and two"),
    ]
    # The last turn's thinking is shown again (after the last user message), an earlier one not.
    shown = chat_template.render(source, history, add_generation_prompt=False)
    assert "<think>\nadding two and two\n</think>\n\nFour." in shown
    later = chat_template.render(source, [*history, ChatMessage("user", "and 3+3?")])
    assert "adding two and two" not in later
    assert "Four." in later
    off = chat_template.render(
        source, [ChatMessage("user", "hi")], **template_variables(source, False)
    )
    assert off.endswith("<think>\n\n</think>\n\n")


def test_templates_without_reasoning_content_get_the_block_back_in_content() -> None:
    assert message_fields(R1_STYLE_TEMPLATE, "Four.", "add") == {
        "content": "<think>add</think>Four."
    }
    history = [ChatMessage("user", "2+2?"), ChatMessage("assistant", "Four.", "add them")]
    # The template's own stripping decides: R1 keeps only what follows </think>.
    text = chat_template.render(R1_STYLE_TEMPLATE, [*history, ChatMessage("user", "more")])
    assert "add them" not in text
    assert "<|im_start|>assistant\nFour.<|im_end|>" in text


def test_deepseek_r1_distill_template_opens_the_block_unless_switched_off() -> None:
    """llama.cpp's copy of the R1-Distill template closes the block unless enable_thinking is
    true: chatterm passes it true by default, as llama-server does."""
    from tests.llama_sdist import vendor_llama_cpp

    templates = vendor_llama_cpp() / "models" / "templates"
    path = templates / "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja"
    source = path.read_text(encoding="utf-8")
    markers = markers_for(source)
    question = [ChatMessage("user", "hi")]
    bare = chat_template.render(source, question, add_generation_prompt=False)
    for think, inside in ((None, True), (True, True), (False, False)):
        text = chat_template.render(source, question, **template_variables(source, think))
        assert opens_inside(text[len(bare) :], markers) is inside, think
