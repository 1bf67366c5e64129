"""Snapshots of the lab's probability chart and sampling view, on the fake engine, at fixed
sizes. Each view runs in a small host app, so the chat screen's layout (which changes for its
own reasons) cannot move them. Update after an intended change with
``pytest tests/tui/test_lab_snapshots.py --snapshot-update`` and look at the report first."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Input

from chatterm.engine.events import ChatMessage, Token
from chatterm.engine.fake import FakeEngine
from chatterm.lab.records import PROBS_TOP_K, ProbCollector
from chatterm.sampling import SamplingSettings
from chatterm.tui.screens.sampling import SamplingScreen
from chatterm.tui.widgets.prob_text import ProbText, ProbView

SETTINGS = SamplingSettings(temperature=0.8, top_k=40, top_p=0.9, min_p=0.05, seed=1)


def fake_records() -> list[dict]:
    """What the generation worker collects from the fake engine with probabilities on."""
    engine = FakeEngine().enqueue("Rain falls when clouds grow heavy.")
    collector = ProbCollector(engine)
    for event in engine.generate([ChatMessage("user", "Why rain?")], SETTINGS, top_logprobs=10):
        if isinstance(event, Token):
            collector.add(event)
    return list(collector.take())


class ChartHost(App[None]):
    def compose(self) -> ComposeResult:
        yield ProbView(fake_records(), settings=SETTINGS, vocab_size=49152)


class SamplingHost(App[None]):
    def on_mount(self) -> None:
        engine = FakeEngine()
        self.push_screen(
            SamplingScreen(
                engine, [ChatMessage("user", "Pick a word")], SETTINGS, label="«Pick a word»"
            )
        )


def test_probability_chart_of_a_selected_token(snap_compare):
    async def select_third_token(pilot) -> None:
        pilot.app.query_one(ProbText).action_select_token(2)
        await pilot.pause()

    assert len(fake_records()[0]["top"]) == PROBS_TOP_K
    assert snap_compare(ChartHost(), terminal_size=(100, 22), run_before=select_third_token)


def test_sampling_view_after_changing_top_k(snap_compare):
    async def capture_then_edit(pilot) -> None:
        app = pilot.app
        await app.workers.wait_for_complete()
        await pilot.pause()
        for field in app.screen.query(Input):
            field.cursor_blink = False
        top_k = app.screen.query_one("#setting-top_k", Input)
        top_k.focus()
        top_k.value = "3"
        await pilot.pause()

    assert snap_compare(SamplingHost(), terminal_size=(120, 32), run_before=capture_then_edit)
