"""Same prompt, same seed, same reply: whether the prompt's prefix came from a fresh prefill, the
KV cache in memory, a saved state or the lab's repeated runs (issue: flash attention's small-batch
kernel made a cached prefix change greedy replies). Texts are only compared between runs in the
same test, on the same machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatterm.engine.events import ChatMessage, Finished, PromptReady, Token
from chatterm.engine.kv_cache import KVStateCache
from chatterm.engine.llama_engine import (
    PREFILL_CHUNK,
    REPRODUCIBLE_BATCH,
    LlamaEngine,
    prefill_chunks,
)
from chatterm.lab.compare import EnginePool, Variant, plan, stream
from chatterm.sampling import SamplingSettings

GREEDY = SamplingSettings(temperature=0, seed=1, max_tokens=48)
N_CTX = 2048

# A pasted text of ~300 tokens, as people ask about: long enough that nearly all of the prompt
# is reusable from the KV cache on a second run.
ARTICLE = (
    "The Rhine rises in the Swiss Alps and flows north through Lake Constance, then west along "
    "the border between Switzerland and Germany before turning north at Basel. It passes "
    "Strasbourg, Mannheim, Mainz, Koblenz, Cologne and Duisburg, then enters the Netherlands, "
    "where it splits into several branches that reach the North Sea near Rotterdam. For "
    "centuries it has carried coal, grain, timber and wine; today container barges move goods "
    "between the port of Rotterdam and the industrial towns upstream. The Middle Rhine gorge "
    "between Bingen and Koblenz, with its castles and vineyards on steep slopes, is a World "
    "Heritage Site. Floods in winter and low water in late summer both disrupt shipping, and "
    "engineers have straightened, dredged and embanked the river since the nineteenth century. "
    "Salmon, which had vanished by the 1950s because of pollution, have begun to return after "
    "decades of cleaning up the water and building fish passes at the weirs."
)


def conversation(question: str) -> list[ChatMessage]:
    return [
        ChatMessage("system", "You answer questions about the text the user gives."),
        ChatMessage("user", f"{ARTICLE}\n\n{question}"),
    ]


def reply(engine: LlamaEngine, messages: list[ChatMessage]) -> tuple[PromptReady, str]:
    events = list(engine.generate(messages, GREEDY))
    assert isinstance(events[0], PromptReady) and isinstance(events[-1], Finished)
    assert events[-1].reason in ("stop", "length")
    return events[0], "".join(e.text for e in events if isinstance(e, Token))


def fresh(starter_path: Path, cache: KVStateCache | None = None) -> LlamaEngine:
    return LlamaEngine(starter_path, n_ctx=N_CTX, kv_cache=cache)


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 10, [(0, 10)]),
        (0, 512, [(0, 512)]),
        (0, 520, [(0, 456), (456, 520)]),
        (100, 1124, [(100, 612), (612, 1124)]),
        (0, 1030, [(0, 512), (512, 966), (966, 1030)]),
        (258, 322, [(258, 322)]),
    ],
)
def test_prefill_chunks_never_end_on_a_small_batch(start, end, expected):
    chunks = prefill_chunks(start, end)
    assert chunks == expected
    assert all(e - b <= PREFILL_CHUNK for b, e in chunks)
    assert chunks[0][0] == start and chunks[-1][1] == end


def test_a_cached_prompt_gives_the_same_reply_as_a_fresh_prefill(starter_path):
    messages = conversation("Which cities does the river pass? List them.")
    engine = fresh(starter_path)
    try:
        first_ready, first = reply(engine, messages)
        again_ready, again = reply(engine, messages)
    finally:
        engine.close()
    assert first_ready.cached_tokens == 0
    # nearly all of it came from memory: all but the last batch
    assert again_ready.cached_tokens == again_ready.prompt_tokens - REPRODUCIBLE_BATCH > 100
    assert first.strip()
    assert again == first


def test_a_saved_state_gives_the_same_reply_in_a_fresh_engine(starter_path, tmp_path):
    cache = KVStateCache(tmp_path / "kv", 1 << 30, min_tokens=64, min_gain=8)
    messages = conversation("What returned to the river, and why?")
    first_engine = fresh(starter_path, cache)
    try:
        _, first = reply(first_engine, messages)
    finally:
        first_engine.close()
    resumed = fresh(starter_path, cache)
    try:
        ready, again = reply(resumed, messages)
    finally:
        resumed.close()
    assert ready.cached_tokens == ready.prompt_tokens - REPRODUCIBLE_BATCH  # restored from disk
    assert again == first


def test_a_later_turn_is_the_same_from_memory_from_disk_and_from_scratch(starter_path, tmp_path):
    """The second turn's prompt holds the first reply. In memory its KV cells were written one
    decoded token at a time; a fresh prefill writes them as one batch: those cells are never
    reused, so all three paths agree."""
    cache = KVStateCache(tmp_path / "kv", 1 << 30, min_tokens=64, min_gain=8)
    turn1 = conversation("Name two things barges carry today.")
    chatting = fresh(starter_path, cache)
    try:
        _, answer = reply(chatting, turn1)
        turn2 = [*turn1, ChatMessage("assistant", answer), ChatMessage("user", "And before?")]
        chatting.warm([*turn1, ChatMessage("assistant", answer)])  # as the chat app does
        in_memory_ready, in_memory = reply(chatting, turn2)
    finally:
        chatting.close()
    scratch = fresh(starter_path)
    try:
        scratch_ready, from_scratch = reply(scratch, turn2)
    finally:
        scratch.close()
    resumed = fresh(starter_path, cache)
    try:
        disk_ready, from_disk = reply(resumed, turn2)
    finally:
        resumed.close()
    assert scratch_ready.cached_tokens == 0
    assert in_memory_ready.cached_tokens > 0 and disk_ready.cached_tokens > 0
    assert in_memory == from_scratch == from_disk


def test_lab_compare_with_two_identical_variants_gives_two_identical_replies(starter_path):
    engine = fresh(starter_path)
    pool = EnginePool(lambda model: engine, close_on_switch=False)
    try:
        runs = plan(
            f"{ARTICLE}\n\nSummarise the text in one sentence.",
            [Variant.parse("temperature=0"), Variant.parse("temperature=0")],
            seed=3,
            overrides={"max_tokens": 48},
        )
        for _ in stream(runs, pool):
            pass
    finally:
        engine.close()
    assert all(r.done and r.text.strip() for r in runs)
    assert runs[0].text == runs[1].text
    assert runs[1].stats is not None and runs[1].stats["cached_tokens"] > 0
