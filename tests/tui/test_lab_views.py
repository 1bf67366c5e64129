"""The lab's views on the fake engine: tokens, rendered prompt, sampling and compare, opened by
their keys and from the command palette; what they show and what they save."""

from __future__ import annotations

import json

from chatterm import paths
from chatterm.engine.base import TokenPiece
from chatterm.lab import experiments
from chatterm.tui.lab.keys import LAB_BINDINGS
from chatterm.tui.screens.compare import CompareColumn, CompareScreen
from chatterm.tui.screens.help import help_markdown
from chatterm.tui.screens.rendered_prompt import RenderedPromptScreen
from chatterm.tui.screens.sampling import SamplingScreen
from chatterm.tui.screens.tokens import TokensScreen
from chatterm.tui.widgets.message_view import AssistantMessage, UserMessage
from chatterm.tui.widgets.prob_chart import ProbChart
from chatterm.tui.widgets.sampling_panel import SettingInput
from chatterm.tui.widgets.token_chips import TokenChips, chips_content

from .helpers import messages_rows, send, settle, wait_until

# -- tokens ------------------------------------------------------------------------------


async def test_tokens_of_the_input_show_as_chips_with_the_count(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "How many tokens is this?"
        await pilot.press("f4")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TokensScreen) and screen.title_text == "the input"
        chips = screen.query_one(TokenChips)
        assert [p.piece for p in chips.pieces] == ["How", " many", " tokens", " is", " this?"]
        assert str(screen.query_one("#tokens-summary").render()).startswith("5 tokens")
        assert "3" not in str(chips.render())
        await pilot.press("i")
        assert chips.show_ids and "3" in str(chips.render()), "ids on demand"
        await pilot.press("escape")
        assert not isinstance(app.screen, TokensScreen)


async def test_tokens_of_a_focused_message(make, fake):
    fake.enqueue("Paris is the capital.")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "Capital?")
        app.chat.transcript.query_one(AssistantMessage).focus()
        await pilot.press("f4")
        await settle(pilot)
        assert app.screen.title_text == "the reply"  # type: ignore[attr-defined]
        assert "".join(p.piece for p in app.screen.query_one(TokenChips).pieces) == (
            "Paris is the capital."
        )


def test_chips_alternate_and_mark_special_and_byte_fallback_pieces():
    pieces = [
        TokenPiece(1, "<|im_start|>", special=True),
        TokenPiece(2, "Hi"),
        TokenPiece(3, " there"),
        TokenPiece(4, "<0xF0>", byte_fallback=True),
        TokenPiece(5, "\n"),
    ]
    content = chips_content(pieces)
    assert content.plain == "<|im_start|>Hi there<0xF0>↵\n"
    styles = [str(s.style) for s in content.spans]
    assert "$warning" in styles[0] and "italic" in styles[3]
    assert styles[1] != styles[2], "neighbouring chips alternate colours"
    with_ids = chips_content(pieces, show_ids=True).plain
    assert "Hi2" in with_ids and "↵5\n" in with_ids


# -- rendered prompt -------------------------------------------------------------------------


async def test_rendered_prompt_of_a_reply_marks_special_tokens(make, fake):
    fake.enqueue("Fine, thanks.")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "How are you?")
        app.chat.transcript.query_one(AssistantMessage).focus()
        await pilot.press("f9")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RenderedPromptScreen)
        view = screen.view
        assert view is not None
        assert view.text == "<|user|>How are you?\n<|assistant|>"
        assert [s.text for s in view.segments if s.special] == ["<|user|>", "<|assistant|>"]
        assert screen.cached == 0, "the fake reports no cache reuse"
        await pilot.press("escape")
        # The user message shows the prompt of the reply that followed it.
        app.chat.transcript.query_one(UserMessage).focus()
        await pilot.press("f9")
        await settle(pilot)
        assert app.screen.view.text == view.text  # type: ignore[attr-defined]


async def test_rendered_prompt_of_the_input_before_sending(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "Not sent yet"
        await pilot.press("f9")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, RenderedPromptScreen) and screen.cached is None
        assert screen.view is not None and screen.view.text.endswith(
            "<|user|>Not sent yet\n<|assistant|>"
        )


# -- sampling ------------------------------------------------------------------------------


async def test_sampling_view_replays_the_same_distribution_as_settings_change(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "Pick a word"
        await pilot.press("f5")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SamplingScreen)
        assert len(fake.calls) == 1, "one capture"
        chart = screen.query_one(ProbChart)
        assert chart.explanation is not None and chart.explanation.survivors == 4
        top_k = screen.query_one("#setting-top_k", SettingInput)
        top_k.focus()
        top_k.value = "2"
        await pilot.pause()
        assert chart.explanation.survivors == 2
        assert [r.survived for r in chart.explanation.rows[:3]] == [True, True, False]
        temperature = screen.query_one("#setting-temperature", SettingInput)
        temperature.focus()
        await pilot.press("up")  # 0.7 → 0.75, one step
        await pilot.pause()
        assert chart.explanation.temperature == 0.75
        assert len(fake.calls) == 1, "changing settings generated nothing"
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, SamplingScreen)
        assert (app.chat.settings.top_k, app.chat.settings.temperature) == (2, 0.75)
        assert app.chat.sampling.settings.top_k == 2, "the side panel shows them"


async def test_sampling_view_escape_keeps_the_chat_settings(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "hello")
        before = app.chat.settings
        await pilot.press("f5")  # no input: the last prompt
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SamplingScreen) and "hello" in screen.label
        screen.query_one("#setting-top_k", SettingInput).value = "1"
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.chat.settings == before


# -- compare -------------------------------------------------------------------------------


async def test_compare_streams_each_variant_into_a_column_and_saves_an_experiment(make, fake):
    fake.enqueue("first column reply", "second column reply")
    app = make()
    async with app.run_test(size=(140, 40)) as pilot:
        app.chat.prompt.text = "Explain rain"
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        screen.query_one("#compare-variants").value = "temperature=0 | top_k=5,top_p=0.5"
        screen.query_one("#compare-seed").value = "7"
        screen.query_one("#compare-prompt").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.experiment is not None)
        columns = list(screen.query(CompareColumn))
        assert [c.text for c in columns] == ["first column reply", "second column reply"]
        assert all("tok" in str(c.query_one(".column-stats").render()) for c in columns)
        experiment_id = screen.experiment.id
        await pilot.press("escape")
        assert not isinstance(app.screen, CompareScreen)
        chat_temperature = app.chat.settings.temperature
    assert [c.messages[-1].content for c in fake.calls] == ["Explain rain", "Explain rain"]
    assert [c.sampling.temperature for c in fake.calls] == [0.0, chat_temperature]
    assert [c.sampling.seed for c in fake.calls] == [7, 7]
    assert (fake.calls[1].sampling.top_k, fake.calls[1].sampling.top_p) == (5, 0.5)
    saved = experiments.load(experiment_id)
    assert [r.text for r in saved.runs] == ["first column reply", "second column reply"]
    assert [v.spec for v in saved.variants] == ["temperature=0", "top_k=5,top_p=0.5"]
    path = experiments.experiments_dir() / f"{experiment_id}.json"
    assert json.loads(path.read_text())["prompt"] == "Explain rain"
    assert messages_rows() == [], "a comparison is not part of the conversation"


async def test_compare_variants_change_persona_and_template(make, fake):
    app = make()
    async with app.run_test(size=(140, 40)) as pilot:
        app.chat.prompt.text = "Why is the sky blue?"
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        screen.query_one(
            "#compare-variants"
        ).value = "temperature=0 | persona=teacher | template=eli5"
        screen.query_one("#compare-prompt").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.experiment is not None)
    plain, teacher, eli5 = fake.calls
    assert [m.role for m in plain.messages] == ["user"]
    assert teacher.messages[0].role == "system" and teacher.messages[-1].content == (
        "Why is the sky blue?"
    )
    assert eli5.messages[-1].content != "Why is the sky blue?", "the template wraps the input"
    assert "Why is the sky blue?" in eli5.messages[-1].content


async def test_compare_reports_a_bad_variant_without_running(make, fake):
    app = make()
    async with app.run_test(size=(140, 40)) as pilot:
        app.chat.prompt.text = "hi"
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#compare-variants").value = "temprature=1"
        screen.query_one("#compare-prompt").focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "unknown key 'temprature'" in str(screen.query_one("#compare-status").render())
        assert not screen.query(CompareColumn) and fake.calls == []


async def test_compare_can_be_stopped_and_is_then_not_saved(make, fake):
    fake.delay = 0.02
    fake.enqueue(" ".join(["word"] * 200))
    app = make()
    async with app.run_test(size=(140, 40)) as pilot:
        app.chat.prompt.text = "long"
        await pilot.press("f8")
        await pilot.pause()
        screen = app.screen
        screen.query_one("#compare-variants").value = "temperature=0 | temperature=1"
        screen.query_one("#compare-prompt").focus()
        await pilot.press("enter")
        await wait_until(pilot, lambda: bool(screen.query_one(CompareColumn).text))
        await pilot.press("escape")
        await wait_until(pilot, lambda: not screen.running)
        assert isinstance(app.screen, CompareScreen), "the first Esc only stops"
        assert "not saved" in str(screen.query_one("#compare-status").render())
    assert experiments.list_experiments() == []
    assert len(fake.calls) == 1, "the second variant never started"


# -- keys, palette, help ------------------------------------------------------------------


async def test_every_lab_view_is_in_the_palette_and_the_help(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.chat)]
        for binding in LAB_BINDINGS:
            assert any(t.startswith(binding.description) for t in titles), binding.id
            assert binding.id and binding.id.startswith("lab.")
    text = help_markdown({})
    for binding in LAB_BINDINGS:
        assert f"`{binding.key}`" in text


async def test_lab_keys_can_be_remapped_by_id(make):
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[keymap]\n"lab.tokens" = "f12"\n', encoding="utf-8")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "remapped"
        await pilot.press("f12")
        await settle(pilot)
        assert isinstance(app.screen, TokensScreen)
