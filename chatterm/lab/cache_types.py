"""What a smaller KV cache costs: the same text through f16 and quantized caches.

The KV cache grows with every token of the context (for SmolLM2 at 8,192 tokens: 189 MB in f16,
100 MB in q8_0, 53 MB in q4_0). Storing it in fewer bits saves memory but rounds every key and
value the model attends to. This experiment feeds one fixed text through the model once per
cache type, token by token as decoding does, and counts at how many positions the model's most
likely next token is the one it picks with an f16 cache: the *top-1 agreement*.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from chatterm.cache_types import CACHE_TYPES, cache_type


@dataclass(frozen=True)
class CacheTypeResult:
    """One cache type's run: memory for the window, agreement with f16, speed.

    ``kv_cache_bytes``: the KV cache for ``n_ctx`` tokens in this format. ``agreement``: the
    share of the ``positions`` where the top-1 next token equals f16's (1.0 for f16 itself).
    ``first_difference``: the first such position that differs, or ``None``.
    ``tokens_per_s``: tokens evaluated per second, one at a time."""

    cache_type: str
    n_ctx: int
    kv_cache_bytes: int
    positions: int
    agreement: float
    first_difference: int | None
    tokens_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare_cache_types(
    load: Callable[[str], Any],
    text: str,
    *,
    types: Sequence[str] = tuple(CACHE_TYPES),
    tokens: int = 512,
    cancel: threading.Event | None = None,
) -> list[CacheTypeResult]:
    """Run ``text`` (its first ``tokens`` tokens) through an engine per cache type.

    ``load(name)`` returns a loaded :class:`~chatterm.engine.llama_engine.LlamaEngine` with
    that cache type (the caller closes nothing: each engine is closed here after its run).
    The first type is the reference; f16 is put first when it is missing. Raises
    :class:`~chatterm.errors.SettingError` for an unknown type and
    :class:`~chatterm.errors.UsageError` for a text of fewer than 2 tokens."""
    from chatterm.errors import UsageError

    names = [cache_type(t).name for t in types]
    if "f16" not in names:
        names.insert(0, "f16")
    names.sort(key=lambda n: n != "f16")
    results: list[CacheTypeResult] = []
    reference: list[int] | None = None
    ids: list[int] = []
    for name in names:
        engine = load(name)
        try:
            if not ids:
                ids = engine.token_ids(text, add_bos=True)[:tokens]
                if len(ids) < 2:
                    raise UsageError(
                        "the text needs at least 2 tokens to compare next-token choices"
                    )
            choices, seconds = engine.teacher_forced_choices(ids, cancel)
            n_ctx = engine.n_ctx
            kv = engine.info.kv_cache_bytes(n_ctx, CACHE_TYPES[name].bytes_per_value)
        finally:
            engine.close()
        if reference is None:
            reference = choices
        same = [a == b for a, b in zip(choices, reference)]
        first = next((i for i, ok in enumerate(same) if not ok), None)
        results.append(
            CacheTypeResult(
                cache_type=name,
                n_ctx=n_ctx,
                kv_cache_bytes=kv,
                positions=len(same),
                agreement=sum(same) / len(same) if same else 0.0,
                first_difference=first,
                tokens_per_s=len(choices) / seconds if seconds > 0 else 0.0,
            )
        )
    return results
