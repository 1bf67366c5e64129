"""Turn: saving one exchange as it streams, on the real model and on events."""

from __future__ import annotations

import pytest

from chatterm import paths
from chatterm.engine.events import ChatMessage, Finished, PromptReady, Stats, Token
from chatterm.errors import StoreError, UsageError
from chatterm.sampling import SamplingSettings
from chatterm.store import ConversationStore, Turn, status_for
from tests.store.conftest import exchange


class _Model:
    name = "scripted"
    model_path = None


def _ready() -> PromptReady:
    return PromptReady(prompt_tokens=5, cached_tokens=0, n_ctx=256)


def test_real_model_reply_is_saved_byte_for_byte_with_its_provenance(real_engine, starter_path):
    settings = SamplingSettings(temperature=0, seed=3, max_tokens=12)
    recorder = Turn.for_ask()
    messages = recorder.messages("Answer briefly.", "Name two planets.")
    recorder.begin("Name two planets.", engine=real_engine, sampling=settings)
    with ConversationStore() as reader:  # the question is committed before generation
        conversation = reader.most_recent()
        assert conversation is not None and conversation.system_prompt == "Answer briefly."
        assert [m.content for m in reader.active_path(conversation.id)] == ["Name two planets."]
    texts = []
    finished = None
    for event in real_engine.generate(messages, settings):
        recorder.on_event(event)
        if isinstance(event, Token):
            texts.append(event.text)
        elif isinstance(event, Finished):
            finished = event
    assert finished is not None
    recorder.finish(finished)
    recorder.close()
    with ConversationStore() as reader:
        question, reply = reader.active_path(conversation.id)
    assert reply.content == "".join(texts) and reply.content
    assert (reply.status, reply.finish_reason) == ("complete", finished.reason)
    assert reply.model == real_engine.name and reply.model_path == str(starter_path)
    assert reply.model_hash and reply.model_hash.startswith("sample-sha256:")
    assert reply.sampling == settings.to_dict() and reply.stats == finished.stats.to_dict()
    assert reply.stats["generated_tokens"] > 0


def test_partial_text_is_saved_at_the_first_token_then_when_due(store):
    recorder = Turn(store, interval=3600)
    recorder.begin("q", engine=_Model(), sampling={"seed": 1}, system=None)
    recorder.on_event(_ready())
    reply_id = recorder.reply.id
    assert store.get_message(reply_id).status == "streaming"
    for piece in ("Hel", "lo", " there"):
        recorder.on_event(Token(piece, 0))
    assert store.get_message(reply_id).content == "Hel"  # the next save is not due yet
    recorder.interval = 0
    recorder.on_event(Token("!", 0))
    assert store.get_message(reply_id).content == "Hello there!"
    recorder.finish(Finished("length", Stats(generated_tokens=4)))
    saved = store.get_message(reply_id)
    assert (saved.status, saved.finish_reason, saved.stats["generated_tokens"]) == (
        "complete", "length", 4,
    )  # fmt: skip


def test_ctrl_c_keeps_the_partial_text_as_stopped(store):
    recorder = Turn(store)
    recorder.begin("q", engine=_Model(), sampling=None, system=None)
    recorder.on_event(_ready())
    recorder.on_event(Token("half an ans", 0))
    recorder.stop()
    reply = store.get_message(recorder.reply.id)
    assert (reply.status, reply.content, reply.finish_reason) == (
        "stopped", "half an ans", "cancelled",
    )  # fmt: skip


def test_a_prompt_that_never_started_keeps_only_the_question(store):
    recorder = Turn(store)
    recorder.begin("too long a question", engine=_Model(), sampling=None, system=None)
    recorder.stop()  # e.g. the prompt did not fit, or Ctrl-C during prefill
    conversation = store.most_recent()
    assert [m.role for m in store.messages(conversation.id)] == ["user"]


def test_engine_errors_are_saved_as_error():
    assert [status_for(r) for r in ("stop", "length", "cancelled", "error")] == [
        "complete", "complete", "stopped", "error",
    ]  # fmt: skip


def test_continuing_sends_the_history_and_the_system_prompt(store):
    conversation = store.create_conversation(system_prompt="You are terse.")
    exchange(store, conversation.id, "first question", "first answer")
    failed = store.start_assistant_message(conversation.id)  # failed before any text
    store.finish_assistant_message(failed.id, "", status="error")
    recorder = Turn.for_ask(continue_last=True)
    assert recorder.messages(None, "second question") == [
        ChatMessage("system", "You are terse."),
        ChatMessage("user", "first question"),
        ChatMessage("assistant", "first answer"),
        ChatMessage("user", "second question"),
    ]
    recorder.begin("second question", engine=_Model(), sampling=None)
    recorder.close()
    assert [m.content for m in store.active_path(conversation.id)][-1] == "second question"
    assert len(store.list_conversations()) == 1


def test_a_new_system_prompt_replaces_the_saved_one(store):
    conversation = store.create_conversation(system_prompt="old")
    recorder = Turn.for_ask(conversation_id=conversation.id[:3])
    assert recorder.messages("new", "q")[0] == ChatMessage("system", "new")
    recorder.begin("q", engine=_Model(), sampling=None)
    recorder.close()
    assert store.get_conversation(conversation.id).system_prompt == "new"


def test_no_save_saves_nothing_even_when_continuing(store):
    conversation = store.create_conversation()
    exchange(store, conversation.id, "q", "a")
    recorder = Turn.for_ask(save=False, continue_last=True)
    assert len(recorder.messages(None, "next")) == 3
    recorder.begin("next", engine=_Model(), sampling=None)
    recorder.on_event(_ready())
    recorder.on_event(Token("x", 0))
    recorder.finish(Finished("stop"))
    recorder.close()
    assert len(store.messages(conversation.id)) == 2
    assert recorder.conversation_id is None


def test_nothing_to_continue_and_conflicting_choices_are_usage_errors():
    with pytest.raises(UsageError, match="nothing|no saved"):
        Turn.for_ask(continue_last=True)
    with pytest.raises(UsageError, match="either"):
        Turn.for_ask(continue_last=True, conversation_id="abc")


def test_an_unusable_database_costs_a_warning_not_the_answer():
    path = paths.database_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage" * 100)
    warnings: list[str] = []
    recorder = Turn.for_ask(warn=warnings.append)
    recorder.begin("q", engine=_Model(), sampling=None)
    recorder.on_event(Token("x", 0))
    recorder.finish(Finished("stop"))
    assert len(warnings) == 1 and str(path) in warnings[0]
    with pytest.raises(StoreError):
        Turn.for_ask(continue_last=True)
    assert path.read_bytes() == b"garbage" * 100


def test_a_refused_question_is_not_history(store):
    conversation = store.create_conversation()
    exchange(store, conversation.id, "q", "a")
    turn = Turn(store, store.get_conversation(conversation.id))
    turn.begin("far too long", engine=_Model(), sampling=None)
    assert [m.content for m in store.active_path(conversation.id)] == ["q", "a", "far too long"]
    turn.refuse()  # the engine raised before PromptReady
    assert [m.content for m in store.messages(conversation.id)] == ["q", "a"]
    assert [m.content for m in store.active_path(conversation.id)] == ["q", "a"]
    assert turn.conversation is not None


def test_a_refused_first_question_leaves_no_conversation(store):
    turn = Turn(store)
    turn.begin("far too long", engine=_Model(), sampling=None, system=None)
    assert len(store.list_conversations()) == 1
    turn.refuse()
    assert store.list_conversations() == [] and turn.conversation is None


def test_only_leaves_can_be_discarded(store):
    conversation = store.create_conversation()
    first, _ = exchange(store, conversation.id, "q", "a")
    with pytest.raises(UsageError, match="follows"):
        store.discard([first.id], leaf=None)
    assert len(store.messages(conversation.id)) == 2
