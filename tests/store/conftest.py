"""Fixtures for the history store: a real SQLite file in the test's own CHATTERM_HOME."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatterm.store import ConversationStore


@pytest.fixture
def store() -> Iterator[ConversationStore]:
    with ConversationStore() as opened:
        yield opened


def exchange(store: ConversationStore, conversation_id: str, question: str, answer: str) -> tuple:
    """Save one finished question-and-answer pair; returns the two messages."""
    user = store.add_user_message(conversation_id, question)
    reply = store.start_assistant_message(conversation_id, model="m", sampling={"seed": 1})
    reply = store.finish_assistant_message(reply.id, answer, finish_reason="stop")
    return user, reply
