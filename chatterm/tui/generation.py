"""What one reply needs, handed from the chat screen to its generation worker.

The worker (``ChatScreen.generate``) only iterates the engine and posts messages; this module
holds the job description and the token loop so that the loop stays free of widgets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field

from textual.message import Message

from chatterm.engine.base import Engine
from chatterm.engine.events import ChatMessage, Finished, PromptReady, Token
from chatterm.errors import ChattermError
from chatterm.lab.records import ProbCollector, TokenRecord
from chatterm.sampling import SamplingSettings
from chatterm.tui import streaming
from chatterm.tui.messages import (
    GenerationProgress,
    PromptEvaluated,
    ReplyFailed,
    ReplyFinished,
    TokensArrived,
)
from chatterm.tui.streaming import TokenBatcher

SAVE_INTERVAL = 1.0
"""Seconds between saves of a streaming reply's partial text."""

PROGRESS_INTERVAL = 0.5
"""Seconds between updates of the live tokens-per-second figure."""


@dataclass
class ReplyJob:
    """One reply being generated.

    ``user_text`` goes back into the input if the reply cannot start (empty for a
    regenerate). ``parts`` collects the text on the UI side as batches arrive.
    """

    reply_id: int
    conversation_id: str
    engine: Engine
    messages: Sequence[ChatMessage]
    sampling: SamplingSettings
    user_text: str = ""
    user_id: int | None = None
    previous_leaf: int | None = None  # the branch to show again if the prompt is refused
    cancel: threading.Event = field(default_factory=threading.Event)
    parts: list[str] = field(default_factory=list)
    reasoning_parts: list[str] = field(default_factory=list)
    last_save: float = field(default_factory=time.monotonic)
    saved_final: bool = False
    save_failed: bool = False  # a partial save failed (reported once)
    top_logprobs: int = 0  # candidates per token asked of the engine (0: probabilities off)
    probs: list[TokenRecord] = field(default_factory=list)  # their records, UI side

    @property
    def text(self) -> str:
        """The answer so far."""
        return "".join(self.parts)

    @property
    def reasoning(self) -> str:
        """The thinking so far (reasoning models)."""
        return "".join(self.reasoning_parts)


def stream_reply(
    job: ReplyJob,
    post: Callable[[Message], object],
    is_cancelled: Callable[[], bool],
    interval: float | None = None,
) -> None:
    """Run ``job`` on its engine, posting batched :class:`TokensArrived` and one
    :class:`ReplyFinished` (or :class:`ReplyFailed` when the reply cannot start).

    Runs in a worker thread. ``post`` is thread-safe (``post_message``); it never blocks on
    the UI, unlike ``call_from_thread``, so the decode loop is not held up by rendering.
    """
    batcher = TokenBatcher(streaming.FLUSH_INTERVAL if interval is None else interval)
    first_token_at: float | None = None  # the live rate counts from here, not from the prefill
    progress_at = 0.0
    probs = ProbCollector(job.engine) if job.top_logprobs else None
    reply: list[str] = []
    thinking: list[str] = []
    finished: Finished | None = None

    def flush() -> None:
        nonlocal progress_at
        reasoning = batcher.take_reasoning()
        text, count = batcher.take()
        if count or text or reasoning:
            batch = probs.take() if probs else ()
            post(TokensArrived(job.reply_id, text, count, batch, reasoning))
            now = time.monotonic()
            if now - progress_at >= PROGRESS_INTERVAL and first_token_at is not None:
                progress_at = now  # a live figure needs no more than this
                post(GenerationProgress(job.reply_id, batcher.total_tokens, now - first_token_at))

    try:
        for event in job.engine.generate(
            job.messages, job.sampling, top_logprobs=job.top_logprobs, cancel=job.cancel
        ):
            if is_cancelled():
                job.cancel.set()
            if isinstance(event, Token):
                if first_token_at is None:
                    first_token_at = time.monotonic()
                if probs is not None:
                    probs.add(event)
                (thinking if event.reasoning else reply).append(event.text)
                if batcher.add(event.text, reasoning=event.reasoning):
                    flush()
            elif isinstance(event, PromptReady):
                post(PromptEvaluated(job.reply_id, event))
            elif isinstance(event, Finished):
                flush()
                post(ReplyFinished(job.reply_id, event))
                finished = event
    except ChattermError as exc:  # context overflow, broken chat template: raised before tokens
        flush()
        post(ReplyFailed(job.reply_id, str(exc)))
        return
    if finished is not None and finished.error is None:
        # While the user reads and types, get the next turn's opening into the KV cache.
        with suppress(ChattermError):  # only an optimisation: the next reply works without it
            answer = ChatMessage("assistant", "".join(reply), "".join(thinking))
            job.engine.warm([*job.messages, answer])
