"""What a generation yields: one :class:`PromptReady`, then :class:`Token` events, then one
:class:`Finished`. Plain frozen dataclasses, so they cross threads and serialise to JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True)
class ChatMessage:
    """One message. ``reasoning`` is an assistant reply's thinking, kept apart from its answer
    (``content``); the chat template decides what of it the model sees again."""

    role: Role
    content: str
    reasoning: str = ""


@dataclass(frozen=True)
class Candidate:
    """One possible next token and its probability under the model (temperature 1)."""

    token_id: int
    piece: str
    prob: float


@dataclass(frozen=True)
class PromptReady:
    """The prompt was rendered and fits: how many tokens, how many the KV cache already held,
    and how many old messages were dropped to make room. ``notes``: what the user should be
    told about the rendering (a system prompt folded into the first user message)."""

    prompt_tokens: int
    cached_tokens: int
    n_ctx: int
    dropped_messages: int = 0
    prompt_text: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Token:
    """One generated token. ``text`` may be empty while a multi-byte character is incomplete.
    ``prob`` and ``top`` are set only when probabilities were asked for. ``forced``: a grammar
    (``--schema``/``--grammar``) left no choice of text here: this was the only candidate,
    or every candidate spelled part of the same text (see ``engine.grammar.is_forced``); also
    the end of a thinking block the engine emitted itself (``thinking_budget``). ``reasoning``
    marks the tokens of a thinking block (its markers included, though their text is left
    out: joining the reasoning tokens' text gives the thinking, the others' the answer)."""

    text: str
    token_id: int
    prob: float | None = None
    top: tuple[Candidate, ...] = ()
    forced: bool = False
    reasoning: bool = False


@dataclass(frozen=True)
class Stats:
    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    ttft_s: float = 0.0
    prompt_tps: float = 0.0
    decode_tps: float = 0.0
    total_s: float = 0.0
    dropped_messages: int = 0
    # Thinking: tokens inside the block (markers included) and the seconds from the first
    # token to the block's end; ``reasoning_open`` when the reply ended inside the block.
    reasoning_tokens: int = 0
    reasoning_s: float = 0.0
    reasoning_open: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        thinking = f" ({self.reasoning_tokens} thinking)" if self.reasoning_tokens else ""
        return (
            f"{self.prompt_tokens} prompt tokens ({self.cached_tokens} cached), "
            f"{self.generated_tokens} generated{thinking} · "
            f"first token {self.ttft_s * 1000:.0f} ms · "
            f"prompt {self.prompt_tps:.1f} tok/s · decode {self.decode_tps:.1f} tok/s"
        )


@dataclass(frozen=True)
class Finished:
    reason: FinishReason
    stats: Stats = field(default_factory=Stats)
    error: str | None = None


Event = PromptReady | Token | Finished
