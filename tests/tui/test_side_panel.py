"""The side panel: every sampling field with its help, ranges enforced, changes applied to the
next reply and saved with the conversation; the context meter and the reply stats."""

from __future__ import annotations

import json

from textual.widgets import Label

from chatterm.sampling import FIELDS
from chatterm.tui.widgets.sampling_panel import SamplingPanel, SettingInput
from chatterm.tui.widgets.side_panel import ContextMeter

from .helpers import db_rows, messages_rows, send, settle


async def test_every_sampling_field_is_shown_with_its_help(make):
    app = make()
    async with app.run_test(size=(120, 40)):
        fields = {f.spec.name: f for f in app.chat.query(SettingInput)}
        assert list(fields) == [spec.name for spec in FIELDS]
        labels = [label for label in app.chat.query(Label) if "field-label" in label.classes]
        for spec, label in zip(FIELDS, labels):
            assert str(label.render()) == spec.label
            assert label.tooltip == spec.help
            assert spec.help in str(fields[spec.name].tooltip)


async def test_a_changed_setting_applies_to_the_next_reply_and_is_saved(make, fake, seen):
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await send(pilot, "one")
        field = app.chat.query_one("#setting-temperature", SettingInput)
        field.focus()
        field.value = ""
        await pilot.press(*"0.25")
        await pilot.pause()
        assert seen.of(SamplingPanel.Changed)[-1].settings.temperature == 0.25
        await send(pilot, "two")
    assert fake.calls[0].sampling.temperature == 0.7
    assert fake.calls[1].sampling.temperature == 0.25
    replies = [r for r in messages_rows() if r["role"] == "assistant"]
    assert [json.loads(r["sampling"])["temperature"] for r in replies] == [0.7, 0.25]
    (conversation,) = db_rows("SELECT sampling FROM conversations")
    assert json.loads(conversation["sampling"])["temperature"] == 0.25


async def test_an_out_of_range_value_is_refused_and_reverted(make, fake, seen):
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        field = app.chat.query_one("#setting-top_p", SettingInput)
        field.focus()
        field.value = ""
        await pilot.press(*"7")
        await pilot.pause()
        assert not seen.of(SamplingPanel.Changed)
        assert app.chat.settings.top_p == 0.95
        app.chat.prompt.focus()
        await pilot.pause()
        assert field.value == "0.95"
        await send(pilot, "hi")
    assert fake.calls[0].sampling.top_p == 0.95


async def test_up_and_down_step_a_field_within_its_range(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        field = app.chat.query_one("#setting-top_k", SettingInput)
        field.focus()
        await pilot.press("up", "up")
        await pilot.pause()
        assert app.chat.settings.top_k == 42
        field = app.chat.query_one("#setting-top_p", SettingInput)
        field.focus()
        await pilot.press("up", "up", "up", "up", "up", "up", "up")
        await pilot.pause()
        assert app.chat.settings.top_p == 1.0, "stepping stops at the maximum"


async def test_reset_returns_to_the_defaults(make, seen):
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        field = app.chat.query_one("#setting-seed", SettingInput)
        field.focus()
        field.value = "42"
        await pilot.pause()
        assert app.chat.settings.seed == 42
        await pilot.click("#reset-sampling")
        await pilot.pause()
        assert seen.of(SamplingPanel.ResetRequested)
        assert app.chat.settings.seed == -1
        assert field.value == "-1"


async def test_context_meter_counts_system_history_and_reserve(make, fake):
    app = make(persona="concise")
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "hello there")
        await settle(pilot)
        meter = app.chat.query_one(ContextMeter)
        system, history, reserve, n_ctx, dropped = meter.figures
        assert system > 0 and history > 0
        assert reserve == min(app.chat.settings.max_tokens, 2048 // 4)
        assert (n_ctx, dropped) == (2048, 0)


async def test_context_meter_says_which_turns_would_be_dropped(make, fake):
    fake.n_ctx = 64
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        for i in range(4):
            await send(pilot, " ".join(["word"] * 12) + f" {i}")
        await settle(pilot)
        meter = app.chat.query_one(ContextMeter)
        assert meter.figures[4] > 0
        assert "dropped" in str(meter.render())


async def test_stats_show_the_last_replys_figures(make, fake):
    fake.enqueue("a b c d")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "hi")
        text = str(app.chat.reply_stats.render())
        assert "first token" in text and "decode 4 tok" in text and "cached" in text


async def test_the_side_panel_toggles(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        assert app.chat.panel.display
        await pilot.press("ctrl+t")
        assert not app.chat.panel.display
        await pilot.press("ctrl+t")
        assert app.chat.panel.display


async def test_last_reply_speaks_of_the_open_conversation(make, fake):
    fake.enqueue("a b c d", "e f")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "first")
        first_id = app.chat.conversation.id
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert str(app.chat.reply_stats.render()) == "no reply yet"
        await send(pilot, "second")
        assert "decode 2 tok" in str(app.chat.reply_stats.render())
        await app.chat.open_conversation(first_id)
        await settle(pilot)
        text = str(app.chat.reply_stats.render())
        assert "decode 4 tok" in text and "· done" in text, "its own saved figures"


def test_the_streaming_figure_gives_a_rate_only_once_it_means_something():
    from chatterm.tui.widgets.side_panel import ReplyStats

    stats = ReplyStats()
    stats.show_progress(1, 0.0002)  # the first token, a fraction of a millisecond later
    assert "tok/s" not in str(stats.render()) and "1 tok" in str(stats.render())
    stats.show_progress(21, 2.0)
    assert "21 tok · 10.0 tok/s" in str(stats.render())
