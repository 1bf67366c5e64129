"""Probability bands and per-token records, as ``ask --json --logprobs`` writes and the TUI
saves them."""

from __future__ import annotations

import json

from chatterm.engine.events import ChatMessage, Token
from chatterm.lab.distribution import Distribution, explain
from chatterm.lab.probs import band_colour, legend
from chatterm.lab.records import candidates_from_record, token_records
from chatterm.sampling import SamplingSettings


def test_bands_cover_zero_to_one_from_green_to_red():
    assert [band_colour(p) for p in (1.0, 0.8, 0.79, 0.5, 0.2, 0.19, 0.0)] == [
        "green",
        "green",
        "yellow",
        "yellow",
        "dark_orange",
        "red",
        "red",
    ]
    assert band_colour(None) is None
    assert [colour for colour, _ in legend()] == ["green", "yellow", "dark_orange", "red"]


def test_records_round_trip_into_an_explainable_distribution(real_engine):
    events = real_engine.generate(
        [ChatMessage("user", "Name a colour.")],
        SamplingSettings(temperature=0, seed=1, max_tokens=4),
        top_logprobs=5,
    )
    tokens = [e for e in events if isinstance(e, Token)]
    records = json.loads(json.dumps(token_records(tokens, real_engine)))
    assert len(records) == sum(1 for t in tokens if t.token_id >= 0)
    first = records[0]
    assert first["id"] == first["top"][0]["id"] and first["token"] == first["top"][0]["token"]
    dist = Distribution.from_candidates(candidates_from_record(first), vocab_size=49152)
    expl = explain(dist, SamplingSettings(top_k=3, top_p=1.0, min_p=0.0, temperature=1.0), n=5)
    assert expl.exact and [r.survived for r in expl.rows] == [True, True, True, False, False]
    assert expl.rows[0].token_id == first["id"]


def test_records_keep_remote_tokens_that_have_no_id():
    """OpenAI-compatible servers send probabilities without token ids (id -1)."""
    from chatterm.engine.events import Candidate, Token
    from chatterm.lab.records import token_records

    remote = Token(" hi", -1, 0.5, (Candidate(-1, " hi", 0.5), Candidate(-1, " yo", 0.2)))
    flush = Token("!", -1)
    records = token_records([remote, flush])
    assert [(r["token"], r["prob"]) for r in records] == [(" hi", 0.5)]
    assert [c["token"] for c in records[0]["top"]] == [" hi", " yo"]
