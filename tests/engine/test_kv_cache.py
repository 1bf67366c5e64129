"""Saved KV states on the real SmolLM2 model: a fresh engine resumes a conversation from disk
with the same output as a full prefill, the cache stays under its cap, and bad or mismatched
files are never used.

``min_tokens`` is lowered so short prompts exercise the cache and the tests stay fast.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chatterm.engine.events import ChatMessage, Finished, PromptReady, Token
from chatterm.engine.kv_cache import KVStateCache
from chatterm.engine.llama_engine import REPRODUCIBLE_BATCH
from chatterm.sampling import SamplingSettings

GREEDY = SamplingSettings(temperature=0, seed=1, max_tokens=8)
N_CTX = 512


def history(topic: str) -> list[ChatMessage]:
    """A conversation of ~150 tokens whose first user words differ per ``topic``, so two
    histories share only the system prompt."""
    return [
        ChatMessage("system", "You are a terse assistant."),
        ChatMessage("user", f"{topic}: tell me three short facts about {topic}, please."),
        ChatMessage(
            "assistant",
            f"1. {topic} is old. 2. {topic} is known worldwide. 3. Many "
            f"people have written about {topic} in books and articles.",
        ),
        ChatMessage("user", f"Now give me two more facts about {topic}, and keep them short."),
        ChatMessage(
            "assistant",
            f"4. {topic} changed over the centuries. 5. Schools teach "
            f"{topic} to children in many countries.",
        ),
        ChatMessage("user", f"Summarise {topic} in one sentence."),
    ]


def engine(starter_path: Path, cache: KVStateCache | None, n_ctx: int = N_CTX):
    from chatterm.engine.llama_engine import LlamaEngine

    return LlamaEngine(starter_path, n_ctx=n_ctx, kv_cache=cache)


def reply(eng, messages) -> tuple[PromptReady, list[int], Finished]:
    events = list(eng.generate(messages, GREEDY))
    assert isinstance(events[0], PromptReady) and isinstance(events[-1], Finished)
    tokens = [e.token_id for e in events if isinstance(e, Token) and e.token_id >= 0]
    return events[0], tokens, events[-1]


def make_cache(tmp_path: Path, max_bytes: int = 1 << 30) -> KVStateCache:
    return KVStateCache(tmp_path / "kv", max_bytes, min_tokens=48, min_gain=8)


def state_files(cache: KVStateCache) -> list[Path]:
    return sorted(cache.directory.rglob("*.kv"))


def test_fresh_engine_resumes_from_saved_state_with_identical_output(starter_path, tmp_path):
    """The restored state reproduces the reply of continuing in memory exactly, and that of a
    full prefill (the earlier reply is replaced here, so every restored KV cell was computed
    by a prefill, as a cold run computes it)."""
    cache = make_cache(tmp_path)
    follow_up = history("Rome") + [
        ChatMessage("assistant", "(answer omitted)"),
        ChatMessage("user", "And Paris?"),
    ]
    first = engine(starter_path, cache)
    try:
        ready, _, done = reply(first, history("Rome"))
        assert ready.cached_tokens == 0
        assert done.reason in ("stop", "length")
        first.kv_cache = None  # continue in memory without saving over the state
        _, in_memory, _ = reply(first, follow_up)
    finally:
        first.close()
    assert len(state_files(cache)) == 1

    resumed = engine(starter_path, cache)
    cold = engine(starter_path, None)
    try:
        ready, tokens, _ = reply(resumed, follow_up)
        cold_ready, cold_tokens, _ = reply(cold, follow_up)
    finally:
        resumed.close()
        cold.close()
    assert cold_ready.cached_tokens == 0
    assert ready.cached_tokens > ready.prompt_tokens // 2
    assert tokens and tokens == in_memory
    assert tokens == cold_tokens


def test_cache_stays_under_cap_evicting_least_recently_used(starter_path, tmp_path):
    probe = make_cache(tmp_path / "probe")
    eng = engine(starter_path, probe)
    try:
        reply(eng, history("Rome"))
        size = probe.total_bytes()
        assert size > 0
        cache = make_cache(tmp_path, max_bytes=int(size * 2.5))
        eng.kv_cache = cache
        eng.llama.reset()
        reply(eng, history("Rome"))  # saved: A
        reply(eng, history("Jupiter"))  # saved: A, B
        ready, _, _ = reply(eng, history("Rome"))  # A restored from disk: now used last
        # all of it but the last batch, which is always evaluated (see REPRODUCIBLE_BATCH)
        assert ready.cached_tokens == ready.prompt_tokens - REPRODUCIBLE_BATCH
        reply(eng, history("Vienna"))  # saving C must evict B, the least recently used
        prompts = {t: eng.render(history(t)).tokens for t in ("Rome", "Jupiter", "Vienna")}
    finally:
        eng.close()
    assert cache.total_bytes() <= cache.max_bytes
    kept = [e.tokens for e in cache.entries(eng.kv_cache_key)]
    starts = {t for t, p in prompts.items() for k in kept if k[: len(p)] == p}
    assert starts == {"Rome", "Vienna"}


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_state_file_is_ignored_and_deleted(starter_path, tmp_path, damage):
    cache = make_cache(tmp_path)
    first = engine(starter_path, cache)
    try:
        _, expected, _ = reply(first, history("Rome"))
    finally:
        first.close()
    (state,) = state_files(cache)
    size = state.stat().st_size
    if damage == "garbage":
        state.write_bytes(b"\x07" * size)
    else:
        state.write_bytes(state.read_bytes()[: size // 2])

    second = engine(starter_path, cache)
    try:
        ready, tokens, done = reply(second, history("Rome"))
    finally:
        second.close()
    assert ready.cached_tokens == 0
    assert done.error is None
    assert tokens == expected
    # the broken file was deleted; the state saved after this reply took its name
    assert state.stat().st_size == size
    assert not state.read_bytes().startswith(b"\x07" * 4)


def test_state_saved_with_another_context_size_is_not_used(starter_path, tmp_path):
    cache = make_cache(tmp_path)
    small = engine(starter_path, cache, n_ctx=N_CTX)
    try:
        reply(small, history("Rome"))
    finally:
        small.close()
    assert len(state_files(cache)) == 1

    larger = engine(starter_path, cache, n_ctx=N_CTX * 2)
    try:
        ready, _, _ = reply(larger, history("Rome"))
    finally:
        larger.close()
    assert ready.cached_tokens == 0
    assert larger.kv_cache_key != small.kv_cache_key
