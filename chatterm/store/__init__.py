"""Chat history in SQLite: durable, searchable, branchable.

Everything that reads or writes the history goes through :class:`ConversationStore`, which
returns domain dataclasses (:class:`Conversation`, :class:`Message`, :class:`Siblings`,
:class:`SearchHit`), never rows; nothing outside this package writes SQL.

Storage (``db.py``, ``migrations.py``): one file, ``paths.database_path()``, in WAL mode with
``synchronous=NORMAL``, foreign keys and a 10 s busy timeout. Every write is one short
``BEGIN IMMEDIATE`` transaction, so two chatterm processes can write at once and nothing is held
open while a model generates. Named migrations (``m001_conversations``, ``m002_message_search``,
``m003_branches_and_provenance``) are applied once each and recorded. A file that is not a
database raises ``StoreError`` naming it and is never recreated or deleted.

Messages form a tree through ``parent_id``: editing or regenerating adds a sibling and never
deletes; the conversation remembers its current leaf, and the *active path* (root → leaf) is the
branch shown and sent to the model. Content is stored byte-for-byte. Conversation ids are 8 hex
characters; every method taking a conversation id also accepts an unambiguous prefix
(``NotFoundError`` / ``AmbiguousIdError`` otherwise: usage errors, exit 2). Message ids are
integers.

The API, by task (all on ``ConversationStore(path=None)``; ``None`` means the default file):

Conversations
    ``create_conversation(title=, model=, persona=, system_prompt=, sampling=)``,
    ``get_conversation(id)``, ``resolve_id(prefix)``,
    ``list_conversations(limit=50, search=None)`` (most recent first; ``search`` filters by
    title or message text), ``most_recent()``, ``rename(id, title)``,
    ``update_conversation(id, title=, model=, persona=, system_prompt=, sampling=)``,
    ``delete(id)``.
Streaming a turn
    ``add_user_message(id, text, parent_id=<current leaf>)`` commits at once and titles an
    untitled conversation; ``start_assistant_message(id, model=, model_path=, model_hash=,
    sampling=)`` creates a ``streaming`` reply with the settings snapshot;
    ``update_partial(message_id, text)`` about every second; ``finish_assistant_message(
    message_id, text, status=, stats=, finish_reason=, logprobs=)``. ``mark_interrupted()``
    (run when the store opens) turns replies left ``streaming`` by a dead process into
    ``interrupted``. ``get_message(id)``, ``logprobs(message_id)``.
Branches
    ``active_path(id)``, ``messages(id)`` (all branches), ``siblings(message_id)`` (with
    ``.label`` like ``"2/3"``), ``branch_positions(id)`` (every message's ``(n, total)`` in one
    query), ``switch_branch(message_id)``, ``edit_user_message(message_id, text)`` (new user
    sibling), ``regenerate(message_id, model=, …)`` (new streaming assistant sibling).
Search and files
    ``search(query, limit=20)`` (FTS5 over all message text), ``export_json(id)``,
    ``export_markdown(id)``, ``import_json(data)`` (round-trips ``export_json``).

:class:`Turn` (``turn.py``) wraps the streaming calls for one exchange, driven by engine events,
under the rules stated there; :func:`model_history` is what the model sees of a saved branch, for
``chatterm ask``, the chat app and the lab. ``model_fingerprint(path)`` is the
cheap model-file hash recorded with each reply.
"""

from __future__ import annotations

from chatterm.store.conversations import ConversationStore, title_from
from chatterm.store.fingerprint import model_fingerprint
from chatterm.store.model import (
    STATUSES,
    AmbiguousIdError,
    Conversation,
    Message,
    NotFoundError,
    SearchHit,
    Siblings,
)
from chatterm.store.transfer import ImportFormatError
from chatterm.store.turn import Turn, model_history, status_for

__all__ = [
    "STATUSES",
    "AmbiguousIdError",
    "Conversation",
    "ConversationStore",
    "ImportFormatError",
    "Message",
    "NotFoundError",
    "SearchHit",
    "Siblings",
    "model_fingerprint",
    "status_for",
    "Turn",
    "model_history",
    "title_from",
]
