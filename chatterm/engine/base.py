"""The engine contract every front end (CLI, TUI, lab) and every backend (llama.cpp, remote
servers, the scripted fake) shares."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
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


Drop = tuple[str, int]
"""A remembered drop point: the content of the first message kept and its index after the
system prompt."""


@dataclass(frozen=True)
class ContextPlan:
    """What the next reply sends. ``prompt``: the rendered prompt after dropping;
    ``dropped``: how many of the oldest messages after the system prompt are left out;
    ``total_tokens``: the whole conversation's tokens, before dropping; ``reserve``: tokens
    kept for the reply; ``n_ctx``: the window. All counts in tokens."""

    prompt: RenderedPrompt
    dropped: int
    total_tokens: int
    reserve: int
    n_ctx: int

    def kept(self, messages: Sequence[ChatMessage]) -> list[ChatMessage]:
        """``messages`` as this plan sends them: the system prompt, then the newest turns."""
        head = list(messages[:1]) if messages and messages[0].role == "system" else []
        return head + list(messages[len(head) + self.dropped :])

    def drop_point(self, messages: Sequence[ChatMessage]) -> Drop | None:
        """What to remember so the next plan can keep the same prefix (``previous``)."""
        if not self.dropped:
            return None
        head = 1 if messages and messages[0].role == "system" else 0
        return messages[head + self.dropped].content, self.dropped


@runtime_checkable
class Engine(Protocol):
    """A loaded model that turns chat messages into a stream of events: what every caller
    may use, whatever runs the model (llama.cpp here, a server, the scripted fake).

    ``generate`` yields one ``PromptReady``, then ``Token`` events, then exactly one
    ``Finished`` (also on cancellation and on errors it can report); it raises
    ``ContextOverflowError`` before yielding when the newest message cannot fit, and
    ``TemplateError`` when the chat template fails. Calls are serialised: a second call waits
    for the first to finish, and ``render``, ``tokenize``, ``plan`` and ``warm`` take the same
    lock themselves. Setting
    ``cancel`` (from any thread) stops between tokens with reason ``"cancelled"``.
    """

    name: str
    """How the model is shown (a catalog name, a file name, ``endpoint/model``)."""

    @property
    def n_ctx(self) -> int:
        """The context window in tokens."""
        ...

    @property
    def n_ctx_known(self) -> bool:
        """Whether ``n_ctx`` is the model's real window (``False``: a server that did not say,
        and ``n_ctx`` is a guess)."""
        ...

    @property
    def model_path(self) -> Path | None:
        """The model's GGUF file; ``None`` when the model is not a local file (a server)."""
        ...

    @property
    def gpu_note(self) -> str:
        """Where the model runs (``CPU``, ``GPU offload: 20 layers``…); empty when unknown."""
        ...

    def generate(
        self,
        messages: Sequence[ChatMessage],
        sampling: SamplingSettings,
        *,
        top_logprobs: int = 0,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]: ...

    def plan(self, messages: Sequence[ChatMessage], max_tokens: int) -> ContextPlan:
        """What a reply to ``messages`` with ``max_tokens`` would send, by the one policy in
        :func:`chatterm.engine.context.plan_context`. Raises ``ContextOverflowError`` like
        ``generate``."""
        ...

    def render(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> RenderedPrompt:
        """The prompt text after the chat template, and its token ids (``template_kwargs``:
        extra variables for the template)."""
        ...

    def tokenize(self, text: str, *, special: bool = False) -> list[TokenPiece]:
        """How the tokenizer splits ``text`` (``special``: control-token text becomes
        control tokens)."""
        ...

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        """Prepare for the user turn that will follow ``messages`` (a conversation ending
        with a reply) while the user is still typing; return how many tokens that evaluated.
        Purely an optimisation: the next ``generate`` is correct whether or not it ran."""
        ...

    @property
    def load_notes(self) -> list[str]:
        """Notes from loading the model (e.g. a window longer than it was trained for)."""
        ...

    def pop_notes(self) -> list[str]:
        """Notes about the replies since the last call (e.g. settings a server ignored),
        each given once; usually none."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LocalModel(Protocol):
    """What only an engine holding the model in this process (llama.cpp) can do: look at the
    vocabulary token by token and at the raw logits. The lab's full distributions, token
    chips and KV-cache views need it; check with ``isinstance(engine, LocalModel)``.

    ``lock`` serialises the model's state: hold it around ``prefill`` + ``logits`` so a reply
    in another thread does not move the logits in between.
    """

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """The model's reentrant lock (``render``, ``tokenize`` and ``generate`` take it)."""
        ...

    @property
    def vocab_size(self) -> int:
        """Tokens in the vocabulary (the logits' length)."""
        ...

    def piece(self, token_id: int) -> TokenPiece:
        """How one token reads (control tokens by name, stray bytes as ``<0xF0>``)."""
        ...

    def token_ids(self, text: str, *, special: bool = False, add_bos: bool = False) -> list[int]:
        """``text`` as token ids, without a chat template."""
        ...

    def detokenize(self, token_ids: Sequence[int]) -> str:
        """The text of ``token_ids`` (invalid UTF-8 replaced)."""
        ...

    def prefill(self, tokens: Sequence[int], cancel: threading.Event | None = None) -> int:
        """Bring the KV cache to ``tokens`` (reusing its prefix); return how many were cached.
        Caller holds ``lock``."""
        ...

    def grammar_mask(self, gbnf: str) -> Any:
        """A :class:`~chatterm.engine.grammar.GrammarMask` for a GBNF grammar over this
        vocabulary (a context manager; the lab shows what the grammar removes)."""
        ...

    def teacher_forced_choices(
        self, tokens: Sequence[int], cancel: threading.Event | None = None
    ) -> tuple[list[int], float]:
        """Feed ``tokens`` one at a time and return the top-1 choice after each and the
        seconds it took (the lab's KV-cache comparison)."""
        ...

    def logits(self) -> Any:
        """The last evaluated position's logits: a NumPy float32 array of ``vocab_size``
        (a view, valid until the next evaluation; caller holds ``lock``)."""
        ...


@runtime_checkable
class LocalEngine(Engine, LocalModel, Protocol):
    """An :class:`Engine` that is also a :class:`LocalModel` (the llama.cpp engine)."""
