"""Attention and the logit lens on Gemma 3 270M: another architecture (a 262,144-token
vocabulary, tied output matrix, Gemma's norms) with sliding-window attention (512 tokens) in
five of every six layers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatterm.lab.attention import capture_attention
from chatterm.lab.distribution import distribution_after, raw_text_tokens
from chatterm.lab.lens import logit_lens
from tests.conftest import TEST_THREADS
from tests.lab.test_inside import assert_causal_distributions

pytestmark = pytest.mark.slow

WINDOW = 512


@pytest.fixture(scope="module")
def gemma_engine(gemma_path) -> Iterator[object]:
    from chatterm.engine.llama_engine import LlamaEngine

    engine = LlamaEngine(
        gemma_path, n_ctx=1024, threads=int(TEST_THREADS) if TEST_THREADS else None
    )
    yield engine
    engine.close()


def test_gemma_lens_last_layer_is_the_engines_own_distribution(gemma_engine):
    tokens = raw_text_tokens(gemma_engine, "The capital of France is")
    lens = logit_lens(gemma_engine, tokens)
    dist = distribution_after(gemma_engine, tokens)
    assert len(lens.layers) == 18
    last, theirs = lens.layers[-1].top, dist.top(5)
    assert [c.token_id for c in last] == [c.token_id for c in theirs]
    for a, b in zip(last, theirs):
        assert a.prob == pytest.approx(b.prob, abs=1e-3)


def test_gemma_attention_shows_the_sliding_window(gemma_engine):
    tokens = raw_text_tokens(gemma_engine, "word " * 599)
    n = len(tokens)
    assert n > WINDOW + 50
    a = capture_attention(gemma_engine, tokens)
    assert a.weights.shape == (18, 4, n, n)
    assert_causal_distributions(a.weights)
    # The last token's weight on tokens more than 512 back: zero in sliding-window layers,
    # not in the global ones (every sixth layer in Gemma 3).
    beyond = a.weights[:, :, -1, : n - WINDOW].sum(axis=(1, 2))
    local = [layer for layer in range(18) if beyond[layer] == 0.0]
    assert sorted(set(range(18)) - set(local)) == [5, 11, 17]
