"""Export to JSON and Markdown, and import back: a lossless round trip."""

from __future__ import annotations

import json

import pytest

from chatterm.store import ImportFormatError
from tests.store.conftest import exchange


@pytest.fixture
def branched(store):
    conversation = store.create_conversation(
        model="m", persona="tutor", system_prompt="Be brief.", sampling={"temperature": 0.3}
    )
    q1, a1 = exchange(store, conversation.id, "What is 2+2?", "4")
    again = store.regenerate(a1.id, model="m", sampling={"seed": 9})
    store.finish_assistant_message(
        again.id, "Four.  ", status="stopped", stats={"generated_tokens": 2},
        finish_reason="cancelled", logprobs=[{"token": "Four", "prob": 0.5}],
    )  # fmt: skip
    store.switch_branch(a1.id)
    return store, store.get_conversation(conversation.id)


def test_json_export_has_the_fields_and_every_message(branched):
    store, conversation = branched
    data = store.export_json(conversation.id)
    assert data["id"] == conversation.id and data["title"] == "What is 2+2?"
    assert {"created", "updated", "model", "persona", "system_prompt", "sampling"} <= set(data)
    assert [(m["role"], m["content"]) for m in data["messages"]] == [
        ("user", "What is 2+2?"),
        ("assistant", "4"),
        ("assistant", "Four.  "),
    ]
    assert [m["active"] for m in data["messages"]] == [True, True, False]
    assert [m["parent_id"] for m in data["messages"]] == [None, 1, 1]
    assert data["messages"][2]["logprobs"] == [{"token": "Four", "prob": 0.5}]
    json.dumps(data)  # JSON-able as it is


def test_export_import_round_trip(branched):
    store, conversation = branched
    exported = store.export_json(conversation.id)
    imported = store.import_json(json.loads(json.dumps(exported)))
    assert imported.id != conversation.id  # the id was taken, so a new one
    again = store.export_json(imported.id)
    assert {**again, "id": None} == {**exported, "id": None}
    assert [m.content for m in store.active_path(imported.id)] == ["What is 2+2?", "4"]
    # after removing the original, importing keeps the exported id
    store.delete(conversation.id)
    assert store.import_json(exported).id == conversation.id
    assert store.export_json(conversation.id) == exported


def test_markdown_export_shows_the_active_branch(branched):
    store, conversation = branched
    text = store.export_markdown(conversation.id)
    assert text.startswith("# What is 2+2?\n")
    assert "## System\n\nBe brief." in text
    assert "## User\n\nWhat is 2+2?" in text and "## Assistant (m)\n\n4\n" in text
    assert "Four." not in text  # the other branch is not the one showing


def test_markdown_export_says_how_a_reply_ended_in_the_shared_words(branched):
    store, conversation = branched
    (done,) = [m for m in store.active_path(conversation.id) if m.role == "assistant"]
    assert "*[reply" not in store.export_markdown(conversation.id), "done needs no word"
    stopped = store.siblings(done.id).messages[1]
    store.switch_branch(stopped.id)
    assert "Four.  \n\n*[reply stopped]*\n" in store.export_markdown(conversation.id)


def test_a_plain_list_of_turns_imports_as_a_chain(store):
    imported = store.import_json(
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}
    )
    assert imported.title == "Hi"
    assert [m.content for m in store.active_path(imported.id)] == ["Hi", "Hello"]


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ([1, 2], "JSON object"),
        ({"title": "x"}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"messages": [{"role": "user", "content": 3}]}, "content"),
        ({"messages": [{"id": 1, "parent_id": 7, "role": "user", "content": "x"}]}, "parent_id"),
        ({"format": "other-app", "messages": []}, "format"),
        ({"messages": [{"role": "user", "content": "x", "status": "weird"}]}, "status"),
    ],
)
def test_bad_imports_say_what_is_wrong_and_save_nothing(store, data, complaint):
    with pytest.raises(ImportFormatError) as caught:
        store.import_json(data)
    assert complaint in str(caught.value)
    assert store.list_conversations() == []


def test_an_imported_streaming_reply_is_interrupted(store):
    imported = store.import_json(
        {"messages": [{"role": "user", "content": "q"},
                      {"role": "assistant", "content": "partial", "status": "streaming"}]}
    )  # fmt: skip
    assert [m.status for m in store.active_path(imported.id)] == ["complete", "interrupted"]
