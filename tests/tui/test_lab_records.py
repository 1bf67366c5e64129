"""The saved probability payload: what the worker collects, what the store keeps, and how a
saved token becomes a distribution the chart can explain. No app needed."""

from __future__ import annotations

import subprocess
import sys

from chatterm.engine.events import Candidate, Token
from chatterm.lab.distribution import explain
from chatterm.lab.records import (
    ProbCollector,
    distribution,
    payload,
    records_of,
    sampling_of,
    vocab_size_of,
)
from chatterm.sampling import SamplingSettings

TOP = (Candidate(5, " Paris", 0.7), Candidate(9, " Lyon", 0.2), Candidate(3, " Nice", 0.05))


def test_collector_turns_tokens_into_records_and_keeps_the_final_flush():
    collector = ProbCollector(engine=None)
    collector.add(Token(" Paris", 5, 0.7, TOP))
    collector.add(Token("!", -1))  # held-back text flushed at the end: no token of its own
    records = collector.take()
    assert [r["text"] for r in records] == [" Paris", "!"]
    assert records[0]["top"][1] == {"token": " Lyon", "id": 9, "prob": 0.2}
    assert records[1]["prob"] is None and records[1]["id"] == -1
    assert collector.take() == (), "each record is handed over once"


def test_payload_round_trips_and_bad_payloads_read_as_empty():
    collector = ProbCollector(None)
    collector.add(Token(" Paris", 5, 0.7, TOP))
    records = list(collector.take())
    saved = payload(records, top_logprobs=3, vocab_size=49152)
    assert records_of(saved) == records and vocab_size_of(saved) == 49152
    assert records_of(records) == records, "a bare list of records (chatterm ask's) reads too"
    for junk in (None, 3, "x", {"tokens": "x"}, [{"id": 1}], {"tokens": [None]}):
        assert records_of(junk) == []
    assert vocab_size_of({"vocab_size": "many"}) == 0


def test_a_saved_token_is_explained_as_an_incomplete_distribution():
    record = {"top": [{"token": c.piece, "id": c.token_id, "prob": c.prob} for c in TOP]}
    dist = distribution(record, vocab_size=49152)
    assert dist is not None and not dist.complete and dist.vocab_size == 49152
    expl = explain(dist, SamplingSettings(temperature=1, top_k=2, top_p=1, min_p=0))
    assert [r.removed_by for r in expl.rows] == [None, None, "top-k"]
    unknown_vocab = distribution(record)
    assert unknown_vocab is not None and not unknown_vocab.complete, (
        "0.95 of the mass is known: the rest exists even when the vocabulary size does not"
    )
    assert distribution({"top": []}) is None


def test_a_broken_sampling_snapshot_falls_back_to_the_defaults():
    assert sampling_of({"temperature": 99}) == SamplingSettings()
    assert sampling_of({"top_k": 3}).top_k == 3


def test_the_records_module_imports_no_ui_library():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, chatterm.lab.records; print(' '.join(sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not {name.split(".")[0] for name in out} & {"textual", "rich"}
