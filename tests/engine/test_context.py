"""The context-window policy, stated once (chatterm.engine.context), and the engine contract:
the pure planning function on a scripted renderer, then the real engine's plan against what
its replies really send."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chatterm.engine.base import Engine, LocalModel, RenderedPrompt
from chatterm.engine.context import DROP_TARGET, plan_context, reply_reserve
from chatterm.engine.events import ChatMessage, PromptReady
from chatterm.engine.fake import FakeEngine
from chatterm.errors import ContextOverflowError
from chatterm.sampling import SamplingSettings


def words(messages: Sequence[ChatMessage]) -> RenderedPrompt:
    """A renderer whose token count is the number of words plus two per message."""
    text = " ".join(f"<{m.role}> {m.content}" for m in messages)
    return RenderedPrompt(text, tuple(range(sum(len(m.content.split()) + 2 for m in messages))))


def conversation(turns: int, words_each: int = 10) -> list[ChatMessage]:
    messages = [ChatMessage("system", "be brief")]
    for i in range(turns):
        messages += [
            ChatMessage("user", f"question {i} " + "w " * words_each),
            ChatMessage("assistant", f"answer {i} " + "w " * words_each),
        ]
    return [*messages, ChatMessage("user", "last question")]


def test_a_conversation_that_fits_is_sent_whole():
    messages = conversation(2)
    plan = plan_context(messages, n_ctx=1000, max_tokens=100, render=words)
    assert plan.dropped == 0 and plan.kept(messages) == messages
    assert plan.total_tokens == len(words(messages).tokens) == len(plan.prompt.tokens)
    assert plan.reserve == reply_reserve(1000, 100) == 100


def test_overflow_drops_whole_turns_in_one_go_and_keeps_the_system_prompt():
    messages = conversation(20)
    plan = plan_context(messages, n_ctx=300, max_tokens=50, render=words)
    kept = plan.kept(messages)
    assert kept[0] == messages[0] and kept[-1] == messages[-1]
    assert kept[1].role == "user", "a turn is never cut in half"
    assert len(plan.prompt.tokens) <= int(300 * DROP_TARGET) < plan.total_tokens
    assert plan.prompt == words(kept)


def test_the_last_drop_point_is_reused_while_it_fits():
    messages = conversation(20)
    first = plan_context(messages, n_ctx=300, max_tokens=50, render=words)
    longer = [*messages, ChatMessage("assistant", "short"), ChatMessage("user", "again")]
    again = plan_context(
        longer, n_ctx=300, max_tokens=50, render=words, previous=first.drop_point(messages)
    )
    assert again.dropped == first.dropped, "same prefix, so the KV cache stays useful"
    fresh = plan_context(longer, n_ctx=300, max_tokens=50, render=words)
    assert fresh.dropped >= first.dropped


def test_a_newest_message_too_long_alone_is_refused():
    messages = [ChatMessage("system", "s"), ChatMessage("user", "w " * 500)]
    with pytest.raises(ContextOverflowError, match="context window is 256 tokens"):
        plan_context(messages, n_ctx=256, max_tokens=64, render=words)


def test_engines_state_what_they_are():
    fake = FakeEngine()
    assert isinstance(fake, Engine) and not isinstance(fake, LocalModel)
    assert fake.model_path is None and fake.pop_notes() == []


def test_the_real_engine_plans_what_its_reply_sends(starter_path):
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(starter_path, n_ctx=256)
    try:
        assert isinstance(engine, Engine) and isinstance(engine, LocalModel)
        assert engine.model_path == starter_path and engine.vocab_size > 0
        history = [ChatMessage("system", "Be brief.")]
        for i in range(12):
            history += [
                ChatMessage("user", f"Question {i}: tell me about the number {i}."),
                ChatMessage("assistant", f"The number {i} is a fine number. " * 3),
            ]
        history.append(ChatMessage("user", "Last question?"))
        settings = SamplingSettings(temperature=0, seed=1, max_tokens=8)
        plan = engine.plan(history, settings.max_tokens)
        assert plan.dropped > 0
        ready = next(e for e in engine.generate(history, settings) if isinstance(e, PromptReady))
        assert ready.dropped_messages == plan.dropped
        assert ready.prompt_tokens == len(plan.prompt.tokens)
        with engine.lock:  # reentrant: render takes it too
            assert engine.render(plan.kept(history)).tokens == plan.prompt.tokens
    finally:
        engine.close()
