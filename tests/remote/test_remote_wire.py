"""The typed readers of every remote format: what they accept, and that anything else is a
WireError (one line, naming the field), never another exception."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatterm.engine.remote_http import redact, split_lines
from chatterm.engine.remote_wire import (
    Delta,
    Usage,
    WireError,
    parse_chunk,
    parse_models,
    parse_props_n_ctx,
    parse_template,
    parse_tokenize,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
# Values placed where the readers look, so the property reaches past the first check.
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "choices": JSON | st.lists(st.fixed_dictionaries({}, optional={
            "index": JSON, "delta": JSON, "message": JSON, "finish_reason": JSON,
            "logprobs": JSON | st.fixed_dictionaries({"content": JSON | st.lists(JSON)}),
        }), max_size=2),
        "usage": JSON, "timings": JSON, "error": JSON, "data": JSON, "tokens": JSON,
        "prompt": JSON, "default_generation_settings": JSON, "n_ctx": JSON,
    },
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, FIELDS))
def test_every_reader_returns_or_raises_wire_error(data):
    for reader in (parse_chunk, parse_models, parse_tokenize, parse_template):
        try:
            reader(data)
        except WireError as exc:
            assert "\n" not in str(exc)
    assert parse_props_n_ctx(data) is None or parse_props_n_ctx(data) > 0


def test_a_llama_server_chunk_reads_whole():
    data = {
        "choices": [
            {
                "index": 0,
                "finish_reason": None,
                "delta": {"content": " Paris"},
                "logprobs": {
                    "content": [
                        {
                            "id": 7042,
                            "token": " Paris",
                            "logprob": -0.01,
                            "top_logprobs": [{"id": 7042, "token": " Paris", "logprob": -0.01}],
                        }
                    ]
                },
            }
        ],
        "timings": {"cache_n": 12},
        "usage": {"prompt_tokens": 30, "completion_tokens": 1},
    }
    chunk = parse_chunk(data)
    assert chunk.delta is not None and chunk.delta.content == " Paris"
    (entry,) = chunk.delta.logprobs
    assert (entry.token_id, entry.token) == (7042, " Paris")
    assert entry.prob == pytest.approx(math.exp(-0.01))
    assert entry.top[0].token_id == 7042
    assert chunk.usage == Usage(30, 1, 0) and chunk.cached_tokens == 12


def test_reasoning_comes_from_either_field_name():
    for name in ("reasoning_content", "reasoning"):
        chunk = parse_chunk({"choices": [{"index": 0, "delta": {name: "hmm"}}]})
        assert chunk.delta == Delta(reasoning="hmm")


def test_only_choice_zero_counts():
    chunk = parse_chunk(
        {
            "choices": [
                {"index": 1, "delta": {"content": "other"}},
                {"index": 0, "delta": {"content": "mine"}},
            ]
        }
    )
    assert chunk.delta is not None and chunk.delta.content == "mine"


def test_a_logprob_of_zero_or_a_rounding_hair_above_is_probability_one():
    for value in (0, 1e-6):
        entry = {"token": "x", "logprob": value}
        chunk = parse_chunk(
            {"choices": [{"delta": {"content": "x"}, "logprobs": {"content": [entry]}}]}
        )
        assert chunk.delta is not None and chunk.delta.logprobs[0].prob == 1.0


@pytest.mark.parametrize("value", [1000, float("nan"), "0.5", True])
def test_what_is_not_a_log_probability_is_refused(value):
    entry = {"token": "x", "logprob": value}
    with pytest.raises(WireError, match='"logprob" is'):
        parse_chunk({"choices": [{"delta": {"content": "x"}, "logprobs": {"content": [entry]}}]})


def test_models_and_vllm_windows():
    entries = parse_models(
        {
            "data": [
                {"id": "m", "owned_by": "vllm", "max_model_len": 32768},
                {"id": "n", "max_model_len": -1},
            ]
        }
    )
    assert [(e.id, e.owned_by, e.max_model_len) for e in entries] == [
        ("m", "vllm", 32768),
        ("n", "", None),
    ]
    with pytest.raises(WireError, match='"data" is the number 5, not a list'):
        parse_models({"data": 5})


def test_props_window_is_checked():
    assert parse_props_n_ctx({"default_generation_settings": {"n_ctx": 2048}}) == 2048
    assert parse_props_n_ctx({"default_generation_settings": {"n_ctx": "2048"}}) is None
    assert parse_props_n_ctx({"n_ctx": 10**12}) is None


def test_tokenize_pieces_show_split_characters_as_the_local_engine_does():
    pieces = parse_tokenize(
        {"tokens": [{"id": 1, "piece": "Hi"}, {"id": 2, "piece": [32, 240, 159]}]}
    )
    assert [(p.token_id, p.piece, p.byte_fallback) for p in pieces] == [
        (1, "Hi", False),
        (2, " <0xF0><0x9F>", True),
    ]
    with pytest.raises(WireError, match="byte values"):
        parse_tokenize({"tokens": [{"id": 2, "piece": [256]}]})


@given(st.binary(max_size=200), st.lists(st.integers(1, 7), min_size=1, max_size=20))
def test_lines_are_the_same_however_the_bytes_are_split(data, cuts):
    pieces, start = [], 0
    for size in cuts * 40:
        if start >= len(data):
            break
        pieces.append(data[start : start + size])
        start += size
    pieces.append(data[start:])
    assert list(split_lines(pieces)) == list(split_lines([data]))


def test_a_line_without_end_is_refused_past_the_limit():
    with pytest.raises(WireError, match="longer than"):
        list(split_lines([b"x" * 100] * 30, limit=1000))


def test_redact_removes_the_key_in_every_form_and_anything_after_bearer():
    key = 'sk-a/b+c"d'
    text = f"Bearer {key} {key} {json.dumps(key)} sk-a%2Fb%2Bc%22d authorization: bearer xyz"
    assert redact(text, key) == (
        'Bearer [redacted] [redacted] "[redacted]" [redacted] authorization: bearer [redacted]'
    )
