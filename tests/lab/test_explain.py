"""``explain`` on hand-made logits: each stage's survivors, in the engine's order."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chatterm.engine.events import Candidate
from chatterm.lab.distribution import Distribution, explain
from chatterm.sampling import SamplingSettings

PROBS = [0.5, 0.2, 0.15, 0.1, 0.05]
OFF = SamplingSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)


def hand_made(shift: float = 3.0) -> Distribution:
    """Five tokens (ids 10..14, shuffled in the vocabulary) with the probabilities above; the
    logits are shifted by a constant, which must not matter."""
    order = [3, 0, 4, 1, 2]  # vocabulary position of the i-th likeliest token
    logits = np.zeros(5, dtype=np.float32)
    for rank, pos in enumerate(order):
        logits[pos] = math.log(PROBS[rank]) + shift
    return Distribution.from_logits(logits, lambda t: f"tok{t}")


def survivors(expl):
    return [r.rank for r in expl.rows if r.survived]


def test_raw_probabilities_are_the_softmax_in_descending_order():
    dist = hand_made()
    assert list(dist.token_ids) == [3, 0, 4, 1, 2]
    np.testing.assert_allclose(dist.probs, PROBS, rtol=1e-6)
    assert dist.pieces[0] == "tok3"


def test_everything_off_keeps_all_and_changes_nothing():
    expl = explain(hand_made(), OFF, n=5)
    assert survivors(expl) == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([r.final_prob for r in expl.rows], PROBS, rtol=1e-6)
    assert [s.active for s in expl.stages] == [False, False, False]


def test_top_k_keeps_the_k_likeliest_and_renormalises():
    expl = explain(hand_made(), OFF.replace(top_k=3), n=5)
    assert survivors(expl) == [1, 2, 3]
    assert [r.removed_by for r in expl.rows[3:]] == ["top-k", "top-k"]
    np.testing.assert_allclose(
        [r.final_prob for r in expl.rows[:3]], np.array(PROBS[:3]) / 0.85, rtol=1e-6
    )


def test_top_p_keeps_the_shortest_run_reaching_p():
    # cumulative 0.5, 0.7, 0.85: p=0.75 needs the third token
    assert survivors(explain(hand_made(), OFF.replace(top_p=0.75), n=5)) == [1, 2, 3]
    # p=0 still keeps one token
    assert survivors(explain(hand_made(), OFF.replace(top_p=0.0), n=5)) == [1]


def test_top_p_sees_the_distribution_top_k_left():
    """llama.cpp's top-p re-softmaxes what top-k kept: 0.5/0.7 = 0.71 ≥ 0.6 keeps one token,
    where the full distribution (0.5 < 0.6) would keep two."""
    assert survivors(explain(hand_made(), OFF.replace(top_p=0.6), n=5)) == [1, 2]
    assert survivors(explain(hand_made(), OFF.replace(top_k=2, top_p=0.6), n=5)) == [1]


def test_min_p_is_relative_to_the_likeliest_token():
    # threshold 0.35 × 0.5 = 0.175: keeps 0.5 and 0.2
    assert survivors(explain(hand_made(), OFF.replace(min_p=0.35), n=5)) == [1, 2]
    # threshold 0.125: keeps three
    assert survivors(explain(hand_made(), OFF.replace(min_p=0.25), n=5)) == [1, 2, 3]


def test_each_candidate_is_attributed_to_the_stage_that_removed_it():
    # top-k 4 → renormalised 0.526, 0.737, 0.895 → top-p 0.75 keeps 3 → min-p 0.35 keeps 2
    expl = explain(hand_made(), SamplingSettings(temperature=1, top_k=4, top_p=0.75, min_p=0.35))
    assert [r.removed_by for r in expl.rows] == [None, None, "min-p", "top-p", "top-k"]
    assert [(s.name, s.kept) for s in expl.stages] == [("top-k", 4), ("top-p", 3), ("min-p", 2)]
    assert expl.survivors == 2 and expl.exact


def test_temperature_reshapes_survivors_but_does_not_change_which_survive():
    cold = explain(hand_made(), OFF.replace(top_p=0.75, temperature=0.5), n=5)
    hot = explain(hand_made(), OFF.replace(top_p=0.75, temperature=2.0), n=5)
    assert survivors(cold) == survivors(hot) == [1, 2, 3]
    # softmax(log p / T) = p^(1/T), renormalised over the survivors
    for expl, t in ((cold, 0.5), (hot, 2.0)):
        weights = np.array(PROBS[:3]) ** (1 / t)
        np.testing.assert_allclose(
            [r.final_prob for r in expl.rows[:3]], weights / weights.sum(), rtol=1e-6
        )
    assert cold.rows[0].final_prob > hot.rows[0].final_prob
    # raw probabilities are those of the model, whatever the settings
    assert [r.prob for r in cold.rows] == [r.prob for r in hot.rows]


def test_temperature_zero_is_greedy_and_skips_the_other_stages():
    expl = explain(hand_made(), SamplingSettings(temperature=0, top_k=2), n=5)
    assert survivors(expl) == [1]
    assert [r.removed_by for r in expl.rows[1:]] == ["greedy"] * 4
    assert expl.rows[0].final_prob == 1.0
    assert [s.active for s in expl.stages] == [True, False, False, False]


@pytest.mark.parametrize(
    "settings",
    [OFF, SamplingSettings(), OFF.replace(top_k=2, temperature=3.0), OFF.replace(min_p=0.3)],
)
def test_final_probabilities_sum_to_one_and_raw_ones_to_at_most_one(settings):
    expl = explain(hand_made(), settings, n=5)
    assert sum(r.final_prob for r in expl.rows) == pytest.approx(1.0)
    assert sum(r.prob for r in expl.rows) <= 1.0 + 1e-9


def test_saved_top_candidates_explain_exactly_when_survivors_are_all_known():
    saved = [Candidate(7, "a", 0.5), Candidate(8, "b", 0.2), Candidate(9, "c", 0.15)]
    dist = Distribution.from_candidates(saved, vocab_size=1000)
    assert not dist.complete
    known = explain(dist, OFF.replace(top_k=2), n=3)
    assert known.exact and survivors(known) == [1, 2]
    # top-p over the whole vocabulary: 0.5 + 0.2 = 0.7 ≥ 0.6 is decided by known tokens
    assert explain(dist, OFF.replace(top_p=0.6), n=3).exact
    # nothing filters: 997 unknown tokens survive too
    unknown = explain(dist, OFF, n=3)
    assert not unknown.exact and unknown.survivors == 1000
