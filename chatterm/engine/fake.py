"""A scripted engine for fast UI tests: replies come from a queue, calls are recorded.

Every behaviour tested with it is also tested once against the real model; this one exists so
that the many UI tests do not each pay for a model load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatterm.engine.base import ContextPlan, RenderedPrompt, TokenPiece
from chatterm.engine.context import plan_context
from chatterm.engine.events import (
    Candidate,
    ChatMessage,
    Event,
    Finished,
    FinishReason,
    PromptReady,
    Stats,
)
from chatterm.engine.reasoning import ReasoningTracker
from chatterm.sampling import SamplingSettings


@dataclass
class FakeCall:
    messages: list[ChatMessage]
    sampling: SamplingSettings
    top_logprobs: int


@dataclass
class FakeEngine:
    """Yields each queued reply word by word (``delay`` seconds apart); "echo: <last message>"
    when the queue is empty. A reply holding ``<think>…</think>`` streams as a reasoning model's
    does (``thinks_first``: as if the generation prompt opened the block), with the thinking
    budget closing the block early."""

    name: str = "fake-model"
    n_ctx: int = 2048
    delay: float = 0.0
    replies: list[str] = field(default_factory=list)
    calls: list[FakeCall] = field(default_factory=list)
    warmed: list[list[ChatMessage]] = field(default_factory=list)
    closed: bool = False
    model_path: Path | None = None
    gpu_note: str = ""
    n_ctx_known: bool = True
    load_notes: list[str] = field(default_factory=list)
    thinks_first: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def enqueue(self, *replies: str) -> FakeEngine:
        self.replies.extend(replies)
        return self

    def render(
        self,
        messages: Sequence[ChatMessage],
        *,
        add_generation_prompt: bool = True,
        **template_kwargs: Any,
    ) -> RenderedPrompt:
        text = "".join(f"<|{m.role}|>{m.content}\n" for m in messages)
        if add_generation_prompt:
            text += "<|assistant|>" + ("<think>" if self.thinks_first else "")
        return RenderedPrompt(text, tuple(range(len(text.split()))))

    def tokenize(self, text: str, *, special: bool = False) -> list[TokenPiece]:
        return [TokenPiece(i, w) for i, w in enumerate(_words(text))]

    def plan(self, messages: Sequence[ChatMessage], max_tokens: int) -> ContextPlan:
        return plan_context(messages, n_ctx=self.n_ctx, max_tokens=max_tokens, render=self.render)

    def pop_notes(self) -> list[str]:
        return []

    def generate(
        self,
        messages: Sequence[ChatMessage],
        sampling: SamplingSettings,
        *,
        top_logprobs: int = 0,
        cancel: threading.Event | None = None,
    ) -> Iterator[Event]:
        with self._lock:
            self.calls.append(FakeCall(list(messages), sampling, top_logprobs))
            reply = self.replies.pop(0) if self.replies else f"echo: {messages[-1].content}"
            prompt = self.render(messages)
            yield PromptReady(len(prompt.tokens), 0, self.n_ctx, 0, prompt.text)
            start = time.perf_counter()
            n = 0
            reason: FinishReason = "stop"
            tracker = ReasoningTracker(
                start_inside=self.thinks_first, budget=sampling.thinking_budget
            )
            words = _words(reply)
            i = -1
            while words:
                i += 1
                if tracker.over_budget:
                    tracker.closing_text()
                    cut = next((k for k, w in enumerate(words) if "</think>" in w), -1)
                    words = ["</think>"] + (words[cut + 1 :] if cut >= 0 else [])
                word = words.pop(0)
                if n >= sampling.max_tokens:
                    reason = "length"
                    break
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    break
                if self.delay:
                    time.sleep(self.delay)
                top = (
                    tuple(
                        # 0.6, 0.2, 0.1, …: a real distribution (sums to less than 1)
                        Candidate(
                            i + j, word if j == 0 else f"alt{j}", 0.6 if j == 0 else 0.4 / 2**j
                        )
                        for j in range(top_logprobs)
                    )
                    if top_logprobs
                    else ()
                )
                yield from tracker.token(word, i, 0.6 if top_logprobs else None, top)
                n += 1
            yield from tracker.finish()
            elapsed = time.perf_counter() - start
            yield Finished(
                reason,
                Stats(
                    prompt_tokens=len(prompt.tokens),
                    generated_tokens=n,
                    total_s=elapsed,
                    decode_tps=n / elapsed if elapsed > 0 else 0.0,
                    **tracker.stats_fields(),
                ),
            )

    def warm(self, messages: Sequence[ChatMessage]) -> int:
        with self._lock:
            self.warmed.append(list(messages))
        return 0

    def close(self) -> None:
        self.closed = True


def _words(text: str) -> list[str]:
    """Split keeping whitespace attached, so joining the pieces gives the text back."""
    import re

    return re.findall(r"\s*\S+|\s+$", text)
