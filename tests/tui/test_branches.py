"""Regenerate, edit-and-resend and branch navigation: siblings in the store, "branch 2/3" on
screen, and the branch shown being the one sent to the model."""

from __future__ import annotations

from chatterm.tui.widgets.message_view import AssistantMessage, MessageView, UserMessage

from .helpers import messages_rows, settle, wait_until


async def test_ctrl_r_regenerates_the_last_reply_as_a_sibling(make, fake, seen):
    fake.enqueue("first answer", "second answer")
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "question"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.job is None)
        await settle(pilot)
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(fake.calls) == 2 and app.chat.job is None)
        await settle(pilot)
        replies = list(app.chat.transcript.query(AssistantMessage))
        assert [r.text for r in replies] == ["second answer"]
        assert (replies[0].entry.branch_index, replies[0].entry.branch_total) == (1, 2)
        assert "branch 2/2" in str(replies[0].header_content())
        assert seen.of(AssistantMessage.RegenerateRequested) == []
    rows = messages_rows()
    user = rows[0]
    assert [(r["role"], r["parent_id"], r["content"]) for r in rows[1:]] == [
        ("assistant", user["id"], "first answer"),
        ("assistant", user["id"], "second answer"),
    ]
    assert [m.content for m in fake.calls[1].messages] == ["question"]


async def test_r_on_a_focused_reply_regenerates_it(make, fake, seen):
    fake.enqueue("a", "b")
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        app.chat.prompt.text = "q"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.job is None)
        await settle(pilot)
        list(app.chat.transcript.query(AssistantMessage))[-1].focus()
        await pilot.press("r")
        await wait_until(pilot, lambda: len(fake.calls) == 2 and app.chat.job is None)
        await settle(pilot)
        assert seen.of(AssistantMessage.RegenerateRequested)
    assert [r["content"] for r in messages_rows() if r["role"] == "assistant"] == ["a", "b"]


async def test_left_and_right_switch_between_sibling_replies(make, fake):
    fake.enqueue("one", "two", "three")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "q"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.job is None)
        for n in (2, 3):
            await settle(pilot)
            await pilot.press("ctrl+r")
            await wait_until(pilot, lambda n=n: len(fake.calls) == n and app.chat.job is None)
        await settle(pilot)

        def shown() -> tuple[str, int, int]:
            view = list(app.chat.transcript.query(AssistantMessage))[-1]
            return view.text, view.entry.branch_index + 1, view.entry.branch_total

        assert shown() == ("three", 3, 3)
        list(app.chat.transcript.query(AssistantMessage))[-1].focus()
        await pilot.press("left")
        await settle(pilot)
        assert shown() == ("two", 2, 3)
        await pilot.press("left")
        await settle(pilot)
        assert shown() == ("one", 1, 3)
        await pilot.press("right")
        await settle(pilot)
        assert shown() == ("two", 2, 3)
        conversation = app.chat.store.get_conversation(app.chat.conversation.id)
        assert (
            conversation.current_leaf_id
            == list(app.chat.transcript.query(MessageView))[-1].message_id
        )


async def test_editing_an_earlier_prompt_creates_a_branch(make, fake, seen):
    fake.enqueue("A1", "A2", "B1")
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        for text in ("first", "second"):
            app.chat.prompt.text = text
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.chat.job is None)
            await settle(pilot)
        first = list(app.chat.transcript.query(UserMessage))[0]
        first.focus()
        await pilot.press("e")
        await pilot.pause()
        assert seen.of(UserMessage.EditRequested)
        assert app.chat.prompt.text == "first"
        assert app.chat.query_one("#edit-banner").display
        app.chat.prompt.text = "first, edited"
        app.chat.prompt.focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(fake.calls) == 3 and app.chat.job is None)
        await settle(pilot)
        users = list(app.chat.transcript.query(UserMessage))
        assert [u.text for u in users] == ["first, edited"]
        assert (users[0].entry.branch_index, users[0].entry.branch_total) == (1, 2)
        assert [a.text for a in app.chat.transcript.query(AssistantMessage)] == ["B1"]
        assert not app.chat.query_one("#edit-banner").display
    rows = messages_rows()
    original = next(r for r in rows if r["content"] == "first")
    edited = next(r for r in rows if r["content"] == "first, edited")
    assert edited["parent_id"] == original["parent_id"]
    assert len(rows) == 6, "nothing was deleted: both branches are kept"
    assert [m.content for m in fake.calls[-1].messages] == ["first, edited"]


async def test_switching_back_to_the_first_branch_shows_what_followed_it(make, fake):
    fake.enqueue("A1", "A2", "B1")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        for text in ("first", "second"):
            app.chat.prompt.text = text
            await pilot.press("enter")
            await wait_until(pilot, lambda: app.chat.job is None)
            await settle(pilot)
        await pilot.press("ctrl+g")  # edit the last prompt
        assert app.chat.prompt.text == "second"
        app.chat.prompt.text = "second again"
        await pilot.press("enter")
        await wait_until(pilot, lambda: len(fake.calls) == 3 and app.chat.job is None)
        await settle(pilot)
        assert [u.text for u in app.chat.transcript.query(UserMessage)] == ["first", "second again"]
        list(app.chat.transcript.query(UserMessage))[-1].focus()
        await pilot.press("left")
        await settle(pilot)
        texts = [v.text for v in app.chat.transcript.query(MessageView)]
        assert texts == ["first", "A1", "second", "A2"]


async def test_escape_cancels_an_edit_and_keeps_the_branch(make, fake):
    fake.enqueue("A1")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "first"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.job is None)
        await settle(pilot)
        await pilot.press("ctrl+g")
        assert app.chat.editing is not None
        await pilot.press("escape")
        assert app.chat.editing is None
        assert app.chat.prompt.text == ""
    assert len(messages_rows()) == 2
