"""The engine contract every front end (CLI, TUI, lab) and every backend (llama.cpp, remote
servers, the scripted fake) shares."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from chatterm.engine.events import ChatMessage, Event
from chatterm.sampling import SamplingSettings


@dataclass(frozen=True)
class TokenPiece:
    """One token of a tokenized text, for showing how the tokenizer splits it."""

    token_id: int
    piece: str
    special: bool = False
    byte_fallback: bool = False


@dataclass(frozen=True)
class RenderedPrompt:
    """Exactly what the model sees: the text after the chat template, and its token ids.

    ``notes`` are things the user should be told once (the system prompt was folded into the
    first user message); ``format`` names the chat format used (``"template"``: the model's
    own; else a fallback such as ``"chatml"`` or ``"plain"``; empty when not known)."""

    text: str
    tokens: tuple[int, ...]
    dropped_messages: int = 0
    notes: tuple[str, ...] = ()
    format: str = ""


@runtime_checkable
class Engine(Protocol):
    """A loaded model that turns chat messages into a stream of events.

    ``generate`` yields one ``PromptReady``, then ``Token`` events, then exactly one
    ``Finished`` (also on cancellation and on errors it can report); it raises
    ``ContextOverflowError`` before yielding when the newest message cannot fit, and
    ``TemplateError`` when the chat template fails. Calls are serialised: a second call waits
    for the first to finish. Setting ``cancel`` (from any thread) stops between tokens with
    reason ``"cancelled"``.
    """

    name: str

    @property
    def n_ctx(self) -> int: ...

    def generate(
        self,
        messages: Sequence[ChatMessage],
        sampling: SamplingSettings,
        *,
        top_logprobs: int = 0,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]: ...

    def render(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> RenderedPrompt: ...

    def tokenize(self, text: str, *, special: bool = False) -> list[TokenPiece]: ...

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        """Prepare for the user turn that will follow ``messages`` (a conversation ending
        with a reply) while the user is still typing; return how many tokens that evaluated.
        Purely an optimisation: the next ``generate`` is correct whether or not it ran."""
        ...

    def close(self) -> None: ...
