"""One turn of a conversation, saved while it streams: the rules stated once.

The question is committed before generation starts; the reply's row is created when the engine
reports the prompt ready (so a prompt that does not fit leaves the question alone, with no empty
reply); the text so far is saved with the first token and then whenever a second has passed; the
final status comes last, also on Ctrl-C (``stopped``). After ``kill -9`` the row stays
``streaming`` with the text of the last save, and the next start marks it ``interrupted``.

A prompt the engine refuses before generating (too long for the window, a chat template that
fails) is not history (:meth:`Turn.refuse`): the question goes again, and a conversation it
leaves empty; ``ask`` exits with the error's code (4 for a prompt that does not fit) and the
chat app puts the text back into the input. Reasoning (issue 15) is recorded here, beside
``parts``, once for every front end.

Saving must never cost the user their answer: if the database fails mid-way, the recorder warns
once and the answer keeps streaming. A database locked by another process (longer than the busy
timeout) does not lose the exchange either: the answer streams first, and the whole exchange is
saved afterwards, retried for up to :data:`LOCKED_RETRY_S`; if it is still locked then, the
exchange is written to a JSON file that ``chatterm history import`` reads, and the warning says
where.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from chatterm.attachments import Attachment, user_content
from chatterm.engine.base import Engine
from chatterm.engine.events import ChatMessage, Finished, PromptReady, Token
from chatterm.errors import StoreError, StoreLockedError, UsageError
from chatterm.sampling import SamplingSettings
from chatterm.store.conversations import ConversationStore
from chatterm.store.fingerprint import model_fingerprint
from chatterm.store.model import Conversation, Message

SAVE_INTERVAL_S = 1.0
QUESTION_WAIT_S = 2.0
"""How long the question's save waits for another process's write lock before the answer
starts anyway (the save is then retried after the answer)."""
LOCKED_RETRY_S = 30.0
"""How long, after the answer, a save blocked by a locked database is retried (on top of each
attempt's own busy timeout)."""

_SAME: Any = object()
_STATUS_FOR_REASON = {"stop": "complete", "length": "complete", "cancelled": "stopped"}


def model_history(
    system_prompt: str | None, path: Sequence[Message], *, exclude: int | None = None
) -> list[ChatMessage]:
    """What the model sees of a saved branch: the system prompt, then the branch's messages
    (a user message with its attachments rebuilt as sent), leaving out ``exclude`` (the reply
    being generated) and replies that failed before their first token (a reply that only
    thought is kept: its thinking goes back as the template expects)."""
    head = [ChatMessage("system", system_prompt)] if system_prompt else []
    return head + [
        m.to_chat()
        for m in path
        if m.id != exclude and m.role != "system" and (m.content or m.reasoning or m.role == "user")
    ]


def status_for(reason: str) -> str:
    """The message status for an engine finish reason: ``stop``/``length`` → ``complete``,
    ``cancelled`` → ``stopped``, anything else → ``error``."""
    return _STATUS_FOR_REASON.get(reason, "error")


class Turn:
    """Records one question and its streamed reply; every method is a no-op when not saving."""

    def __init__(
        self,
        store: ConversationStore | None,
        conversation: Conversation | None = None,
        *,
        save: bool = True,
        interval: float = SAVE_INTERVAL_S,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.conversation = conversation
        self.save = save and store is not None
        self.interval = interval
        self.warn = warn or (lambda message: None)
        self.reply: Message | None = None
        self.parts: list[str] = []
        self.reasoning_parts: list[str] = []
        self._engine: Engine | None = None
        self._sampling: SamplingSettings | None = None
        self._last_save = 0.0
        self._saved_text = ("", "")
        self._finished = False
        self._system: str | None = None
        self._deferred = False  # the database was locked: save everything after the answer
        self._question: str | None = None
        self._attachments: tuple[Attachment, ...] = ()
        self._question_saved = False
        self._persona: str | None = None
        self._question_id: int | None = None
        self._previous_leaf: int | None = None

    @classmethod
    def for_ask(
        cls,
        *,
        save: bool = True,
        continue_last: bool = False,
        conversation_id: str | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> Turn:
        """The turn for ``chatterm ask [-c | --conversation ID] [--no-save]``.

        Raises ``UsageError`` for an unknown id or nothing to continue, and ``StoreError`` when
        a conversation must be read from an unusable database. When only saving, an unusable
        database costs a warning, not the answer."""
        if continue_last and conversation_id:
            raise UsageError("use either -c/--continue or --conversation, not both")
        reading = continue_last or conversation_id is not None
        if not save and not reading:
            return cls(None, save=False, warn=warn)
        try:
            store = ConversationStore()
        except StoreLockedError as exc:
            if reading:
                raise
            if warn:
                warn(f"{exc}; the answer comes first, then saving is retried")
            recorder = cls(None, save=save, warn=warn)
            recorder._deferred = True
            return recorder
        except StoreError as exc:
            if reading:
                raise
            if warn:
                warn(f"{exc}; this answer will not be saved")
            return cls(None, save=False, warn=warn)
        try:
            conversation = None
            if conversation_id is not None:
                conversation = store.get_conversation(conversation_id)
            elif continue_last:
                conversation = store.most_recent()
                if conversation is None:
                    raise UsageError("no saved conversation to continue: ask something first")
        except BaseException:
            store.close()
            raise
        return cls(store, conversation, save=save, warn=warn)

    @property
    def _model(self) -> Engine:
        assert self._engine is not None, "begin() names the engine first"
        return self._engine

    @property
    def conversation_id(self) -> str | None:
        return self.conversation.id if self.conversation and self.save else None

    @property
    def system_prompt(self) -> str | None:
        """The continued conversation's system prompt (``None`` for a new one)."""
        return self.conversation.system_prompt if self.conversation else None

    def history(self) -> list[ChatMessage]:
        """The continued conversation's active branch, as the engine takes it (replies that
        failed before their first token are left out)."""
        if self.store is None or self.conversation is None:
            return []
        return model_history(None, self.store.active_path(self.conversation.id))

    def models_used(self) -> list[str]:
        """How the continued conversation named its model, most telling first: the name it
        was saved under, then the file its latest reply came from (a model given by path is
        saved under its file name, which names nothing on its own)."""
        if self.conversation is None:
            return []
        found = [self.conversation.model]
        if self.store is not None:
            paths = [m.model_path for m in self.store.active_path(self.conversation.id)]
            found += [p for p in paths if p][-1:]
        return [m for m in found if m]

    def messages(
        self, system: str | None, user: str, attachments: Sequence[Attachment] = ()
    ) -> list[ChatMessage]:
        """What to send: the system prompt (``system``, else the continued conversation's),
        the continued conversation's history (with the attachments its turns had), then the
        new user message with its ``attachments`` before it."""
        self._system = system if system is not None else self.system_prompt
        head = [ChatMessage("system", self._system)] if self._system else []
        return [*head, *self.history(), ChatMessage("user", user_content(user, attachments))]

    def _safely(self, action: Callable[[], Any]) -> Any:
        if not self.save or self._deferred:
            return None
        try:
            return action()
        except StoreLockedError as exc:
            self.warn(f"{exc}; the answer comes first, then saving is retried")
            self._deferred = True
            return None
        except StoreError as exc:
            self.warn(f"{exc}; the rest of this answer will not be saved")
            self.save = False
            return None

    def begin(
        self,
        question: str,
        *,
        engine: Engine,
        sampling: SamplingSettings | None,
        system: Any = _SAME,
        persona: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> None:
        """Commit the question and its ``attachments`` (creating the conversation, titled
        from it, when new) before any generation starts. ``engine`` supplies the model name
        and file for the reply; ``system`` defaults to what :meth:`messages` sent."""
        self._engine, self._sampling = engine, sampling
        if system is _SAME:
            system = self._system
        self._system, self._question, self._persona = system, question, persona
        self._attachments = tuple(attachments)
        store = self.store
        if store is None:
            return

        def save() -> None:
            with store.busy_timeout(QUESTION_WAIT_S):
                self._save_question()

        self._safely(save)

    def _save_question(self) -> None:
        """Create the conversation when new and commit the question. A new conversation whose
        question could not be saved is removed again: an empty "(untitled)" conversation
        must not be left behind."""
        store, system, engine = self.store, self._system, self._model
        assert store is not None and self._question is not None
        created = False
        if self.conversation is None:
            self.conversation = store.create_conversation(
                model=engine.name,
                persona=self._persona,
                sampling=self._sampling,
                system_prompt=system,
            )
            created = True
        elif system is not None and system != self.conversation.system_prompt:
            self.conversation = store.update_conversation(
                self.conversation.id, system_prompt=system
            )
        self._previous_leaf = store.get_conversation(self.conversation.id).current_leaf_id
        try:
            self._question_id = store.add_user_message(
                self.conversation.id, self._question, attachments=self._attachments
            ).id
        except BaseException:
            if created:
                with contextlib.suppress(StoreError):
                    store.delete(self.conversation.id)
                self.conversation = None
            raise
        self._question_saved = True

    def _start_reply(self) -> None:
        if self.reply is not None or self.store is None or self.conversation is None:
            return
        store, conversation, engine = self.store, self.conversation, self._model
        path = engine.model_path
        self.reply = self._safely(
            lambda: store.start_assistant_message(
                conversation.id,
                model=engine.name,
                model_path=path,
                model_hash=model_fingerprint(path) if path else None,
                sampling=self._sampling,
            )
        )
        self._last_save = time.monotonic()

    def on_event(self, event: Any) -> None:
        """Feed every event of the generation; saves the partial text when due."""
        if not self.save:
            return
        if self._deferred:
            if isinstance(event, Token) and event.text:
                (self.reasoning_parts if event.reasoning else self.parts).append(event.text)
            return
        if isinstance(event, PromptReady):
            self._start_reply()
        elif isinstance(event, Token) and event.text:
            self._start_reply()
            first = not self.parts and not self.reasoning_parts
            (self.reasoning_parts if event.reasoning else self.parts).append(event.text)
            moment = time.monotonic()
            if first or moment - self._last_save >= self.interval:
                self._last_save = moment
                self._save_partial()

    def _save_partial(self) -> None:
        store, reply = self.store, self.reply
        if store is None or reply is None:
            return
        saved = (self.text, self.reasoning)
        if saved != self._saved_text:
            self._safely(lambda: store.update_partial(reply.id, *saved))
            self._saved_text = saved

    @property
    def text(self) -> str:
        """The answer so far (without the thinking)."""
        return "".join(self.parts)

    @property
    def reasoning(self) -> str:
        """The thinking so far."""
        return "".join(self.reasoning_parts)

    def finish(self, finished: Finished, *, logprobs: Any = None) -> None:
        """Save the final text, status, stats and finish reason."""
        self._end(
            status_for(finished.reason),
            stats=finished.stats.to_dict(),
            reason=finished.reason,
            logprobs=logprobs,
        )

    def refuse(self) -> None:
        """The engine refused the prompt before generating: nothing of this turn is kept (the
        question goes, and a conversation it leaves empty)."""
        if self._finished or not self.save:
            return
        self._finished = True
        store, question, conversation = self.store, self._question_id, self.conversation
        if store is None or question is None or conversation is None or self.reply is not None:
            return
        gone = self._safely(lambda: store.discard([question], leaf=self._previous_leaf))
        self._question_id = None
        if gone:
            self.conversation = None

    def stop(self) -> None:
        """The user pressed Ctrl-C: keep the partial text, marked ``stopped``."""
        self._end("stopped", stats=None, reason="cancelled", logprobs=None)

    def _end(self, status: str, *, stats: Any, reason: str, logprobs: Any) -> None:
        if self._finished or not self.save:
            return
        self._finished = True
        if self._deferred:
            self._save_later(status, stats=stats, reason=reason, logprobs=logprobs)
            return
        if self.reply is None:
            if not self.parts and not self.reasoning_parts and status != "error":
                return  # stopped before the prompt was even ready: only the question is kept
            self._start_reply()
        store, reply = self.store, self.reply
        if store is None or reply is None:
            return
        text, reasoning = self.text, self.reasoning
        self._safely(
            lambda: store.finish_assistant_message(
                reply.id,
                text,
                reasoning=reasoning,
                status=status,
                stats=stats,
                finish_reason=reason,
                logprobs=logprobs,
            )
        )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    # -- a locked database: save the whole exchange after the answer ----------------------

    def _save_later(self, status: str, *, stats: Any, reason: str, logprobs: Any) -> None:
        """Save what has not been saved yet (conversation, question, reply), retrying while
        the database stays locked; if it never frees, write the exchange to a file."""
        if self._question is None:
            return
        deadline = time.monotonic() + LOCKED_RETRY_S
        while True:
            try:
                self._save_rest(status, stats=stats, reason=reason, logprobs=logprobs)
            except StoreLockedError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.5)
                continue
            except StoreError as exc:
                self.warn(f"{exc}; this exchange was not saved to the history")
                self._write_rescue(status, reason)
                return
            if self.conversation is not None:
                self.warn(
                    f"the history database is free again: saved to conversation "
                    f"{self.conversation.id}"
                )
            return
        self.warn(
            f"the history database stayed locked for {LOCKED_RETRY_S:g} s after the answer; "
            "this exchange is NOT in the history"
        )
        self._write_rescue(status, reason)

    def _save_rest(self, status: str, *, stats: Any, reason: str, logprobs: Any) -> None:
        if self.store is None:
            self.store = ConversationStore()
        store = self.store
        if not self._question_saved:
            self._save_question()
        assert self.conversation is not None
        if self.reply is None:
            path = self._model.model_path
            self.reply = store.start_assistant_message(
                self.conversation.id,
                model=self._model.name,
                model_path=path,
                model_hash=model_fingerprint(path) if path else None,
                sampling=self._sampling,
            )
        store.finish_assistant_message(
            self.reply.id,
            self.text,
            status=status,
            stats=stats,
            finish_reason=reason,
            logprobs=logprobs,
            reasoning=self.reasoning,
        )

    def _write_rescue(self, status: str, reason: str) -> None:
        """Write the exchange as a ``history import`` file in the data directory."""
        import json

        from chatterm import paths
        from chatterm.safe_files import FileWriteError, write_atomic

        messages: list[dict[str, Any]] = [{"role": "user", "content": self._question}]
        if self.parts or self.reasoning_parts or status == "error":
            messages.append(
                {
                    "role": "assistant",
                    "content": self.text,
                    "reasoning": self.reasoning or None,
                    "status": status,
                    "finish_reason": reason,
                    "model": self._model.name,
                }
            )
        data = {
            "system_prompt": self._system,
            "persona": self._persona,
            "model": self._model.name,
            "messages": messages,
        }
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = paths.data_dir() / "unsaved" / f"exchange-{stamp}-{id(self) & 0xFFFF:04x}.json"
        try:
            write_atomic(target, json.dumps(data, ensure_ascii=False, indent=2), what="exchange")
        except FileWriteError as exc:
            self.warn(f"{exc}; the exchange is lost")
            return
        self.warn(f"wrote it to {target}; add it later with `chatterm history import {target}`")
