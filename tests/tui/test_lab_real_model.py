"""The lab's views once more on the real SmolLM2 model: probabilities that match a direct
softmax of the logits, real tokenizer pieces, KV-cache reuse in the rendered prompt, the full
distribution in the sampling view, and a compare that repeats itself with a fixed seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chatterm import paths
from chatterm.engine.events import ChatMessage, Token
from chatterm.lab import experiments
from chatterm.lab.distribution import next_token_distribution
from chatterm.sampling import SamplingSettings
from chatterm.tui.screens.compare import CompareColumn, CompareScreen
from chatterm.tui.screens.rendered_prompt import RenderedPromptScreen
from chatterm.tui.screens.sampling import SamplingScreen
from chatterm.tui.screens.tokens import TokensScreen
from chatterm.tui.widgets.message_view import AssistantMessage
from chatterm.tui.widgets.prob_chart import ProbChart
from chatterm.tui.widgets.prob_text import ProbText
from chatterm.tui.widgets.sampling_panel import SettingInput
from chatterm.tui.widgets.token_chips import TokenChips

from .helpers import db_rows, send, settle, wait_until

pytestmark = pytest.mark.slow

VOCAB = 49152


@pytest.fixture
def greedy(chatterm_home):
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("[sampling]\ntemperature = 0\nmax_tokens = 16\nseed = 1\n", encoding="utf-8")


async def test_probabilities_match_a_direct_softmax_of_the_logits(make, real_engine, greedy):
    question = "Name one colour."
    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await send(pilot, question)
        reply = app.chat.transcript.query_one(AssistantMessage)
        assert reply.query_one(ProbText).text == reply.text
        await pilot.press("f10")
        await pilot.pause()
        chart = app.chat.transcript.query_one(ProbChart)
        assert chart.explanation is not None
        assert [s.name for s in chart.explanation.stages][0] == "greedy"
        assert chart.explanation.survivors == 1, "temperature 0 keeps the likeliest only"
    row = db_rows("SELECT content, logprobs FROM messages WHERE role = 'assistant'")[0]
    saved = json.loads(row["logprobs"])
    assert saved["vocab_size"] == VOCAB
    tokens = saved["tokens"]
    assert "".join(t["text"] for t in tokens) == row["content"]
    for token in tokens:
        probs = [c["prob"] for c in token["top"]]
        assert probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1.0 + 1e-6
        assert token["prob"] == pytest.approx(probs[0]), "greedy picks the likeliest"
    dist = next_token_distribution(real_engine, [ChatMessage("user", question)])
    direct = dict(zip(dist.token_ids.tolist(), dist.probs.tolist()))
    for candidate in tokens[0]["top"]:
        assert candidate["prob"] == pytest.approx(direct[candidate["id"]], rel=1e-4)


async def test_tokens_view_shows_the_real_tokenizer_pieces(make, real_engine):
    text = "naïve 🌍 <|im_end|>"
    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = text
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TokensScreen)
        pieces = screen.query_one(TokenChips).pieces
    assert [p.token_id for p in pieces] == real_engine.token_ids(text)
    assert any(p.byte_fallback and "<0x" in p.piece for p in pieces), "the globe"
    assert not any(p.special for p in pieces), "typed control-token text stays text"
    assert "".join(p.piece for p in pieces if not p.byte_fallback).endswith("<|im_end|>")


async def test_rendered_prompt_marks_the_tokens_reused_from_the_cache(make, real_engine, greedy):
    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        # long enough that its KV cells are reusable (see REPRODUCIBLE_BATCH)
        await send(
            pilot,
            "Hi! I am planning a long walk along the river this weekend and would like to talk "
            "about the route, what to bring and where to stop for lunch; keep answers short.",
        )
        await send(pilot, "What is two plus two?")
        list(app.chat.transcript.query(AssistantMessage))[-1].focus()
        await pilot.press("f9")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RenderedPromptScreen)
        view = screen.view
        assert view is not None
        assert not screen.query_one("#prompt-note").display, "re-rendered = what was sent"
    assert screen.cached is not None and 0 < screen.cached < view.tokens
    assert view.cached == screen.cached
    specials = [s.text for s in view.segments if s.special]
    assert specials.count("<|im_start|>") == specials.count("<|im_end|>") + 1
    cached_text = "".join(s.text for s in view.segments if s.cached)
    assert view.text.startswith(cached_text) and "Hi!" in cached_text
    assert "two plus two" not in cached_text, "the new turn was evaluated, not reused"


async def test_sampling_view_replays_the_full_distribution(make, real_engine):
    question = "What is the capital of France?"
    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = question
        await pilot.press("f5")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SamplingScreen)
        dist = screen.distribution
        assert dist is not None and dist.complete and len(dist) == VOCAB
        assert np.isclose(dist.probs.sum(), 1.0, atol=1e-5)
        top_k = screen.query_one("#setting-top_k", SettingInput)
        top_k.value = "1"
        await pilot.pause()
        assert screen.explanation is not None and screen.explanation.survivors == 1
        top_k.value = "0"
        screen.query_one("#setting-top_p", SettingInput).value = "1"
        screen.query_one("#setting-min_p", SettingInput).value = "0"
        await pilot.pause()
        assert screen.explanation.survivors == VOCAB, "every filter off keeps everything"
        assert screen.distribution is dist, "replayed, not captured again"
    greedy = SamplingSettings(temperature=0, max_tokens=1, seed=0)
    first = next(
        e
        for e in real_engine.generate([ChatMessage("user", question)], greedy)
        if isinstance(e, Token)
    )
    assert first.token_id == int(dist.token_ids[0]), "the likeliest is what greedy picks"


async def test_compare_on_the_real_model_repeats_itself_with_a_fixed_seed(make, real_engine):
    app = make(engine=real_engine)
    async with app.run_test(size=(140, 40)) as pilot:
        app.chat.prompt.text = "Write one sentence about the sea."
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        screen.query_one("#compare-variants").value = "temperature=1.0 | temperature=0"
        screen.query_one("#compare-seed").value = "42"
        screen.query_one("#compare-max-tokens").value = "12"
        screen.query_one("#compare-prompt").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.experiment is not None)
        first = [c.text for c in screen.query(CompareColumn)]
        first_id = screen.experiment.id
        await pilot.press("enter")  # the same inputs again
        await wait_until(pilot, lambda: screen.experiment is not None and not screen.running)
        await wait_until(pilot, lambda: screen.experiment.id != first_id)
        second = [c.text for c in screen.query(CompareColumn)]
    assert all(first) and first == second
    saved = experiments.load(first_id)
    assert [r.text for r in saved.runs] == first
    assert [r.settings.seed for r in saved.runs] == [42, 42]
    assert all(r.stats["generated_tokens"] > 0 for r in saved.runs)


async def test_attention_and_lens_views_from_the_tokens_view(make, real_engine):
    from chatterm.lab.distribution import distribution_after, raw_text_tokens
    from chatterm.tui.screens.inside import AttentionScreen, LensScreen

    text = "The cat sat on the mat because it was tired."
    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = text
        await pilot.press("f4")
        await settle(pilot)
        await pilot.press("a")
        screen = app.screen
        assert isinstance(screen, AttentionScreen)
        await wait_until(pilot, lambda: screen.result is not None)
        a = screen.result
        assert len(a.pieces) == len(raw_text_tokens(real_engine, text))
        await pilot.press("right", "right", "right")
        await pilot.press("right_square_bracket", "right_square_bracket", "equals_sign")
        assert (screen.selected, screen.at_layer, screen.at_head) == (3, 1, 0)
        status = str(screen.query_one(".inside-status").render())
        assert "layer 1/29" in status and "head 0/8" in status
        row = a.matrix(1, 0)[3]
        assert row[:4].sum() == pytest.approx(1.0, abs=1e-4) and not row[4:].any()
        await pilot.press("a")
        assert (screen.at_layer, screen.at_head) == (None, None)
        await pilot.press("escape")
        await pilot.press("l")
        lens_screen = app.screen
        assert isinstance(lens_screen, LensScreen)
        await wait_until(pilot, lambda: lens_screen.result is not None)
        lens = lens_screen.result
        dist = distribution_after(real_engine, raw_text_tokens(real_engine, text))
        assert lens.answer.token_id == dist.top(1)[0].token_id
        table = str(lens_screen.query_one("#lens-table").render())
        assert len(table.strip().splitlines()) == 30


async def test_lens_beside_the_sampling_view_ends_in_its_distribution(make, real_engine):
    from chatterm.tui.screens.inside import LensScreen

    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "What is the capital of France?"
        await pilot.press("f5")
        await settle(pilot)
        sampling = app.screen
        assert isinstance(sampling, SamplingScreen) and sampling.distribution is not None
        await pilot.press("ctrl+l")
        lens_screen = app.screen
        assert isinstance(lens_screen, LensScreen)
        await wait_until(pilot, lambda: lens_screen.result is not None)
        last = lens_screen.result.layers[-1].top
        expected = sampling.distribution.top(5)
        assert [c.token_id for c in last] == [c.token_id for c in expected]
        for mine, theirs in zip(last, expected):
            assert mine.prob == pytest.approx(theirs.prob, abs=1e-3)
        await pilot.press("escape")
        assert app.screen is sampling
