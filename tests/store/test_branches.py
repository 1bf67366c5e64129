"""Conversations and messages: ids, titles, the streaming lifecycle and branches."""

from __future__ import annotations

import pytest

from chatterm.errors import UsageError
from chatterm.sampling import SamplingSettings
from chatterm.store import AmbiguousIdError, NotFoundError, title_from
from tests.store.conftest import exchange


def test_ids_are_short_and_any_unambiguous_prefix_finds_them(store):
    conversation = store.create_conversation()
    assert len(conversation.id) == 8 and int(conversation.id, 16) >= 0
    assert store.get_conversation(conversation.id[:1]).id == conversation.id
    assert store.get_conversation(conversation.id.upper()).id == conversation.id


def test_ambiguous_and_unknown_prefixes_are_usage_errors(store):
    for fixed in ("abc00001", "abc00002"):
        store.import_json({"id": fixed, "messages": [{"role": "user", "content": fixed}]})
    with pytest.raises(AmbiguousIdError) as ambiguous:
        store.get_conversation("abc")
    assert "abc00001" in str(ambiguous.value) and "abc00002" in str(ambiguous.value)
    assert store.get_conversation("abc00002").id == "abc00002"
    for unknown in ("ffff", "not-hex", "", "abc000011"):
        with pytest.raises(NotFoundError):
            store.get_conversation(unknown)
    assert isinstance(ambiguous.value, UsageError)  # exit code 2 on the command line


def test_title_comes_from_the_first_user_message(store):
    conversation = store.create_conversation()
    store.add_user_message(conversation.id, "\n\n  How do   tides work?\nAnd why twice a day?")
    store.add_user_message(conversation.id, "A later question")
    assert store.get_conversation(conversation.id).title == "How do tides work?"


def test_long_titles_are_cut_at_a_word():
    title = title_from("word " * 40)
    assert title.endswith("…") and len(title) <= 61 and "wor…" not in title


def test_a_renamed_title_is_kept(store):
    conversation = store.create_conversation(title="My title")
    store.add_user_message(conversation.id, "first message")
    assert store.get_conversation(conversation.id).title == "My title"
    store.rename(conversation.id[:4], "  Renamed\n again ")
    assert store.get_conversation(conversation.id).title == "Renamed again"
    with pytest.raises(UsageError):
        store.rename(conversation.id, "   ")


def test_streaming_lifecycle_saves_each_step(store):
    settings = SamplingSettings(temperature=0.2, seed=7)
    conversation = store.create_conversation(model="m", sampling=settings)
    user = store.add_user_message(conversation.id, "Hello?")
    reply = store.start_assistant_message(
        conversation.id, model="m", model_path="/models/m.gguf", model_hash="h", sampling=settings
    )
    assert reply.status == "streaming" and reply.content == "" and reply.parent_id == user.id
    assert reply.sampling is not None and reply.sampling["seed"] == 7
    store.update_partial(reply.id, "Hel")
    assert store.get_message(reply.id).content == "Hel"
    done = store.finish_assistant_message(
        reply.id,
        "Hello!",
        status="complete",
        stats={"generated_tokens": 3},
        finish_reason="stop",
        logprobs=[{"token": "Hello", "prob": 0.9}],
    )
    assert (done.status, done.content, done.finish_reason) == ("complete", "Hello!", "stop")
    assert done.stats == {"generated_tokens": 3} and done.has_logprobs
    assert (done.model, done.model_path, done.model_hash) == ("m", "/models/m.gguf", "h")
    assert store.logprobs(reply.id) == [{"token": "Hello", "prob": 0.9}]
    store.update_partial(reply.id, "late partial")  # ignored once finished
    assert store.get_message(reply.id).content == "Hello!"
    assert store.get_conversation(conversation.id).sampling_settings() == settings


def test_active_path_follows_the_current_leaf(store):
    conversation = store.create_conversation()
    q1, a1 = exchange(store, conversation.id, "one", "1")
    q2, a2 = exchange(store, conversation.id, "two", "2")
    path = store.active_path(conversation.id)
    assert [m.id for m in path] == [q1.id, a1.id, q2.id, a2.id]
    assert [m.parent_id for m in path] == [None, q1.id, a1.id, q2.id]
    assert [m.to_chat().role for m in path] == ["user", "assistant", "user", "assistant"]


def test_editing_a_user_message_creates_a_branch_and_deletes_nothing(store):
    conversation = store.create_conversation()
    q1, a1 = exchange(store, conversation.id, "one", "1")
    q2, a2 = exchange(store, conversation.id, "two", "2")
    edited = store.edit_user_message(q2.id, "two, edited")
    assert edited.parent_id == a1.id
    assert [m.content for m in store.active_path(conversation.id)] == ["one", "1", "two, edited"]
    siblings = store.siblings(edited.id)
    assert siblings.label == "2/2" and [m.id for m in siblings.messages] == [q2.id, edited.id]
    assert store.siblings(q2.id).label == "1/2"
    assert len(store.messages(conversation.id)) == 5  # the old branch is all still there
    # switching back to the first version restores the reply that followed it
    back = store.switch_branch(q2.id)
    assert [m.content for m in back] == ["one", "1", "two", "2"]
    assert store.get_conversation(conversation.id).current_leaf_id == a2.id


def test_editing_the_first_message_creates_a_second_root(store):
    conversation = store.create_conversation()
    q1, _ = exchange(store, conversation.id, "first", "reply")
    edited = store.edit_user_message(q1.id, "first, again")
    assert edited.parent_id is None
    assert store.siblings(edited.id).label == "2/2"
    assert [m.content for m in store.active_path(conversation.id)] == ["first, again"]


def test_regenerate_adds_an_assistant_sibling(store):
    conversation = store.create_conversation()
    q1, a1 = exchange(store, conversation.id, "question", "first answer")
    again = store.regenerate(a1.id, model="m2", sampling={"seed": 2})
    assert again.status == "streaming" and again.parent_id == q1.id and again.model == "m2"
    store.finish_assistant_message(again.id, "second answer")
    assert [m.content for m in store.active_path(conversation.id)] == ["question", "second answer"]
    assert store.siblings(a1.id).label == "1/2" and store.siblings(again.id).label == "2/2"
    with pytest.raises(UsageError):
        store.regenerate(q1.id)
    with pytest.raises(UsageError):
        store.edit_user_message(a1.id, "not a user message")


def test_switch_branch_goes_to_the_newest_message_below(store):
    conversation = store.create_conversation()
    q1, a1 = exchange(store, conversation.id, "q", "a")
    q2, a2 = exchange(store, conversation.id, "q2", "a2")
    other = store.regenerate(a1.id)
    store.finish_assistant_message(other.id, "other a")
    assert [m.content for m in store.switch_branch(a1.id)] == ["q", "a", "q2", "a2"]
    assert [m.content for m in store.switch_branch(other.id)] == ["q", "other a"]
    assert [m.content for m in store.active_path(conversation.id)] == ["q", "other a"]


def test_branch_positions_label_every_message_in_one_call(store):
    conversation = store.create_conversation()
    q1, a1 = exchange(store, conversation.id, "q", "a")
    a1b = store.regenerate(a1.id)
    a1c = store.regenerate(a1.id)
    positions = store.branch_positions(conversation.id)
    assert positions == {q1.id: (1, 1), a1.id: (1, 3), a1b.id: (2, 3), a1c.id: (3, 3)}


def test_a_parent_from_another_conversation_is_refused(store):
    one = store.create_conversation()
    two = store.create_conversation()
    q1, _ = exchange(store, one.id, "q", "a")
    with pytest.raises(NotFoundError):
        store.add_user_message(two.id, "hi", parent_id=q1.id)


def test_update_conversation_settings(store):
    conversation = store.create_conversation(model="a", sampling={"temperature": 1.0})
    updated = store.update_conversation(
        conversation.id,
        model="b",
        persona="pirate",
        system_prompt="Arr.",
        sampling=SamplingSettings(temperature=0.1),
    )
    assert (updated.model, updated.persona, updated.system_prompt) == ("b", "pirate", "Arr.")
    assert updated.sampling["temperature"] == 0.1
    assert updated.updated == conversation.updated  # settings do not reorder the list


def test_list_is_most_recent_first_and_limited(store):
    older = store.create_conversation()
    newer = store.create_conversation()
    exchange(store, newer.id, "n", "n")
    exchange(store, older.id, "o", "o")  # activity moves it to the top
    assert [c.id for c in store.list_conversations()] == [older.id, newer.id]
    assert store.most_recent().id == older.id
    assert [c.id for c in store.list_conversations(limit=1)] == [older.id]
    assert store.list_conversations()[0].message_count == 2
