"""The conversation list and reopening: most recent first, live search, rename, delete with
confirmation, new chat, collapsing; and a reopened app shows the same conversations, settings
and branches."""

from __future__ import annotations

import json

from textual.widgets import Input, OptionList

from chatterm.store import ConversationStore
from chatterm.tui.screens.dialogs import ConfirmScreen, TextPromptScreen
from chatterm.tui.widgets.conversation_list import ConversationList
from chatterm.tui.widgets.message_view import AssistantMessage, MessageView
from chatterm.tui.widgets.sampling_panel import SettingInput
from chatterm.tui.widgets.transcript import Transcript

from .helpers import db_rows, send, settle, wait_until


def listed(app) -> list[str]:
    return [item.title for item in app.chat.conversations.items]


async def test_list_shows_most_recent_first_and_new_chat_starts_empty(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "about cats")
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.chat.transcript.entries == []
        assert app.chat.conversation is None
        await send(pilot, "about dogs")
        assert listed(app) == ["about dogs", "about cats"]
        assert app.chat.conversations.current_id == app.chat.conversation.id
    assert len(db_rows("SELECT id FROM conversations")) == 2


async def test_selecting_a_conversation_opens_it(make, fake, seen):
    fake.enqueue("meow", "woof")
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await send(pilot, "about cats")
        await pilot.press("ctrl+n")
        await send(pilot, "about dogs")
        options = app.chat.query_one(OptionList)
        options.focus()
        options.highlighted = 1
        await pilot.press("enter")
        await settle(pilot)
        assert seen.of(ConversationList.Selected)
        assert [v.text for v in app.chat.transcript.query(MessageView)] == ["about cats", "meow"]
        await send(pilot, "and more")
    assert [m.content for m in fake.calls[-1].messages] == ["about cats", "meow", "and more"]


async def test_search_filters_by_message_text(make, fake):
    fake.enqueue("Cats purr when content.", "Dogs bark.")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "first topic")
        await pilot.press("ctrl+n")
        await send(pilot, "second topic")
        await pilot.press("ctrl+f")
        search = app.chat.query_one("#conversation-search", Input)
        assert search.has_focus
        await pilot.press(*"purr")
        await settle(pilot)
        assert listed(app) == ["first topic"]
        assert "purr" in app.chat.conversations.items[0].snippet
        await pilot.press("enter")
        await settle(pilot)
        assert [v.text for v in app.chat.transcript.query(MessageView)][0] == "first topic"


async def test_rename_from_the_list(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "old title")
        app.chat.query_one(OptionList).focus()
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, TextPromptScreen)
        field = app.screen.query_one(Input)
        field.value = "New title"
        await pilot.press("enter")
        await settle(pilot)
        assert listed(app) == ["New title"]
    assert [r["title"] for r in db_rows("SELECT title FROM conversations")] == ["New title"]


async def test_delete_asks_first_and_cancel_keeps_it(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "keep me")
        app.chat.query_one(OptionList).focus()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert listed(app) == ["keep me"]
    assert len(db_rows("SELECT id FROM messages")) == 2


async def test_delete_confirmed_removes_the_conversation_and_its_messages(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "delete me")
        app.chat.query_one(OptionList).focus()
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert listed(app) == []
        assert app.chat.conversation is None
        assert app.chat.transcript.entries == []
    assert db_rows("SELECT id FROM conversations") == []
    assert db_rows("SELECT id FROM messages") == []


async def test_the_conversation_list_collapses(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+b")
        assert not app.chat.conversations.display
        await pilot.press("ctrl+b")
        assert app.chat.conversations.display


async def test_reopening_shows_the_same_conversations_settings_and_branches(make, fake):
    fake.enqueue("first reply", "second reply")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        field = app.chat.query_one("#setting-temperature", SettingInput)
        field.value = "0.3"
        await pilot.pause()
        await send(pilot, "remember me")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(fake.calls) == 2 and app.chat.job is None)
        await settle(pilot)
        await pilot.press("ctrl+q")

    again = make()
    async with again.run_test(size=(120, 40)) as pilot:
        assert listed(again) == ["remember me"]
        await again.chat.open_conversation(again.chat.conversations.items[0].id)
        await settle(pilot)
        views = list(again.chat.transcript.query(MessageView))
        assert [v.text for v in views] == ["remember me", "second reply"]
        reply = views[-1]
        assert (reply.entry.branch_index, reply.entry.branch_total) == (1, 2)
        assert again.chat.settings.temperature == 0.3
        assert again.chat.query_one("#setting-temperature", SettingInput).value == "0.3"
        reply.focus()
        await pilot.press("left")
        await settle(pilot)
        assert list(again.chat.transcript.query(AssistantMessage))[-1].text == "first reply"


async def test_a_long_conversation_mounts_only_the_last_page(make, fake):
    store = ConversationStore()
    conversation = store.create_conversation(title="long one")
    for i in range(250):
        store.add_user_message(conversation.id, f"question {i}")
        reply = store.start_assistant_message(conversation.id, model="fake-model")
        store.finish_assistant_message(reply.id, f"answer {i}")
    store.close()
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.chat.open_conversation(conversation.id)
        await settle(pilot)
        transcript = app.chat.query_one(Transcript)
        assert len(transcript.entries) == 500
        mounted = list(transcript.query(MessageView))
        assert Transcript.MIN_PAGE <= len(mounted) < Transcript.PAGE
        assert mounted[-1].text == "answer 249"
        assert transcript.mounted_from == 500 - len(mounted)
        older = str(transcript.query_one("#older").render())
        assert f"{500 - len(mounted)} earlier messages" in older
        transcript.scroll_home(animate=False, immediate=True)
        await wait_until(pilot, lambda: len(list(transcript.query(MessageView))) > len(mounted))
        await settle(pilot)
        more = list(transcript.query(MessageView))
        assert more[-1].text == "answer 249"
        assert [v.text for v in more] == [e.content for e in transcript.entries[-len(more) :]]
        assert transcript.scroll_y > 0, "what was on screen stays on screen"


async def test_settings_saved_per_conversation(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "a")
        field = app.chat.query_one("#setting-max_tokens", SettingInput)
        field.value = "64"
        await pilot.pause()
    (row,) = db_rows("SELECT sampling FROM conversations")
    assert json.loads(row["sampling"])["max_tokens"] == 64


async def test_a_reply_keeps_streaming_while_another_conversation_is_open(make, fake, seen):
    from chatterm.tui.messages import TokensArrived

    long_reply = " ".join(f"w{i}" for i in range(300))
    fake.delay = 0.02
    fake.enqueue("short", long_reply)
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await send(pilot, "other topic")
        other = app.chat.conversation.id
        await pilot.press("ctrl+n")
        app.chat.prompt.text = "tell me a lot"
        await pilot.press("enter")
        await wait_until(pilot, lambda: seen.of(TokensArrived))
        streaming = app.chat.conversation.id
        await app.chat.open_conversation(other)
        await pilot.pause()  # not settle(): that would wait for the streaming reply
        assert [v.text for v in app.chat.transcript.query(MessageView)] == ["other topic", "short"]
        await app.chat.open_conversation(streaming)
        assert app.chat.job is not None, "the reply is still streaming when we come back"
        await wait_until(pilot, lambda: app.chat.job is None)
        await settle(pilot)
        assert list(app.chat.transcript.query(AssistantMessage))[-1].text == long_reply
    rows = db_rows("SELECT content, status FROM messages WHERE role = 'assistant' ORDER BY id")
    assert [(r["content"], r["status"]) for r in rows] == [
        ("short", "complete"),
        (long_reply, "complete"),
    ]


async def test_rename_keeps_the_highlight_on_that_conversation_so_delete_asks_about_it(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        for topic in ("about cats", "about dogs", "about fish"):
            await pilot.press("ctrl+n")
            await send(pilot, topic)
        options = app.chat.query_one(OptionList)
        options.focus()
        options.highlighted = 2  # "about cats", not the open conversation
        await pilot.press("f2")
        await pilot.pause()
        app.screen.query_one(Input).value = "Cats, renamed"
        await pilot.press("enter")
        await settle(pilot)
        assert options.highlighted_option is not None
        chosen = options.highlighted_option.id
        assert app.chat.store.get_conversation(chosen).title == "Cats, renamed"
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "Cats, renamed" in str(app.screen.query_one(".dialog-question").render())


async def test_a_list_that_gets_focus_highlights_a_row_so_enter_opens_it(make, fake):
    fake.enqueue("meow")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "about cats")
        await pilot.press("ctrl+n")
        await settle(pilot)
        options = app.chat.query_one(OptionList)
        options.highlighted = None
        options.focus()
        await pilot.pause()
        assert options.highlighted == 0
        await pilot.press("enter")
        await settle(pilot)
        assert [v.text for v in app.chat.transcript.query(MessageView)] == ["about cats", "meow"]


async def test_the_list_says_how_many_older_conversations_it_holds_back_and_shows_them(
    make, fake, monkeypatch
):
    from chatterm.tui.screens.conversations import ConversationsScreen
    from chatterm.tui.widgets.conversation_list import MORE_ID

    monkeypatch.setattr(ConversationsScreen, "list_limit", 3)
    with ConversationStore() as store:
        for n in range(5):
            conversation = store.create_conversation()
            store.add_user_message(conversation.id, f"question {n}")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        options = app.chat.query_one(OptionList)
        assert len(app.chat.conversations.items) == 3
        last = options.get_option_at_index(options.option_count - 1)
        assert last.id == MORE_ID and "2 older conversations" in str(last.prompt)
        options.focus()
        options.highlighted = options.option_count - 1
        await pilot.press("enter")
        await settle(pilot)
        assert listed(app) == [f"question {n}" for n in (4, 3, 2, 1, 0)]
        assert options.highlighted == 3, "on the first conversation it brought in"
        assert all(o.id != MORE_ID for o in options.options)


async def test_conversations_another_process_saves_appear_in_the_list(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "mine")
        with ConversationStore() as other:  # its own connection, as a second app has
            elsewhere = other.create_conversation()
            other.add_user_message(elsewhere.id, "from another app")
        await wait_until(pilot, lambda: "from another app" in listed(app), timeout=30)
        assert listed(app) == ["from another app", "mine"]
