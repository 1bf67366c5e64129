"""Messages posted by workers, which belong to no widget.

Widgets' own messages are nested in the widget classes (``PromptInput.Submitted``,
``SamplingPanel.Changed`` …). These are facts reported from worker threads to the chat screen;
the worker never touches a widget.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from chatterm.engine.base import Engine
from chatterm.engine.events import Finished, PromptReady
from chatterm.lab.records import TokenRecord
from chatterm.services import EngineOptions


@dataclass
class PromptEvaluated(Message):
    """The engine rendered the prompt and it fits: tokens used, cached, dropped turns."""

    reply_id: int
    prompt: PromptReady


@dataclass
class TokensArrived(Message):
    """A batch of generated text. Never replaced: every batch is part of the reply.
    ``probs``: the batch's token records with their top candidates, only while probabilities
    are on (see ``chatterm.lab.records``). ``reasoning``: the batch's thinking text
    (reasoning models), which comes before any of its answer ``text``."""

    reply_id: int
    text: str
    tokens: int
    probs: tuple[TokenRecord, ...] = ()
    reasoning: str = ""


@dataclass
class GenerationProgress(Message):
    """How far the reply has come, for the live stats line. A newer one replaces an older one
    still waiting in the queue: only the latest figures matter."""

    reply_id: int
    tokens: int
    elapsed: float

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, GenerationProgress) and message.reply_id == self.reply_id


@dataclass
class ReplyFinished(Message):
    """The engine finished the reply (stopped, hit the length limit, was cancelled or failed
    mid-way); ``finished`` carries the reason and the stats."""

    reply_id: int
    finished: Finished


@dataclass
class ReplyFailed(Message):
    """The reply could not start (context overflow, broken chat template) or the worker
    crashed; the user's text goes back into the input."""

    reply_id: int
    error: str


@dataclass
class ModelLoading(Message):
    """A model load started in a worker."""

    options: EngineOptions


@dataclass
class ModelLoaded(Message):
    """A model finished loading and replaces the previous engine."""

    engine: Engine
    options: EngineOptions
    seconds: float


@dataclass
class ModelLoadFailed(Message):
    """A model could not be loaded; the previous engine (if any) stays."""

    options: EngineOptions
    error: str


@dataclass
class ContextMeasured(Message):
    """How the next prompt fills the context window (from a worker, replaceable)."""

    system_tokens: int
    history_tokens: int
    reserve_tokens: int
    n_ctx: int
    dropped_messages: int
    generation: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, (ContextMeasured, ContextUnmeasured))


@dataclass
class ContextUnmeasured(Message):
    """The engine cannot count the prompt's tokens (a server without a tokenizer endpoint),
    or counting failed; ``reason`` says which, for the meter to show in place."""

    reason: str
    n_ctx: int
    n_ctx_known: bool
    generation: int

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, (ContextMeasured, ContextUnmeasured))
