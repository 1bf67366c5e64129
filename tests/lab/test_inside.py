"""Attention weights and the logit lens on the real SmolLM2, headless and through the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from chatterm.errors import ContextOverflowError
from chatterm.lab import attention as attention_mod
from chatterm.lab.attention import budget_bytes, capture_attention
from chatterm.lab.distribution import distribution_after, raw_text_tokens
from chatterm.lab.lens import logit_lens
from tests.conftest import run_cli
from tests.gguf_copies import copy_gguf

SENTENCE = "The cat sat on the mat because it was tired."
QUESTION = "The capital of France is"


def assert_causal_distributions(weights: np.ndarray) -> None:
    """``weights[..., query, key]``: every row sums to 1 and gives no weight to later keys."""
    n = weights.shape[-1]
    assert np.allclose(weights.sum(axis=-1), 1.0, atol=1e-4)
    later = np.triu(np.ones((n, n), dtype=bool), k=1)
    assert np.all(weights[..., later] == 0.0)
    assert np.all(weights >= 0.0)


def test_attention_rows_are_causal_distributions(real_engine):
    tokens = raw_text_tokens(real_engine, SENTENCE)
    a = capture_attention(real_engine, tokens)
    n = len(tokens)
    assert a.weights.shape == (30, 9, n, n)  # SmolLM2-135M: 30 layers, 9 heads
    assert_causal_distributions(a.weights)
    assert_causal_distributions(a.matrix(layer=4, head=2)[None])
    # Heads differ from one another: the capture is not one pattern copied around.
    assert not np.allclose(a.weights[4, 0], a.weights[4, 1])
    top = a.top(n - 1, 3)
    assert [w for _, w in top] == sorted((w for _, w in top), reverse=True)
    assert all(0 <= k < n for k, _ in top)


def test_capture_leaves_the_engine_context_alone(real_engine):
    tokens = raw_text_tokens(real_engine, QUESTION)
    before = distribution_after(real_engine, tokens)
    kept = real_engine.llama.n_tokens
    capture_attention(real_engine, tokens)
    logit_lens(real_engine, tokens)
    assert real_engine.llama.n_tokens == kept
    after = distribution_after(real_engine, tokens)
    assert np.array_equal(before.probs, after.probs)


def test_attention_over_budget_is_refused_before_capturing(real_engine, monkeypatch):
    tokens = raw_text_tokens(real_engine, SENTENCE)
    need = budget_bytes(30, 9, len(tokens))

    def never(*args, **kwargs):
        raise AssertionError("captured although over budget")

    monkeypatch.setattr("chatterm.lab.capture.capture", never)
    with pytest.raises(ContextOverflowError, match="budget of"):
        capture_attention(real_engine, tokens, budget=need - 1)
    assert attention_mod.BUDGET_BYTES == 256 * 2**20


def test_lens_last_layer_is_the_engines_own_distribution(real_engine):
    tokens = raw_text_tokens(real_engine, QUESTION)
    lens = logit_lens(real_engine, tokens)
    dist = distribution_after(real_engine, tokens)
    assert [g.layer for g in lens.layers] == list(range(30))
    last = lens.layers[-1].top
    engine_top = dist.top(5)
    assert [c.token_id for c in last] == [c.token_id for c in engine_top]
    for mine, theirs in zip(last, engine_top):
        assert mine.prob == pytest.approx(theirs.prob, abs=1e-3)
    assert lens.answer.token_id == engine_top[0].token_id
    assert lens.layers[lens.first_layer].top[0].token_id == lens.answer.token_id
    assert all(g.top[0].token_id != lens.answer.token_id for g in lens.layers[: lens.first_layer])
    # Early layers do not already know the answer (the lens shows a refinement).
    assert lens.layers[0].answer_prob < lens.layers[-1].answer_prob


# -- CLI -----------------------------------------------------------------------------------


def test_cli_attention_table_in_a_pipe_and_every_weight_as_json():
    piped = run_cli("lab", "attention", SENTENCE)
    assert piped.returncode == 0, piped.stderr
    rows = [line.split("\t") for line in piped.stdout.splitlines()[2:]]
    data = json.loads(run_cli("lab", "attention", "--json", SENTENCE).stdout)
    n = len(data["tokens"])
    assert len(rows) == n and [int(r[0]) for r in rows] == list(range(n))
    weights = np.array(data["weights"])
    assert weights.shape == (data["layers"], data["heads"], n, n)
    assert_causal_distributions(weights)
    one = json.loads(
        run_cli("lab", "attention", "--json", "--layer", "3", "--head", "1", SENTENCE).stdout
    )
    assert (one["layer"], one["head"]) == (3, 1)
    assert np.allclose(np.array(one["weights"]), weights[3, 1], atol=2e-6)


def test_cli_attention_bad_layer_and_over_budget():
    bad = run_cli("lab", "attention", "--layer", "30", SENTENCE)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "chatterm: error: --layer must be 0–29 for smollm2-135m-instruct"
    ]
    long = run_cli("lab", "attention", "word " * 600)
    assert long.returncode == 4, long.stderr
    assert "256 MiB" in long.stderr and len(long.stderr.strip().splitlines()) == 1


def test_cli_lens_json_and_text():
    data = json.loads(run_cli("lab", "lens", "--json", QUESTION).stdout)
    assert len(data["layers"]) == 30 and all(len(g["top"]) == 5 for g in data["layers"])
    assert data["answer"]["id"] == data["layers"][-1]["top"][0]["id"]
    text = run_cli("lab", "lens", QUESTION)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[-1].endswith(
        f"top choice from layer {data['first_layer']} (layers 0–29)"
    )


def test_cli_lens_refuses_an_architecture_it_cannot_read(starter_path, tmp_path):
    other = copy_gguf(starter_path, tmp_path / "other.gguf", architecture="gpt2")
    result = run_cli("lab", "lens", "-m", str(other), QUESTION)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot read a gpt2 model" in lines[0]


def test_lens_of_a_prompt_longer_than_one_batch(real_engine):
    text = " ".join(f"Line {i}: the quick brown fox jumps over the lazy dog." for i in range(50))
    tokens = raw_text_tokens(real_engine, text)
    assert len(tokens) > 512  # evaluated in two batches, like the engine's prefill
    lens = logit_lens(real_engine, tokens)
    best = distribution_after(real_engine, tokens).top(1)[0]
    assert lens.answer.token_id == best.token_id
    assert lens.layers[-1].top[0].prob == pytest.approx(best.prob, abs=1e-2)


def test_cli_attention_and_lens_on_a_terminal(chatterm_home):
    from tests.lab.test_cli import run_on_terminal

    out, _ = run_on_terminal("lab", "attention", "--layer", "2", SENTENCE, home=chatterm_home)
    assert "layer 2 of 0–29" in out
    assert re.search(r"\x1b\[[0-9;]*48;[25];", out), "earlier tokens on a heat colour"
    assert "A head is one of the layer's parallel attention patterns" in out.replace("\r\n", " ")
    out, _ = run_on_terminal("lab", "lens", QUESTION, home=chatterm_home)
    assert "what each layer would predict" in out and "top choice from layer" in out
