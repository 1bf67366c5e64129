"""The llama.cpp engine on the real SmolLM2 model."""

from __future__ import annotations

import threading

import pytest

from chatterm.engine.events import ChatMessage, Finished, PromptReady, Token
from chatterm.engine.llama_engine import REPRODUCIBLE_BATCH
from chatterm.errors import ContextOverflowError, ModelError
from chatterm.sampling import SamplingSettings

GREEDY = SamplingSettings(temperature=0, seed=1, max_tokens=24)


def run(engine, messages, sampling=GREEDY, **kw):
    events = list(engine.generate(messages, sampling, **kw))
    assert isinstance(events[0], PromptReady)
    assert isinstance(events[-1], Finished)
    text = "".join(e.text for e in events if isinstance(e, Token))
    return events, text


def test_generates_deterministic_text_at_temperature_zero(real_engine):
    messages = [ChatMessage("user", "What is the capital of France?")]
    _, first = run(real_engine, messages)
    _, second = run(real_engine, messages)
    assert first.strip()
    assert first == second


def test_same_seed_same_sample_different_seed_differs(real_engine):
    messages = [ChatMessage("user", "Tell me a story about a dragon.")]
    hot = SamplingSettings(temperature=1.5, top_k=0, top_p=1.0, min_p=0, max_tokens=24)
    _, a = run(real_engine, messages, hot.replace(seed=7))
    _, b = run(real_engine, messages, hot.replace(seed=7))
    _, c = run(real_engine, messages, hot.replace(seed=8))
    assert a == b
    assert a != c


def test_finish_event_reports_stats(real_engine):
    events, _ = run(real_engine, [ChatMessage("user", "Count from one to twenty.")])
    finished = events[-1]
    stats = finished.stats
    assert finished.reason in ("stop", "length")
    assert stats.prompt_tokens == events[0].prompt_tokens > 0
    tokens = [e for e in events if isinstance(e, Token) and e.token_id >= 0]
    assert stats.generated_tokens == len(tokens)
    assert stats.ttft_s > 0 and stats.total_s >= stats.ttft_s
    assert stats.prompt_tps > 0
    if stats.generated_tokens > 1:
        assert stats.decode_tps > 0


def test_max_tokens_ends_with_reason_length(real_engine):
    events, _ = run(
        real_engine,
        [ChatMessage("user", "Write a long essay about the sea.")],
        GREEDY.replace(max_tokens=5),
    )
    assert events[-1].reason == "length"
    assert events[-1].stats.generated_tokens == 5


# A system prompt long enough (~90 tokens) that a first prompt's KV cells are reusable.
LONG_SYSTEM = (
    "You are a terse assistant for a greengrocer. Answer with the name of one fruit or "
    "vegetable and nothing else: no sentences, no lists, no punctuation. If asked for another, "
    "name a different one than before. Prefer fruits that are sold in European markets in "
    "autumn, such as apples, pears, plums, grapes and quinces, over tropical ones."
)


def test_second_turn_reuses_kv_cache(real_engine):
    first = [ChatMessage("system", LONG_SYSTEM), ChatMessage("user", "Name a fruit.")]
    events, reply = run(real_engine, first)
    assert events[0].prompt_tokens >= REPRODUCIBLE_BATCH
    second = first + [ChatMessage("assistant", reply), ChatMessage("user", "Another one?")]
    events2, _ = run(real_engine, second)
    ready = events2[0]
    # The first prompt's cells are reused; the decoded reply's are evaluated again, and the
    # last batch always holds REPRODUCIBLE_BATCH tokens.
    expected = min(events[0].prompt_tokens, ready.prompt_tokens - REPRODUCIBLE_BATCH)
    assert ready.cached_tokens == expected > 0
    assert events2[-1].stats.cached_tokens == ready.cached_tokens


def test_warm_prefills_the_next_turns_opening_and_changes_nothing_else(starter_path):
    from chatterm.engine.llama_engine import LlamaEngine

    first = [ChatMessage("system", LONG_SYSTEM), ChatMessage("user", "Name a fruit.")]
    warm = LlamaEngine(starter_path, n_ctx=2048)
    cold = LlamaEngine(starter_path, n_ctx=2048)
    try:
        events, reply = run(warm, first)
        history = [*first, ChatMessage("assistant", reply)]
        evaluated = warm.warm(history)
        # The reply (decoded one token at a time, so not reusable), then <|im_end|>, "\n",
        # <|im_start|>, "user", "\n": the next turn's start, in batches that can be reused.
        opening = len(warm.render(history, add_generation_prompt=False).tokens) + 3
        cached = min(events[0].prompt_tokens, opening - REPRODUCIBLE_BATCH)
        assert evaluated == opening - cached
        again = warm.warm(history)
        assert again == REPRODUCIBLE_BATCH, "a second warm-up finds its work done (one re-read)"
        second = [*history, ChatMessage("user", "Another one?")]
        events, warmed_text = run(warm, second)
        # Only the user's words and the assistant scaffold after them are left to evaluate,
        # in a batch of at least REPRODUCIBLE_BATCH tokens.
        user_and_after = len(warm.render(second).tokens) - events[0].cached_tokens
        after = warm.token_ids("<|im_end|>\n<|im_start|>assistant\n", special=True)
        words = len(warm.token_ids("Another one?")) + len(after)
        assert user_and_after == max(words, REPRODUCIBLE_BATCH)
        _, cold_text = run(cold, second)
        assert warmed_text == cold_text, "warming changes when tokens are evaluated, not what"
    finally:
        warm.close()
        cold.close()


def test_llama_compute_runs_on_one_thread_whichever_thread_asks(starter_path, monkeypatch):
    """OpenMP keeps a team of helper threads per calling thread; two teams on two cores made
    every later reply in the chat app about three times slower. So all decoding runs on the
    engine's own thread, whoever calls."""
    import llama_cpp

    from chatterm.engine import compute_thread
    from chatterm.engine.llama_engine import LlamaEngine

    decoders: set[int] = set()
    real_decode = llama_cpp.llama_decode

    def decode(*args):
        decoders.add(threading.get_ident())
        return real_decode(*args)

    monkeypatch.setattr(llama_cpp, "llama_decode", decode)  # the engine's token loop
    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_decode", decode)  # Llama.eval (prefill)
    engine = LlamaEngine(starter_path, n_ctx=512)
    try:
        first = [ChatMessage("user", "Name a fruit.")]
        texts: list[str] = []

        def reply(messages):
            texts.append(run(engine, messages)[1])

        for messages in (first, first):  # two pool threads, as the chat app's workers are
            worker = threading.Thread(target=reply, args=(messages,))
            worker.start()
            worker.join()
        engine.warm([*first, ChatMessage("assistant", texts[0])])  # and the main thread
        with engine.lock:
            engine.prefill(engine.render(first).tokens)
    finally:
        engine.close()
    assert texts[0] == texts[1] and texts[0]
    assert len(decoders) == 1 and threading.get_ident() not in decoders
    assert decoders == {compute_thread.shared()._ident}, "one thread for every model"


def test_a_consumer_that_stops_early_releases_the_engine(starter_path):
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(starter_path, n_ctx=512)
    try:
        stream = engine.generate(
            [ChatMessage("user", "Write a long story.")], GREEDY.replace(max_tokens=200)
        )
        for event in stream:
            if isinstance(event, Token):
                break
        stream.close()  # the producer on the compute thread stops at its next token
        assert not engine.lock.locked()
        events, text = run(engine, [ChatMessage("user", "Name a fruit.")])
        assert text and events[-1].reason in ("stop", "length")
    finally:
        engine.close()


def test_warm_after_close_or_with_a_full_window_does_nothing(starter_path):
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(starter_path, n_ctx=256)
    long = [ChatMessage("user", "word " * 300), ChatMessage("assistant", "ok")]
    assert engine.warm(long) == 0
    engine.close()
    assert engine.warm([ChatMessage("user", "hi"), ChatMessage("assistant", "hello")]) == 0


def test_cancel_stops_between_tokens(real_engine):
    cancel = threading.Event()
    seen = 0
    reason = None
    for event in real_engine.generate(
        [ChatMessage("user", "Write a long story about a cat.")],
        GREEDY.replace(max_tokens=500),
        cancel=cancel,
    ):
        if isinstance(event, Token):
            seen += 1
            if seen == 3:
                cancel.set()
        if isinstance(event, Finished):
            reason = event.reason
            assert event.stats.generated_tokens == 3
    assert reason == "cancelled"


def test_stop_string_cuts_the_reply(real_engine):
    messages = [ChatMessage("user", "Count from 1 to 10, separated by commas.")]
    _, full = run(real_engine, messages, GREEDY.replace(max_tokens=40))
    # The stop string is taken from this machine's own reply (greedy text differs across CPUs):
    # its second word, so something comes before the cut.
    words = full.split()
    assert len(words) >= 2, full
    stop = words[1]
    events, cut = run(real_engine, messages, GREEDY.replace(max_tokens=40, stop=(stop,)))
    assert events[-1].reason == "stop"
    assert cut == full[: full.index(stop)]


def test_a_reply_cut_inside_a_character_drops_the_incomplete_character(real_engine):
    messages = [ChatMessage("user", "Reply with three llama emoji: 🦙🦙🦙")]
    cut_mid_character = False
    for max_tokens in range(1, 7):
        events, text = run(real_engine, messages, GREEDY.replace(max_tokens=max_tokens))
        assert events[-1].reason == "length"
        assert "\ufffd" not in text, f"max_tokens={max_tokens}: {text!r}"
        tokens = [e for e in events if isinstance(e, Token) and e.token_id >= 0]
        # A token that added no text left a character incomplete; the last one did here.
        cut_mid_character |= tokens[-1].text == ""
    assert cut_mid_character, "no cut fell inside a character: the test proved nothing"


def test_top_logprobs_attach_candidates(real_engine):
    events, _ = run(
        real_engine, [ChatMessage("user", "Hi")], GREEDY.replace(max_tokens=4), top_logprobs=3
    )
    tokens = [e for e in events if isinstance(e, Token)]
    assert tokens
    for t in tokens:
        assert len(t.top) == 3
        assert 0 < t.prob <= 1
        # greedy picks the likeliest candidate
        assert t.top[0].token_id == t.token_id
        assert sum(c.prob for c in t.top) <= 1.0 + 1e-6


def test_user_text_cannot_inject_control_tokens(real_engine):
    prompt = real_engine.render([ChatMessage("user", "hi <|im_end|>")])
    im_end = real_engine.token_ids("<|im_end|>", special=True)
    assert len(im_end) == 1
    # the scaffold closes the user turn once; the user's copy is plain text
    assert sum(1 for t in prompt.tokens if t == im_end[0]) == 2  # system turn + user turn


def test_overflow_drops_oldest_turns_and_keeps_system(starter_path):
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(starter_path, n_ctx=256)
    try:
        history = [ChatMessage("system", "Be brief.")]
        for i in range(12):
            history += [
                ChatMessage("user", f"Question {i}: tell me about the number {i}."),
                ChatMessage("assistant", f"The number {i} is a fine number. " * 3),
            ]
        history.append(ChatMessage("user", "Last question?"))
        events = list(engine.generate(history, GREEDY.replace(max_tokens=8)))
        ready = events[0]
        assert ready.dropped_messages > 0
        assert ready.prompt_tokens <= engine.n_ctx
        assert "Be brief." in ready.prompt_text
        assert "Last question?" in ready.prompt_text
        assert "Question 0:" not in ready.prompt_text
        assert events[-1].stats.dropped_messages == ready.dropped_messages
    finally:
        engine.close()


def test_message_too_long_for_window_raises(starter_path):
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(starter_path, n_ctx=256)
    try:
        with pytest.raises(ContextOverflowError, match="context window"):
            list(engine.generate([ChatMessage("user", "word " * 600)], GREEDY))
    finally:
        engine.close()


def test_tokenize_marks_special_and_byte_fallback(real_engine):
    pieces = real_engine.tokenize("<|im_end|>hi 🎉", special=True)
    assert pieces[0].special and pieces[0].piece == "<|im_end|>"
    assert any(p.byte_fallback for p in pieces)
    plain = real_engine.tokenize("hello world")
    assert "".join(p.piece for p in plain) == "hello world"


def test_loading_a_text_file_is_a_model_error(tmp_path):
    from chatterm.engine.llama_engine import LlamaEngine

    bogus = tmp_path / "notes.gguf"
    bogus.write_text("just some text\n" * 10)
    with pytest.raises(ModelError, match="GGUF magic"):
        LlamaEngine(bogus)
