"""The context-window policy, stated once: how much of the window a reply keeps, and which old
turns are left out when a conversation no longer fits.

:func:`plan_context` is pure (it only calls the ``render`` it is given). The llama.cpp engine
plans every reply with it; the chat app's context meter and rendered-prompt view ask the engine
for the same plan (``Engine.plan``), so what they show is what the next reply sends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chatterm.engine.base import ContextPlan, Drop, RenderedPrompt
from chatterm.engine.events import ChatMessage
from chatterm.errors import ContextOverflowError

DROP_TARGET = 0.55
"""When history overflows, old turns are dropped down to this share of the window in one go:
every drop changes the prompt's prefix and costs a full re-prefill, so drop rarely and in bulk."""

MIN_REPLY_TOKENS = 16
"""The fewest tokens a reply is ever left."""


def reply_reserve(n_ctx: int, max_tokens: int) -> int:
    """Tokens kept free for the reply: ``max_tokens``, at most a quarter of the window, at
    least :data:`MIN_REPLY_TOKENS`."""
    return max(MIN_REPLY_TOKENS, min(max_tokens, n_ctx // 4))


def split_system(messages: Sequence[ChatMessage]) -> tuple[list[ChatMessage], list[ChatMessage]]:
    """``(head, body)``: the leading system prompt (kept always) and the rest."""
    head = [m for m in messages[:1] if m.role == "system"]
    return head, list(messages[len(head) :])


def plan_context(
    messages: Sequence[ChatMessage],
    *,
    n_ctx: int,
    max_tokens: int,
    render: Callable[[Sequence[ChatMessage]], RenderedPrompt],
    previous: Drop | None = None,
    max_token_bytes: int = 0,
) -> ContextPlan:
    """Plan the prompt for a reply to ``messages`` so that :func:`reply_reserve` tokens
    remain, dropping whole turns, oldest first (never the system prompt or the newest
    message), down to about :data:`DROP_TARGET` of the window.

    ``previous`` (a :meth:`ContextPlan.drop_point`) is reused while it still fits, so the
    prompt's prefix, and with it the KV cache, stays the same across turns. Raises
    :class:`ContextOverflowError` when even the newest message alone does not fit, before
    tokenizing anything when ``max_token_bytes`` (the longest token's bytes) proves it: tokenizing
    50 MB takes minutes and gigabytes only to find it does not fit.
    """
    reserve = reply_reserve(n_ctx, max_tokens)
    limit = n_ctx - reserve
    if max_token_bytes and messages:
        system_text = messages[0].content if messages[0].role == "system" else ""
        size = len(system_text.encode("utf-8", "replace")) + len(
            messages[-1].content.encode("utf-8", "replace")
        )
        if size > max(limit, 0) * max_token_bytes:
            raise ContextOverflowError(
                f"the message is {size:,} bytes: at least {size // max_token_bytes:,} tokens, "
                f"but the context window is {n_ctx} tokens with {reserve} kept for the reply; "
                "shorten it or raise --ctx-size"
            )
    prompt = render(messages)
    total = len(prompt.tokens)
    if total <= limit:
        return ContextPlan(prompt, 0, total, reserve, n_ctx)
    head, body = split_system(messages)
    if previous is not None:
        first_content, k = previous
        if 0 < k < len(body) and body[k].content == first_content:
            candidate = render(head + body[k:])
            if len(candidate.tokens) <= limit:
                return ContextPlan(candidate, k, total, reserve, n_ctx)
    target = min(limit, int(n_ctx * DROP_TARGET))
    starts = [i for i, m in enumerate(body) if m.role == "user" and i > 0]
    best: tuple[RenderedPrompt, int] | None = None
    for k in [*starts, len(body) - 1]:
        candidate = render(head + body[k:])
        if len(candidate.tokens) <= limit and best is None:
            best = (candidate, k)
        if len(candidate.tokens) <= target:
            best = (candidate, k)
            break
    if best is None:
        raise ContextOverflowError(
            f"the message needs {len(render(head + body[-1:]).tokens)} tokens with the "
            f"system prompt, but the context window is {n_ctx} tokens with {reserve} "
            "kept for the reply; shorten it or raise --ctx-size"
        )
    return ContextPlan(best[0], best[1], total, reserve, n_ctx)
