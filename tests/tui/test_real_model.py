"""The key behaviours once more on the real SmolLM2 model: send, stream, stop, regenerate and
branch. Greedy decoding (temperature 0, set through config.toml as a user would) keeps the text
deterministic; replies are short to keep the suite fast."""

from __future__ import annotations

import json

import pytest

from chatterm import paths
from chatterm.engine.llama_engine import REPRODUCIBLE_BATCH
from chatterm.tui.messages import PromptEvaluated, ReplyFinished, TokensArrived
from chatterm.tui.widgets.message_view import AssistantMessage, MessageView, UserMessage

from .helpers import messages_rows, send, settle, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def greedy(chatterm_home):
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[sampling]\ntemperature = 0\nmax_tokens = 24\nseed = 1\n", encoding="utf-8")


async def test_send_and_stream_on_the_real_model(make, real_engine, greedy, seen):
    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await send(pilot, "Count from 1 to 10, separated by commas.")
        view = list(app.chat.transcript.query(AssistantMessage))[-1]
        assert view.text.strip(), "the reply is shown"
    assert seen.names(PromptEvaluated, TokensArrived, ReplyFinished) == [
        "PromptEvaluated",
        "TokensArrived",
        "ReplyFinished",
    ]
    batches = seen.of(TokensArrived)
    finished = seen.of(ReplyFinished)[0].finished
    user, reply = messages_rows()
    assert "".join(b.text for b in batches) == reply["content"] == view.text
    assert sum(b.tokens for b in batches) >= finished.stats.generated_tokens > 0
    assert reply["status"] == "complete" and reply["parent_id"] == user["id"]
    stats = json.loads(reply["stats"])
    assert stats["generated_tokens"] == finished.stats.generated_tokens
    assert json.loads(reply["sampling"])["temperature"] == 0


# Long enough (with the template's default system prompt) that the first prompt's KV cells are
# reusable: prompts under REPRODUCIBLE_BATCH tokens are always evaluated whole.
LONG_FIRST_MESSAGE = (
    "I run a small greengrocer's shop and want ideas for the autumn window display. Answer "
    "with the name of one fruit and nothing else: no sentences, no lists, no punctuation. "
    "Name a fruit."
)


async def test_the_second_turn_on_the_real_model_finds_its_opening_evaluated(
    make, starter_path, greedy, seen
):
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(starter_path, n_ctx=2048)  # its own: its KV cache is what is tested
    try:
        app = make(engine=engine)
        async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
            await send(pilot, LONG_FIRST_MESSAGE)
            await send(pilot, "Another one?")
        user = engine.token_ids("Another one?")
        after = engine.token_ids("<|im_end|>\n<|im_start|>assistant\n", special=True)
    finally:
        engine.close()
    second = seen.of(PromptEvaluated)[-1].prompt
    # Left for the second reply: the user's words and the scaffold after them, nothing before,
    # in one batch of at least REPRODUCIBLE_BATCH tokens (so the reply is the same as from a
    # fresh prefill).
    left = second.prompt_tokens - second.cached_tokens
    assert left == max(len(user) + len(after), REPRODUCIBLE_BATCH)


async def test_escape_stops_the_real_model_mid_reply(make, real_engine, greedy, seen):
    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.settings = app.chat.settings.replace(max_tokens=400)
        app.chat.prompt.text = "Write a long story about a dragon who learns to fly."
        await pilot.press("enter")
        await wait_until(pilot, lambda: seen.of(TokensArrived))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.chat.job is None)
        await settle(pilot)
    finished = seen.of(ReplyFinished)[0].finished
    assert finished.reason == "cancelled"
    assert 0 < finished.stats.generated_tokens < 400
    reply = messages_rows()[1]
    assert reply["status"] == "stopped" and reply["content"]


async def test_regenerate_on_the_real_model_makes_a_sibling(make, real_engine, greedy):
    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Name three fruits.")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.chat.job is None and len(messages_rows()) == 3)
        await settle(pilot)
        view = list(app.chat.transcript.query(AssistantMessage))[-1]
        assert (view.entry.branch_index, view.entry.branch_total) == (1, 2)
    user, first, second = messages_rows()
    assert first["parent_id"] == second["parent_id"] == user["id"]
    assert first["content"] == second["content"], "greedy decoding repeats itself exactly"
    assert second["status"] == "complete"


async def test_edit_and_resend_branches_on_the_real_model(make, real_engine, greedy):
    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Count from 1 to 10, separated by commas.")
        original = list(app.chat.transcript.query(AssistantMessage))[-1].text
        list(app.chat.transcript.query(UserMessage))[-1].focus()
        await pilot.press("e")
        app.chat.prompt.text = "Count from 20 to 30, separated by commas."
        app.chat.prompt.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.job is None and len(messages_rows()) == 4)
        await settle(pilot)
        edited_view = list(app.chat.transcript.query(AssistantMessage))[-1]
        edited = edited_view.text
        # Two prompts, two replies: not the model's particular words (they differ across CPUs'
        # SIMD paths), but that each is there and the edit did not overwrite the original.
        assert edited.strip() and original.strip()
        user_view = list(app.chat.transcript.query(UserMessage))[-1]
        assert user_view.text == "Count from 20 to 30, separated by commas."
        assert (user_view.entry.branch_index, user_view.entry.branch_total) == (1, 2)
        list(app.chat.transcript.query(UserMessage))[-1].focus()
        await pilot.press("left")
        await settle(pilot)
        texts = [v.text for v in app.chat.transcript.query(MessageView)]
        assert texts == ["Count from 1 to 10, separated by commas.", original]
    first_user, first_reply, second_user, second_reply = messages_rows()
    assert first_user["parent_id"] == second_user["parent_id"], "siblings: a branch, no overwrite"
    assert second_reply["parent_id"] == second_user["id"]
    assert (first_reply["content"], second_reply["content"]) == (original, edited)
    assert second_reply["status"] == "complete"
