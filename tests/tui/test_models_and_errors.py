"""Model loading in a worker, and errors as notifications: a model that fails to load keeps the
previous one; a prompt that does not fit puts the text back in the input; nothing crashes."""

from __future__ import annotations

import threading

from chatterm.engine.fake import FakeEngine
from chatterm.errors import ContextOverflowError
from chatterm.tui.messages import ModelLoaded, ModelLoadFailed, ReplyFailed
from chatterm.tui.screens.picker import PickerScreen
from chatterm.tui.widgets.message_view import AssistantMessage, MessageView

from .helpers import failing_loader, messages_rows, send, settle, wait_until


class OverflowEngine(FakeEngine):
    """Raises like the llama.cpp engine does when the newest message cannot fit."""

    def generate(self, messages, sampling, *, top_logprobs=0, cancel=None):
        raise ContextOverflowError("the message needs 9000 tokens, the window is 2048")
        yield  # pragma: no cover - makes this a generator, as the real one is


class BrokenEngine(FakeEngine):
    def generate(self, messages, sampling, *, top_logprobs=0, cancel=None):
        yield from ()
        raise RuntimeError("GPU on fire")


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_the_model_loads_in_a_worker_after_the_first_paint(make, seen):
    loaded = FakeEngine(name="loaded-later")
    gate = threading.Event()

    def load(options):
        gate.wait(10)
        return loaded

    app = make(engine=None, load_engine=load)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        assert app.chat.engine is None
        assert app.chat.query_one("#model-progress").display
        gate.set()
        await settle(pilot)
        assert app.chat.engine is loaded
        assert seen.of(ModelLoaded)[0].engine is loaded
        assert not app.chat.query_one("#model-progress").display
        assert "loaded-later" in str(app.chat.query_one("#model-info").render())


async def test_a_message_sent_while_loading_goes_out_when_the_model_is_ready(make):
    loaded = FakeEngine(name="late").enqueue("ready now")
    gate = threading.Event()

    def load(options):
        gate.wait(10)
        return loaded

    app = make(engine=None, load_engine=load)
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "early question"
        await pilot.press("enter")
        await pilot.pause()
        assert app.chat.pending == "early question"
        gate.set()
        await wait_until(pilot, lambda: loaded.calls and app.chat.job is None)
        await settle(pilot)
    assert [r["content"] for r in messages_rows()] == ["early question", "ready now"]


async def test_a_model_that_fails_to_load_keeps_the_previous_one(make, fake, seen):
    app = make(load_engine=failing_loader("broken.gguf: not a GGUF file"))
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, PickerScreen)
        await pilot.press(*"smollm2", "enter")
        await settle(pilot)
        assert seen.of(ModelLoadFailed)
        assert app.chat.engine is fake
        assert any(
            "not a GGUF file" in n and "still using fake-model" in n for n in notifications(app)
        )
        await send(pilot, "still works")
    assert messages_rows()[-1]["status"] == "complete"


async def test_the_model_picker_loads_the_chosen_model(make, fake, seen):
    other = FakeEngine(name="smollm2-135m-instruct")
    chosen = []

    def load(options):
        chosen.append(options)
        return other

    app = make(load_engine=load)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press(*"smollm2", "enter")
        await settle(pilot)
        assert chosen[0].model == "smollm2-135m-instruct"
        assert app.chat.engine is other
        await send(pilot, "hi")
    assert messages_rows()[-1]["model"] == "smollm2-135m-instruct"


async def test_context_overflow_is_a_notification_and_the_text_comes_back(make, seen):
    app = make(engine=OverflowEngine())
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await send(pilot, "a very long paste")
        assert seen.of(ReplyFailed)
        assert app.chat.prompt.text == "a very long paste"
        assert any("9000 tokens" in n for n in notifications(app))
        # A refused message is not history (issue 20; the rule is chatterm.store.turn's).
        assert not list(app.chat.transcript.query(MessageView))
        assert app.chat.conversation is None and not messages_rows()
        assert app.is_running
        app.chat.engine = FakeEngine().enqueue("fits now")
        await send(pilot, "a shorter paste")
        assert [v.text for v in app.chat.transcript.query(AssistantMessage)] == ["fits now"]
    user, reply = messages_rows()
    assert (user["content"], user["parent_id"]) == ("a shorter paste", None)
    assert reply["content"] == "fits now"


async def test_a_refused_message_in_a_conversation_leaves_its_branch_as_it_was(make, fake, seen):
    fake.enqueue("first answer")
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await send(pilot, "first question")
        before = messages_rows()
        app.chat.engine = OverflowEngine()
        await send(pilot, "a very long paste")
        assert seen.of(ReplyFailed)
        assert app.chat.prompt.text == "a very long paste"
        assert [v.text for v in app.chat.transcript.query(MessageView)] == [
            "first question",
            "first answer",
        ]
        path = app.chat.store.active_path(app.chat.conversation.id)
        assert [m.content for m in path] == ["first question", "first answer"]
    assert messages_rows() == before


async def test_an_unexpected_engine_crash_is_reported_not_raised(make):
    app = make(engine=BrokenEngine())
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "hello")
        assert app.is_running
        assert app.chat.prompt.text == "hello"
        assert any("GPU on fire" in n for n in notifications(app))
    assert messages_rows()[-1]["status"] == "error"


async def test_sending_with_no_model_keeps_the_text(make):
    app = make(engine=None, load_engine=failing_loader("no model installed"))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.chat.prompt.text = "anyone there?"
        await pilot.press("enter")
        await pilot.pause()
        assert app.chat.prompt.text == "anyone there?"
    assert messages_rows() == []


async def test_a_failing_history_database_is_a_notification_and_keeps_the_text(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.store.close()  # every store call now fails as a broken database would
        app.chat.prompt.text = "do not lose me"
        await pilot.press("enter")
        await settle(pilot)
        assert app.is_running
        assert app.chat.prompt.text == "do not lose me"
        assert any("history database" in n for n in notifications(app))
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.is_running
