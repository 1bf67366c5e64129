"""Thinking on the real model: SmolLM2 copies carrying reasoning chat templates.

The R1-style copy opens ``<think>`` in its generation prompt, so SmolLM2 writes inside the block
until its thinking budget makes the engine close it; after that the answer path runs for real.
Texts are compared only between runs in the same test (greedy text differs across CPUs).
"""

from __future__ import annotations

from typing import Any

from chatterm.engine.events import ChatMessage, Finished, PromptReady, Token
from chatterm.sampling import SamplingSettings

QUESTION = [ChatMessage("user", "Explain why the sky is blue.")]


def _run(engine: Any, messages: list[ChatMessage], **settings: Any) -> dict[str, Any]:
    sampling = SamplingSettings(temperature=0, seed=1, **settings)
    tokens: list[Token] = []
    ready = finished = None
    for event in engine.generate(messages, sampling):
        if isinstance(event, Token):
            tokens.append(event)
        elif isinstance(event, PromptReady):
            ready = event
        elif isinstance(event, Finished):
            finished = event
    assert ready is not None and finished is not None
    return {
        "tokens": tokens,
        "reasoning": "".join(t.text for t in tokens if t.reasoning),
        "answer": "".join(t.text for t in tokens if not t.reasoning),
        "ready": ready,
        "finished": finished,
    }


def test_thinking_budget_closes_the_block_and_the_answer_follows(r1_engine: Any) -> None:
    out = _run(r1_engine, QUESTION, max_tokens=48, thinking_budget=6)
    stats = out["finished"].stats
    assert out["reasoning"].strip()
    assert "</think>" not in out["reasoning"] and "</think>" not in out["answer"]
    assert out["answer"].strip(), "after the forced </think> the model answers"
    assert not stats.reasoning_open
    # Six sampled thinking tokens, then the end marker the engine emitted itself.
    forced = len(r1_engine.token_ids("\n</think>\n\n", special=True))
    assert 6 <= stats.reasoning_tokens <= 6 + forced
    assert stats.generated_tokens > stats.reasoning_tokens
    # Token events: every reasoning token comes before every answer token.
    flags = [t.reasoning for t in out["tokens"] if t.text]
    assert flags == sorted(flags, reverse=True)


def test_a_bigger_budget_thinks_longer_on_the_same_seed(r1_engine: Any) -> None:
    short = _run(r1_engine, QUESTION, max_tokens=64, thinking_budget=4)
    long = _run(r1_engine, QUESTION, max_tokens=64, thinking_budget=12)
    assert len(short["reasoning"]) < len(long["reasoning"])
    assert long["reasoning"].startswith(short["reasoning"][:8])


def test_a_reply_cut_inside_the_block_is_all_reasoning_and_marked_open(r1_engine: Any) -> None:
    out = _run(r1_engine, QUESTION, max_tokens=5)
    stats = out["finished"].stats
    assert out["finished"].reason == "length"
    assert out["reasoning"] and not out["answer"]
    assert stats.reasoning_open
    assert stats.reasoning_tokens == 5


def test_kv_cache_reuse_survives_reasoning_turns(r1_engine: Any) -> None:
    """The template strips old thinking, so each turn re-evaluates only from the last reply
    on: turn 3 reuses what turn 2's prompt held up to its generation prompt (less the final
    batch the engine always re-evaluates, see ``REPRODUCIBLE_BATCH``)."""
    from chatterm.engine.llama_engine import REPRODUCIBLE_BATCH

    system = ChatMessage("system", "You are a patient teacher of physics. " * 12)
    messages = [system, *QUESTION]
    readies = []
    for follow_up in ("Why is it red at sunset?", "Thanks. One line summary?", None):
        out = _run(r1_engine, messages, max_tokens=24, thinking_budget=6)
        readies.append(out["ready"])
        messages.append(ChatMessage("assistant", out["answer"], out["reasoning"]))
        if follow_up:
            messages.append(ChatMessage("user", follow_up))
    turn2, turn3 = readies[1], readies[2]
    opening = len(r1_engine.token_ids("<think>\n", special=True))
    reusable = min(turn2.prompt_tokens - opening - 2, turn3.prompt_tokens - REPRODUCIBLE_BATCH)
    assert turn2.cached_tokens > 0
    assert turn3.cached_tokens >= reusable
    assert turn3.cached_tokens > turn2.cached_tokens


def test_no_think_reaches_a_template_that_takes_enable_thinking(qwen3_engine: Any) -> None:
    on = qwen3_engine.render(QUESTION, enable_thinking=True).text
    off = qwen3_engine.render(QUESTION, enable_thinking=False).text
    assert off.endswith("<think>\n\n</think>\n\n") and not on.endswith("</think>\n\n")
    out = _run(qwen3_engine, QUESTION, max_tokens=12, think=False)
    assert out["ready"].prompt_text == off
    assert out["answer"] and not out["reasoning"]


def test_earlier_thinking_goes_back_as_reasoning_content(qwen3_engine: Any) -> None:
    history = [*QUESTION, ChatMessage("assistant", "Rayleigh scattering.", "light scatters")]
    text = qwen3_engine.render(history, add_generation_prompt=False).text
    assert "<think>\nlight scatters\n</think>\n\nRayleigh scattering." in text


def test_a_plain_template_reply_has_no_reasoning(real_engine: Any) -> None:
    out = _run(real_engine, QUESTION, max_tokens=8)
    assert not out["reasoning"]
    assert out["finished"].stats.reasoning_tokens == 0
