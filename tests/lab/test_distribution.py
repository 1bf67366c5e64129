"""Next-token probabilities on the real model: the engine's ``top`` is the softmax of the
logits, and ``explain`` agrees with llama.cpp's own samplers."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from chatterm.engine.events import ChatMessage, Token
from chatterm.engine.fake import FakeEngine
from chatterm.errors import UsageError
from chatterm.lab.distribution import (
    distribution_after,
    explain,
    next_token_distribution,
    raw_text_tokens,
)
from chatterm.sampling import SamplingSettings

MESSAGES = [ChatMessage("user", "Write a poem about the sea.")]
GREEDY = SamplingSettings(temperature=0, seed=1, max_tokens=6)


def softmax(logits):
    x = np.asarray(logits, dtype=np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def tokens_of(engine, messages, sampling=GREEDY, k=10):
    return [
        e
        for e in engine.generate(messages, sampling, top_logprobs=k)
        if isinstance(e, Token) and e.token_id >= 0
    ]


def test_top_candidates_are_the_softmax_of_the_logits(real_engine):
    first = tokens_of(real_engine, MESSAGES)[0]
    with real_engine.lock:
        real_engine.prefill(real_engine.render(MESSAGES).tokens)
        probs = softmax(real_engine.logits())
    assert len(first.top) == 10
    assert sum(c.prob for c in first.top) <= 1.0 + 1e-6
    assert [c.token_id for c in first.top] == list(np.argsort(-probs)[:10])
    for c in first.top:
        assert c.prob == pytest.approx(probs[c.token_id], rel=1e-5)
    # at temperature 0 the chosen token is the likeliest, with the same probability
    assert first.token_id == first.top[0].token_id
    assert first.prob == pytest.approx(probs[first.token_id], rel=1e-5)


def test_every_token_carries_sorted_probabilities_that_sum_to_at_most_one(real_engine):
    sampled = SamplingSettings(temperature=1.0, seed=3, max_tokens=12)
    for token in tokens_of(real_engine, MESSAGES, sampled, k=5):
        probs = [c.prob for c in token.top]
        assert probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1.0 + 1e-6
        assert 0 < token.prob <= 1.0
        if token.token_id not in [c.token_id for c in token.top]:
            assert token.prob <= probs[-1] + 1e-6


def test_captured_distribution_matches_the_first_generated_token(real_engine):
    first = tokens_of(real_engine, MESSAGES)[0]
    dist = next_token_distribution(real_engine, MESSAGES)
    assert dist.complete and len(dist) == dist.vocab_size == real_engine.llama.n_vocab()
    assert dist.probs.sum() == pytest.approx(1.0)
    top = dist.top(10)
    assert [c.token_id for c in top] == [c.token_id for c in first.top]
    assert [c.piece for c in top] == [c.piece for c in first.top]
    np.testing.assert_allclose([c.prob for c in top], [c.prob for c in first.top], rtol=1e-5)


def test_continuation_gives_the_distribution_of_a_later_token(real_engine):
    tokens = tokens_of(real_engine, MESSAGES)
    dist = next_token_distribution(
        real_engine, MESSAGES, continuation=[tokens[0].token_id, tokens[1].token_id]
    )
    assert [c.token_id for c in dist.top(5)] == [c.token_id for c in tokens[2].top[:5]]


def test_explain_agrees_with_llama_cpp_samplers_on_real_logits(real_engine):
    """Run llama.cpp's own top-k → top-p → min-p → temperature chain over the same logits and
    compare the survivors and their final probabilities."""
    import llama_cpp
    from llama_cpp import _internals

    with real_engine.lock:
        real_engine.prefill(real_engine.render(MESSAGES).tokens)
        logits = np.array(real_engine.logits(), copy=True)
    dist = next_token_distribution(real_engine, MESSAGES)
    cases = [
        SamplingSettings(),
        SamplingSettings(top_k=0, top_p=0.9, min_p=0.0, temperature=1.0),
        SamplingSettings(top_k=0, top_p=1.0, min_p=0.1, temperature=1.5),
        SamplingSettings(top_k=5, top_p=0.5, min_p=0.0, temperature=0.7),
        SamplingSettings(top_k=100, top_p=0.99, min_p=0.01, temperature=2.0),
    ]
    for s in cases:
        chain = _internals.LlamaSampler()
        if s.top_k > 0:
            chain.add_top_k(s.top_k)
        if s.top_p < 1:
            chain.add_top_p(s.top_p, 1)
        if s.min_p > 0:
            chain.add_min_p(s.min_p, 1)
        chain.add_temp(s.temperature)
        arr = _internals.LlamaTokenDataArray(n_vocab=len(logits))
        arr.copy_logits(logits)
        llama_cpp.llama_sampler_apply(chain.sampler, ctypes.byref(arr.candidates))
        n = arr.candidates.size
        ids = arr.candidates_data.id[:n].tolist()
        scaled = arr.candidates_data.logit[:n].astype(np.float64)
        chain.close()
        expected = dict(zip(ids, softmax(scaled).tolist()))

        expl = explain(dist, s, n=n + 5)
        got = {r.token_id: r.final_prob for r in expl.rows if r.survived}
        assert expl.survivors == n, s
        assert got.keys() == expected.keys(), s
        for token_id, p in expected.items():
            assert got[token_id] == pytest.approx(p, rel=1e-4, abs=1e-7), s
        assert all(not r.survived for r in expl.rows[n:])


def test_raw_text_continues_without_the_chat_template(real_engine):
    dist = distribution_after(
        real_engine,
        raw_text_tokens(real_engine, "The capital of France is"),
        prompt_text="The capital of France is",
    )
    assert dist.pieces[0] == " Paris"
    assert dist.prompt_tokens == len(raw_text_tokens(real_engine, "The capital of France is"))


def test_an_engine_without_logits_is_refused():
    with pytest.raises(UsageError, match="logits"):
        next_token_distribution(FakeEngine(), MESSAGES)


def test_probabilities_off_reads_nothing(real_engine):
    tokens = [e for e in real_engine.generate(MESSAGES, GREEDY) if isinstance(e, Token)]
    assert tokens and all(t.prob is None and t.top == () for t in tokens)
