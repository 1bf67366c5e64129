"""The probabilities toggle on the fake engine: what the worker asks for, how the reply is
coloured, selecting tokens (keys and mouse), the chart's stages, and the saved payload."""

from __future__ import annotations

import json
import math

from textual.widgets import Markdown

from chatterm.lab.records import PROBS_TOP_K
from chatterm.tui.messages import TokensArrived
from chatterm.tui.widgets.message_view import AssistantMessage
from chatterm.tui.widgets.prob_chart import ProbChart
from chatterm.tui.widgets.prob_text import ProbText, ProbView

from .helpers import db_rows, send, settle, wait_until

REPLY = "The capital of France is Paris."


def logprobs_rows() -> list:
    return db_rows("SELECT id, content, logprobs FROM messages WHERE role = 'assistant'")


async def test_probabilities_off_asks_the_engine_for_none(make, fake, seen):
    fake.enqueue(REPLY)
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await send(pilot, "Capital of France?")
        assert not app.chat.transcript.query(ProbView)
    assert [c.top_logprobs for c in fake.calls] == [0]
    assert all(m.probs == () for m in seen.of(TokensArrived))
    assert logprobs_rows()[0]["logprobs"] is None


async def test_probabilities_on_colour_the_streamed_reply_and_are_saved(make, fake, seen):
    fake.enqueue(REPLY)
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await pilot.press("f3")
        assert app.chat.probs_on
        await send(pilot, "Capital of France?")
        view = list(app.chat.transcript.query(AssistantMessage))[-1]
        prob_view = view.query_one(ProbView)
        assert prob_view.prob_text.text == REPLY == view.text
        assert not view.query_one(Markdown).display, "the coloured tokens replace the Markdown"
        spans = prob_view.prob_text.render().spans  # type: ignore[union-attr]
        assert any(str(s.style) == "yellow" for s in spans), "p = 0.6 is the yellow band"
    assert [c.top_logprobs for c in fake.calls] == [PROBS_TOP_K]
    batches = [m for m in seen.of(TokensArrived)]
    assert sum(len(m.probs) for m in batches) == sum(m.tokens for m in batches)
    row = logprobs_rows()[0]
    saved = json.loads(row["logprobs"])
    assert saved["top_logprobs"] == PROBS_TOP_K
    assert "".join(t["text"] for t in saved["tokens"]) == row["content"] == REPLY
    for token in saved["tokens"]:
        assert len(token["top"]) == PROBS_TOP_K
        assert sum(c["prob"] for c in token["top"]) <= 1.0
        assert token["prob"] == token["top"][0]["prob"]


async def test_keys_select_tokens_and_the_chart_explains_the_chain(make, fake):
    fake.enqueue(REPLY)
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await send(pilot, "Capital of France?")
        await pilot.press("f10")
        await pilot.pause()
        text = app.chat.transcript.query_one(ProbText)
        assert app.focused is text and text.selected == 0
        await pilot.press("right", "right")
        await pilot.pause()
        assert text.selected == 2
        chart = app.chat.transcript.query_one(ProbChart)
        assert chart.display and chart.explanation is not None
        expl = chart.explanation
        # The fake's candidates are 0.6, 0.2, 0.1, 0.05, …; the reply's settings (the
        # defaults: top-k 40, top-p 0.95, min-p 0.05, temperature 0.7) keep the first four:
        # top-p is reached at 0.95, and min-p (0.03) would keep them too.
        assert [r.removed_by for r in expl.rows[:5]] == [None, None, None, None, "top-p"]
        survivors = [r for r in expl.rows if r.survived]
        weights = [r.prob ** (1 / 0.7) for r in survivors]
        for row, w in zip(survivors, weights):
            assert math.isclose(row.final_prob, w / sum(weights), rel_tol=1e-6)
        assert expl.rows[0].piece == " of"  # the third token's own candidate comes first
        await pilot.press("end")
        assert text.selected == len(text.records) - 1
        await pilot.press("escape")
        await pilot.pause()
        assert text.selected is None and not chart.display
        assert isinstance(app.focused, AssistantMessage)


async def test_a_click_selects_the_token_under_the_mouse(make, fake):
    fake.enqueue(REPLY)
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await send(pilot, "Capital of France?")
        text = app.chat.transcript.query_one(ProbText)
        # "The capital of": the third token, " of", starts at column 11
        assert await pilot.click(text, offset=(12, 0))
        await pilot.pause()
        assert text.selected == 2
        assert app.focused is text
        assert app.chat.transcript.query_one(ProbChart).explanation is not None


async def test_reopening_a_conversation_shows_the_saved_probabilities(make, fake):
    fake.enqueue(REPLY, "Second reply here.")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await send(pilot, "Capital of France?")
        conversation = app.chat.conversation.id
        await pilot.press("f3")  # off: the next reply has no probabilities
        await send(pilot, "And Germany?")
    second = make()
    async with second.run_test(size=(120, 40)) as pilot:
        await second.chat.open_conversation(conversation)
        await pilot.pause()
        assert not second.chat.transcript.query(ProbView), "off: Markdown only"
        await pilot.press("f3")
        await pilot.pause()
        views = list(second.chat.transcript.query(AssistantMessage))
        assert [bool(v.query(ProbView)) for v in views] == [True, False]
        assert views[0].query_one(ProbText).text == REPLY
        await pilot.press("f3")
        await pilot.pause()
        assert not second.chat.transcript.query(ProbView)
        assert views[0].query_one(Markdown).display


async def test_toggling_mid_reply_changes_only_later_replies(make, fake, seen):
    fake.delay = 0.02
    fake.enqueue(" ".join(["word"] * 300), "short reply")
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "go"
        app.chat.prompt.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(seen.of(TokensArrived)))
        await pilot.press("f3", "escape")
        await wait_until(pilot, lambda: app.chat.job is None)
        await settle(pilot)
        assert not app.chat.transcript.query(ProbView)
        await send(pilot, "again")
        assert len(app.chat.transcript.query(ProbView)) == 1
    assert [c.top_logprobs for c in fake.calls] == [0, PROBS_TOP_K]


async def test_inspect_without_probabilities_explains_what_to_do(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "hi")
        await pilot.press("f10")
        await pilot.pause()
        assert "Turn probabilities on" in str(list(app._notifications)[-1].message)
        await pilot.press("f3", "f10")
        await pilot.pause()
        assert "No reply here has probabilities" in str(list(app._notifications)[-1].message)
