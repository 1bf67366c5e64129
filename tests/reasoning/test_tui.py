"""The chat app with a reasoning model: thinking folded above each answer.

Most tests run on the scripted fake engine (its replies hold ``<think>`` blocks and stream as a
reasoning model's do); one runs the real SmolLM2 copy with the R1-style template, whose thinking
budget closes the block so the answer streams after it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from textual.widgets import OptionList

from chatterm.engine.fake import FakeEngine
from chatterm.tui.factory import make_app, make_services
from chatterm.tui.messages import TokensArrived
from chatterm.tui.widgets.message_view import AssistantMessage
from chatterm.tui.widgets.thinking_block import ThinkingBlock
from tests.tui.helpers import Seen, db_rows, send, settle

THOUGHT = "<think> The user wants a colour. Blue is common. </think> Blue."


def _app(engine: Any, **kwargs: Any) -> Any:
    return make_app(make_services(engine=engine, **kwargs))


def _last_reply(app: Any) -> AssistantMessage:
    return list(app.chat.transcript.query(AssistantMessage))[-1]


async def test_thinking_streams_open_then_folds_to_one_line_above_the_answer() -> None:
    engine = FakeEngine(n_ctx=2048, delay=0.01).enqueue(THOUGHT)
    app = _app(engine)
    seen = Seen()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await send(pilot, "Pick a colour")
        batches = seen.of(TokensArrived)
        assert "".join(b.reasoning for b in batches) == " The user wants a colour. Blue is common. "
        assert "".join(b.text for b in batches) == " Blue."
        reply = _last_reply(app)
        block = reply.query_one(ThinkingBlock)
        assert block.display and not block.open and not block.streaming
        assert block.summary.startswith("thought for") and "tokens" in block.summary
        assert reply.entry.content == " Blue."
        body = block.query_one(".thinking-body")
        assert not body.display
    row = db_rows("SELECT content, reasoning, stats FROM messages WHERE role = 'assistant'")[0]
    assert (row["content"], row["reasoning"]) == (
        " Blue.",
        " The user wants a colour. Blue is common. ",
    )
    assert json.loads(row["stats"])["reasoning_tokens"] >= 8


async def test_a_key_and_a_click_toggle_and_the_choice_sticks_for_the_conversation() -> None:
    engine = FakeEngine(n_ctx=2048).enqueue(THOUGHT, "<think> again </think> Red.")
    app = _app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Pick a colour")
        first = _last_reply(app)
        await pilot.press("alt+t")
        await settle(pilot)
        assert first.query_one(ThinkingBlock).open
        await pilot.click(first.query_one(ThinkingBlock).query_one(".thinking-header"))
        await settle(pilot)
        assert not first.query_one(ThinkingBlock).open
        await pilot.click(first.query_one(ThinkingBlock).query_one(".thinking-header"))
        await settle(pilot)
        assert first.query_one(ThinkingBlock).open
        await send(pilot, "Another")
        second = _last_reply(app)
        assert second is not first
        # The user opened thinking in this conversation: the next reply's stays open.
        assert second.query_one(ThinkingBlock).open
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert not app.chat.thinking_open(None)


async def test_earlier_thinking_goes_back_to_the_engine_apart_from_the_answer() -> None:
    engine = FakeEngine(n_ctx=2048).enqueue(THOUGHT, "Plain.")
    app = _app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Pick a colour")
        await send(pilot, "Why?")
    earlier = engine.calls[-1].messages[1]
    assert earlier.role == "assistant"
    assert (earlier.content, earlier.reasoning.strip()) == (
        " Blue.",
        "The user wants a colour. Blue is common.",
    )


async def test_a_reply_that_is_all_thinking_shows_that_not_an_empty_answer() -> None:
    engine = FakeEngine(n_ctx=2048).enqueue("<think> one two three four five six")
    app = _app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.apply_settings(app.chat.settings.replace(max_tokens=4))
        await send(pilot, "Think forever")
        reply = _last_reply(app)
        block = reply.query_one(ThinkingBlock)
        assert "not finished" in block.summary
        assert "all thinking" in reply.query_one(".body").source  # type: ignore[attr-defined]
    row = db_rows("SELECT content, reasoning FROM messages WHERE role = 'assistant'")[0]
    assert row["content"] == "" and row["reasoning"].strip() == "one two three"


async def test_reopening_a_conversation_shows_its_thinking_folded() -> None:
    engine = FakeEngine(n_ctx=2048).enqueue(THOUGHT)
    app = _app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Pick a colour")
        await pilot.press("ctrl+n")
        await send(pilot, "Something else")
        options = app.chat.query_one(OptionList)
        options.focus()
        options.highlighted = 1
        await pilot.press("enter")
        await settle(pilot)
        block = _last_reply(app).query_one(ThinkingBlock)
        assert block.display and not block.open
        assert block.summary.startswith("thought")
        assert "Blue is common" in block.text


async def test_the_real_model_streams_thinking_then_its_answer(r1_path: Path) -> None:
    from chatterm.services import EngineOptions

    app = _app(None, options=EngineOptions(model=str(r1_path)))
    async with app.run_test(size=(120, 40)) as pilot:
        from tests.tui.helpers import wait_until

        await wait_until(pilot, lambda: app.chat.engine is not None)
        app.chat.apply_settings(
            app.chat.settings.replace(temperature=0, seed=2, max_tokens=32, thinking_budget=6)
        )
        await send(pilot, "Why is the sky blue?")
        reply = _last_reply(app)
        block = reply.query_one(ThinkingBlock)
        assert block.text.strip() and reply.entry.content.strip()
        assert not block.open and "tokens" in block.summary
    row = db_rows("SELECT content, reasoning, stats FROM messages WHERE role = 'assistant'")[0]
    stats = json.loads(row["stats"])
    assert row["reasoning"].strip() and row["content"].strip()
    assert stats["reasoning_tokens"] >= 6 and not stats["reasoning_open"]


async def test_probabilities_cover_thinking_tokens_and_are_saved_marked() -> None:
    engine = FakeEngine(n_ctx=2048).enqueue(THOUGHT)
    app = _app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await settle(pilot)
        await send(pilot, "Pick a colour")
        from chatterm.tui.widgets.prob_text import ProbText

        shown = _last_reply(app).query_one(ProbText)
        assert "Blue is common." in shown.text and shown.text.endswith("Blue.")
        flags = [bool(r.get("reasoning")) for r in shown.records if r.get("text")]
        assert flags[0] and not flags[-1]
    (row,) = db_rows("SELECT logprobs FROM messages WHERE role = 'assistant'")
    tokens = json.loads(row["logprobs"])["tokens"]
    assert any(t.get("reasoning") for t in tokens) and not tokens[-1].get("reasoning")


async def test_the_prompt_view_says_what_earlier_thinking_the_model_sees_again() -> None:
    engine = FakeEngine(n_ctx=2048).enqueue(THOUGHT, "Plain.")
    app = _app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Pick a colour")
        await send(pilot, "Why?")
        app.chat.prompt.focus()
        await pilot.press("f9")
        await settle(pilot)
        from textual.widgets import Static

        note = app.screen.query_one("#prompt-note", Static)
        assert note.display
        # The fake engine's prompt holds only the answers: the earlier thinking is left out.
        assert "leaves out the thinking of the 1 earlier" in str(note.render())


async def test_the_tokens_view_of_a_reply_shows_its_thinking_first() -> None:
    engine = FakeEngine(n_ctx=2048).enqueue(THOUGHT)
    app = _app(engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Pick a colour")
        _last_reply(app).focus()
        await pilot.press("f4")
        await settle(pilot)
        from chatterm.tui.screens.tokens import TokensScreen

        assert isinstance(app.screen, TokensScreen)
        assert app.screen.text.startswith("<think>") and app.screen.text.endswith("Blue.")


async def test_the_compare_screen_shows_each_columns_thinking_folded_above_its_answer() -> None:
    from chatterm.tui.screens.compare import CompareColumn, CompareScreen
    from tests.tui.helpers import wait_until

    engine = FakeEngine(n_ctx=2048).enqueue(
        "<think> a b c d e f g h </think> Long.", "<think> a b c d e f g h </think> Short."
    )
    app = _app(engine)
    async with app.run_test(size=(140, 40)) as pilot:
        app.chat.prompt.text = "Explain rain"
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        screen.query_one("#compare-variants").value = "think=on | thinking_budget=3"
        screen.query_one("#compare-prompt").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.experiment is not None)
        columns = list(screen.query(CompareColumn))
        shown = [str(c.query_one(".column-text").render()) for c in columns]
        stats = [str(c.query_one(".column-stats").render()) for c in columns]
    assert [c.sampling.thinking_budget for c in engine.calls] == [0, 3]
    assert engine.calls[0].sampling.think is True
    assert all("▸ thought" in text for text in shown)
    assert "Long." in shown[0] and "a b c" not in shown[0]
    # The budget closed the second column's block early: fewer thinking tokens, same answer.
    first, second = columns[0].run.stats, columns[1].run.stats
    assert second["reasoning_tokens"] < first["reasoning_tokens"]
    assert "Short." in shown[1] and all("thinking" in s for s in stats)


async def test_the_panels_thinking_switch_and_budget_reach_the_next_reply_and_are_saved() -> None:
    from textual.widgets import Input, Select

    engine = FakeEngine(n_ctx=2048).enqueue(THOUGHT)
    app = _app(engine)
    async with app.run_test(size=(140, 50)) as pilot:
        app.chat.query_one("#setting-think", Select).value = "off"
        budget = app.chat.query_one("#setting-thinking_budget", Input)
        budget.value = "2"
        await settle(pilot)
        await send(pilot, "Pick a colour")
    sampling = engine.calls[-1].sampling
    assert sampling.think is False and sampling.thinking_budget == 2
    (row,) = db_rows("SELECT sampling FROM conversations")
    saved = json.loads(row["sampling"])
    assert saved["think"] is False and saved["thinking_budget"] == 2
