"""Full-text search (FTS5) over every message, kept in sync by triggers."""

from __future__ import annotations

import pytest

from tests.store.conftest import exchange


@pytest.fixture
def filled(store):
    cooking = store.create_conversation()
    exchange(store, cooking.id, "How long should I boil an egg?", "About nine minutes.")
    space = store.create_conversation()
    exchange(store, space.id, "Why is Mars red?", "Iron oxide dust covers its surface.")
    return store, cooking, space


def test_search_finds_user_and_assistant_text(filled):
    store, cooking, space = filled
    assert [(h.conversation_id, h.role) for h in store.search("boil")] == [(cooking.id, "user")]
    hits = store.search("oxide")
    assert [(h.conversation_id, h.role) for h in hits] == [(space.id, "assistant")]
    assert hits[0].text == "Iron oxide dust covers its surface."
    assert "[oxide]" in hits[0].snippet and hits[0].conversation_title == "Why is Mars red?"


def test_words_match_as_prefixes_ignoring_case_and_all_must_appear(filled):
    store, cooking, _ = filled
    assert [h.conversation_id for h in store.search("MINUTE")] == [cooking.id]
    assert [h.conversation_id for h in store.search("nine min")] == [cooking.id]
    assert store.search("nine mars") == []


def test_search_syntax_in_the_query_is_taken_literally(filled):
    store, _, space = filled
    for query in ('"mars', "mars*", "(mars)", "-mars", "^mars:", "mars'", '"mars"*'):
        assert [h.conversation_id for h in store.search(query)] == [space.id], query
    assert store.search("mars AND boil OR") == []  # operators are plain words here
    assert store.search("???") == []
    assert store.search("") == []


def test_streamed_text_is_searchable_and_deleted_text_is_not(filled):
    store, cooking, _ = filled
    reply = store.start_assistant_message(cooking.id)
    store.update_partial(reply.id, "Soft-boiled takes six")
    assert [h.message_id for h in store.search("six")] == [reply.id]
    store.finish_assistant_message(reply.id, "Soft-boiled takes seven")
    assert store.search("six") == []
    assert [h.message_id for h in store.search("seven")] == [reply.id]
    store.delete(cooking.id)
    assert store.search("seven") == [] and store.search("boil") == []


def test_search_covers_every_branch(filled):
    store, cooking, _ = filled
    first = store.active_path(cooking.id)[0]
    store.edit_user_message(first.id, "How long to poach an egg?")
    assert [h.message_id for h in store.search("boil")] == [first.id]


def test_list_can_filter_by_title_or_message_text(filled):
    store, cooking, space = filled
    assert [c.id for c in store.list_conversations(search="iron")] == [space.id]
    store.rename(cooking.id, "Breakfast notes")
    assert [c.id for c in store.list_conversations(search="breakfast")] == [cooking.id]
    assert [c.id for c in store.list_conversations(search="fast note")] == [cooking.id]
    assert store.list_conversations(search="lunch") == []
    assert len(store.list_conversations(search="  ")) == 2
