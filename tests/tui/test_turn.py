"""One chat turn: send, stream, stop, quit — the messages posted and the rows saved."""

from __future__ import annotations

import json

from chatterm.tui import generation
from chatterm.tui.messages import (
    GenerationProgress,
    PromptEvaluated,
    ReplyFinished,
    TokensArrived,
)
from chatterm.tui.widgets.message_view import AssistantMessage, UserMessage
from chatterm.tui.widgets.prompt_input import PromptInput

from .helpers import messages_rows, send, settle, wait_until

LONG = " ".join(f"word{i}" for i in range(400))


async def test_send_posts_submitted_then_tokens_then_finished(make, fake, seen):
    fake.enqueue("Hello there, **friend**.")
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await send(pilot, "hi")
        order = seen.names(PromptInput.Submitted, PromptEvaluated, TokensArrived, ReplyFinished)
        assert order == ["Submitted", "PromptEvaluated", "TokensArrived", "ReplyFinished"]
        assert "".join(m.text for m in seen.of(TokensArrived)) == "Hello there, **friend**."
        assert seen.of(ReplyFinished)[0].finished.reason == "stop"
        views = list(app.chat.transcript.query(AssistantMessage))
        assert views[-1].text == "Hello there, **friend**."
        assert app.chat.prompt.text == ""


async def test_send_saves_user_message_and_reply_with_snapshot(make, fake):
    fake.enqueue("Paris.")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Capital of France?")
    user, reply = messages_rows()
    assert (user["role"], user["content"], user["status"]) == (
        "user",
        "Capital of France?",
        "complete",
    )
    assert reply["parent_id"] == user["id"]
    assert (reply["content"], reply["status"], reply["finish_reason"]) == (
        "Paris.",
        "complete",
        "stop",
    )
    assert reply["model"] == "fake-model"
    sampling = json.loads(reply["sampling"])
    assert sampling["seed"] >= 0, "the snapshot records the concrete seed used"
    assert json.loads(reply["stats"])["generated_tokens"] == 1


async def test_user_message_is_saved_before_the_reply_starts(make, fake, seen):
    fake.delay = 0.05
    fake.enqueue(LONG)
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "tell me a long story"
        await pilot.press("enter")
        await wait_until(pilot, lambda: seen.of(TokensArrived))
        rows = messages_rows()
        assert [r["role"] for r in rows] == ["user", "assistant"]
        assert rows[0]["content"] == "tell me a long story"
        assert rows[1]["status"] == "streaming"
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.chat.job is None)


async def test_stream_comes_in_batches_and_partial_text_is_saved(make, fake, seen, monkeypatch):
    monkeypatch.setattr(generation, "SAVE_INTERVAL", 0.05)
    fake.delay = 0.01
    fake.enqueue(LONG)
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "go"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(seen.of(TokensArrived)) >= 3)
        partial = messages_rows()[1]
        assert partial["status"] == "streaming"
        assert partial["content"] and LONG.startswith(partial["content"])
        await wait_until(pilot, lambda: app.chat.job is None)
        await settle(pilot)
    batches = seen.of(TokensArrived)
    assert 3 <= len(batches) < 400, "tokens are coalesced, not posted one by one"
    assert sum(b.tokens for b in batches) == 400
    assert seen.of(GenerationProgress)
    assert messages_rows()[1]["content"] == LONG


async def test_escape_stops_the_reply_and_keeps_partial_text(make, fake, seen):
    fake.delay = 0.02
    fake.enqueue(LONG)
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "go"
        await pilot.press("enter")
        await wait_until(pilot, lambda: seen.of(TokensArrived))
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.chat.job is None)
        await settle(pilot)
        view = list(app.chat.transcript.query(AssistantMessage))[-1]
        assert view.entry.status == "stopped"
        assert "stopped" in str(view.header_content())
    assert seen.of(ReplyFinished)[-1].finished.reason == "cancelled"
    reply = messages_rows()[1]
    assert reply["status"] == "stopped"
    assert reply["finish_reason"] == "cancelled"
    assert reply["content"] and LONG.startswith(reply["content"]) and reply["content"] != LONG


async def test_ctrl_c_does_not_quit_mid_reply(make, fake, seen):
    fake.delay = 0.01
    fake.enqueue(" ".join(["tok"] * 60))
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "go"
        await pilot.press("enter")
        await wait_until(pilot, lambda: seen.of(TokensArrived))
        await pilot.press("ctrl+c")
        await wait_until(pilot, lambda: app.chat.job is None)
        assert app.is_running and app.return_code is None
        assert seen.of(ReplyFinished)[-1].finished.reason == "stop"


async def test_ctrl_q_quits_with_exit_code_zero(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+q")
        await pilot.pause()
    assert app.return_code == 0


async def test_quitting_mid_reply_saves_the_partial_reply_as_stopped(make, fake, seen):
    fake.delay = 0.02
    fake.enqueue(LONG)
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "go"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(seen.of(TokensArrived)) >= 2)
        await pilot.press("ctrl+q")
    assert app.return_code == 0
    reply = messages_rows()[1]
    assert reply["status"] == "stopped"
    assert reply["content"] and LONG.startswith(reply["content"])


async def test_sending_while_a_reply_streams_keeps_the_new_text(make, fake, seen):
    fake.delay = 0.02
    fake.enqueue(LONG)
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "first"
        await pilot.press("enter")
        await wait_until(pilot, lambda: seen.of(TokensArrived))
        app.chat.prompt.text = "second"
        await pilot.press("enter")
        await pilot.pause()
        assert app.chat.prompt.text == "second"
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.chat.job is None)
    assert [r["content"] for r in messages_rows() if r["role"] == "user"] == ["first"]


async def test_transcript_shows_both_sides(make, fake):
    fake.enqueue("Four.")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "2+2?")
        users = list(app.chat.transcript.query(UserMessage))
        replies = list(app.chat.transcript.query(AssistantMessage))
        assert [u.text for u in users] == ["2+2?"]
        assert [r.text for r in replies] == ["Four."]
        assert replies[0].entry.status == "complete"


async def test_history_includes_earlier_turns(make, fake):
    fake.enqueue("One.", "Two.")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "first")
        await send(pilot, "second")
    sent = [(m.role, m.content) for m in fake.calls[-1].messages]
    assert sent == [("user", "first"), ("assistant", "One."), ("user", "second")]


async def test_after_each_reply_the_engine_warms_up_for_the_next_turn(make, fake):
    fake.enqueue("One.", "Two.")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "first")
        await wait_until(pilot, lambda: len(fake.warmed) == 1)
        await send(pilot, "second")
        await wait_until(pilot, lambda: len(fake.warmed) == 2)
    # The conversation as the next turn will send it: what was asked, then the saved reply.
    assert [(m.role, m.content) for m in fake.warmed[-1]] == [
        ("user", "first"),
        ("assistant", "One."),
        ("user", "second"),
        ("assistant", "Two."),
    ]


async def test_an_open_code_fence_streams_as_plain_text_and_renders_once_at_the_end(
    make, fake, seen
):
    from textual.widgets import Markdown
    from textual.widgets._markdown import MarkdownFence

    from chatterm.tui.widgets.open_block import OpenBlock

    code = "\n".join(f"x{i} = {i}" for i in range(60))
    fake.delay = 0.005
    fake.enqueue(f"Intro.\n\n```python\n{code}\n```\n\nOutro.")
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "code please"
        await pilot.press("enter")
        view = None

        def fence_is_open() -> bool:
            nonlocal view
            views = list(app.chat.transcript.query(AssistantMessage))
            view = views[-1] if views else None
            return view is not None and view.text.count("\n") > 40

        await wait_until(pilot, fence_is_open)
        block = view.query_one(OpenBlock)
        assert block.display and list(block.query(".frozen")), "full chunks are frozen"
        assert not list(view.query(MarkdownFence)), "the open fence is not parsed as Markdown"
        await wait_until(pilot, lambda: app.chat.job is None)
        await settle(pilot)
        assert not view.query_one(OpenBlock).display
        (fence,) = view.query_one(Markdown).query(MarkdownFence)
        assert fence.code == code


async def test_the_input_cursor_holds_still_while_a_reply_streams(make, fake, seen):
    fake.delay = 0.01
    fake.enqueue(" ".join(["tok"] * 80))
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        assert app.chat.prompt.cursor_blink
        app.chat.prompt.text = "go"
        await pilot.press("enter")
        await wait_until(pilot, lambda: seen.of(TokensArrived))
        assert not app.chat.prompt.cursor_blink, "blinking repaints cost the decode CPU time"
        await wait_until(pilot, lambda: app.chat.job is None)
        assert app.chat.prompt.cursor_blink


async def test_sigterm_mid_reply_saves_the_partial_reply_and_exits_143(make, fake, seen):
    """A terminal closing or ``kill`` quits as ctrl+q does (the handler is the app's own:
    without it the signal would end the test run, so it is checked first)."""
    import os
    import signal

    fake.delay = 0.02
    fake.enqueue(LONG)
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "go"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(seen.of(TokensArrived)) >= 2)
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
        os.kill(os.getpid(), signal.SIGTERM)
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 143
    reply = messages_rows()[1]
    assert reply["status"] == "stopped"
    assert reply["content"] and LONG.startswith(reply["content"])
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)  # handed back on exit
