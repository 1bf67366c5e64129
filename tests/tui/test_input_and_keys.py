"""The input (Enter, Ctrl+J, Up/Down recall), copying, help, the command palette, personas and
templates, and user keymaps."""

from __future__ import annotations

from textual.command import CommandPalette

from chatterm import paths
from chatterm.tui import keys
from chatterm.tui.screens.help import HelpScreen
from chatterm.tui.screens.picker import PickerScreen
from chatterm.tui.widgets.message_view import AssistantMessage, UserMessage
from chatterm.tui.widgets.prompt_input import PromptInput

from .helpers import db_rows, messages_rows, send, settle, wait_until


async def test_ctrl_j_inserts_a_newline_and_enter_sends_it_all(make, fake, seen):
    app = make()
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await pilot.press(*"line one", "ctrl+j", *"line two")
        assert app.chat.prompt.text == "line one\nline two"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.job is None and fake.calls)
        await settle(pilot)
        assert [m.text for m in seen.of(PromptInput.Submitted)] == ["line one\nline two"]
    assert messages_rows()[0]["content"] == "line one\nline two"


async def test_enter_on_an_empty_input_sends_nothing(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("enter", "space", "enter")
        await settle(pilot)
    assert fake.calls == [] and messages_rows() == []


async def test_up_and_down_recall_earlier_prompts_and_the_draft(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "first prompt")
        await send(pilot, "second prompt")
        prompt = app.chat.prompt
        prompt.focus()
        await pilot.press(*"draft")
        await pilot.press("up")
        assert prompt.text == "second prompt"
        await pilot.press("up")
        assert prompt.text == "first prompt"
        await pilot.press("down")
        assert prompt.text == "second prompt"
        await pilot.press("down")
        assert prompt.text == "draft"


async def test_recall_remembers_prompts_from_earlier_sessions(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "from yesterday")
    again = make()
    async with again.run_test(size=(120, 40)) as pilot:
        await pilot.press("up")
        assert again.chat.prompt.text == "from yesterday"


async def test_c_copies_a_message_and_y_copies_code_blocks(make, fake):
    fake.enqueue("Two blocks:\n\n```py\nprint(1)\n```\n\n```sh\nls -l\n```\n")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "show code")
        reply = list(app.chat.transcript.query(AssistantMessage))[-1]
        reply.focus()
        await pilot.press("c")
        assert app.clipboard == reply.text
        await pilot.press("y")
        assert app.clipboard == "print(1)"
        await pilot.press("y")
        assert app.clipboard == "ls -l"
        list(app.chat.transcript.query(UserMessage))[-1].focus()
        await pilot.press("c")
        assert app.clipboard == "show code"
        app.chat.prompt.focus()
        await pilot.press("alt+c")
        assert app.clipboard == reply.text


async def test_up_and_down_move_between_messages(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "one")
        views = list(app.chat.transcript.query(UserMessage)) + list(
            app.chat.transcript.query(AssistantMessage)
        )
        views[1].focus()
        await pilot.press("up")
        assert app.focused is views[0]
        await pilot.press("down")
        assert app.focused is views[1]


async def test_f1_and_question_mark_open_help(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        app.chat.prompt.focus()
        await pilot.press("question_mark")
        assert app.chat.prompt.text == "?", "in the input, ? is just a character"
        app.chat.query_one("#conversation-options").focus()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)


async def test_help_lists_every_binding(make):
    from chatterm.tui.screens.help import help_markdown

    text = help_markdown({})
    for binding in [*keys.APP_BINDINGS, *keys.CHAT_BINDINGS]:
        assert binding.tooltip in text
    assert "ctrl+j" in text


async def test_the_palette_lists_every_chat_action(make):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        titles = [c.title for c in app.get_system_commands(app.chat)]
        for binding in keys.CHAT_BINDINGS:
            assert any(t.startswith(binding.description) for t in titles), binding.description
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"new chat")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, CommandPalette)


async def test_persona_picker_sets_the_system_prompt(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, PickerScreen)
        labels = [str(o.prompt) for o in app.screen.query_one("#picker-options").options]
        assert any("concise" in label for label in labels)
        await pilot.press(*"concise", "enter")
        await settle(pilot)
        assert app.chat.persona.name == "concise"
        await send(pilot, "hi")
        first = fake.calls[-1].messages[0]
        assert first.role == "system" and first.content == app.chat.persona.render("")
    (row,) = db_rows("SELECT persona, system_prompt FROM conversations")
    assert row["persona"] == "concise" and row["system_prompt"]


async def test_starting_persona_comes_from_the_factory(make, fake):
    app = make(persona="teacher")
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "what is a token?")
        assert fake.calls[0].messages[0].role == "system"
        assert "teacher" in str(app.chat.query_one("#persona-info").render())


async def test_template_picker_fills_the_input(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "The quick brown fox jumps over the lazy dog."
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert isinstance(app.screen, PickerScreen)
        await pilot.press(*"summarize", "enter")
        await settle(pilot)
        text = app.chat.prompt.text
        assert (
            "The quick brown fox" in text and text != "The quick brown fox jumps over the lazy dog."
        )
    assert fake.calls == [], "filling the input sends nothing"


async def test_a_keymap_in_config_remaps_a_binding(make, fake):
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[keymap]\n"chat.regenerate" = "f5"\n', encoding="utf-8")
    fake.enqueue("one", "two")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "q")
        await pilot.press("f5")
        await wait_until(pilot, lambda: len(fake.calls) == 2 and app.chat.job is None)
        await settle(pilot)
    assert [r["content"] for r in messages_rows() if r["role"] == "assistant"] == ["one", "two"]


async def test_a_conflicting_keymap_is_warned_about_at_start(make, fake):
    # The README's old example: F5 is the lab's sampling view, F6 the input's "select line".
    config = paths.config_file()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        '[keymap]\n"chat.regenerate" = "ctrl+r,f5"\n"chat.persona" = "f6"\n"chat.nope" = "f12"\n',
        encoding="utf-8",
    )
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        warnings = [str(n.message) for n in app._notifications if n.severity == "warning"]
    assert any("f5 for chat.regenerate is also the key of lab.sampling" in w for w in warnings)
    assert any("f6 for chat.persona is the input's key for 'Select line'" in w for w in warnings)
    assert any("no binding has the id 'chat.nope'" in w for w in warnings)


async def test_alt_keys_reach_their_bindings_instead_of_typing_a_letter(make, fake):
    from textual import events

    fake.enqueue("Here:\n\n```sh\nls\n```\n")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "show code")
        app.chat.prompt.focus()
        # What a terminal's ESC y becomes: key "alt+y" carrying the printable "y".
        app.post_message(events.Key("alt+y", "y"))
        await settle(pilot)
        assert app.chat.prompt.text == ""
        assert app.clipboard == "ls"


async def test_ctrl_c_during_a_reply_says_that_escape_stops_it(make, fake):
    fake.delay = 0.05
    fake.enqueue(" ".join(["word"] * 200))
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "go"
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.chat.job is not None)
        list(app.chat.transcript.query(UserMessage))[-1].focus()  # not a text field
        await pilot.press("ctrl+c")
        await pilot.pause()
        note = list(app._notifications)[-1]
        assert "escape stops the reply" in str(note.message) and "ctrl+q quits" in str(note.message)
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.chat.job is None)


async def test_a_template_placeholder_is_selected_so_typing_replaces_it(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+l")
        await pilot.pause()
        await pilot.press(*"translate", "enter")  # "Translate … into {{ lang }}:\n\n{{ input }}"
        await settle(pilot)
        prompt = app.chat.prompt
        assert prompt.selected_text == "⟨your text⟩"
        await pilot.press(*"Bonjour")
        assert "⟨your text⟩" not in prompt.text and "Bonjour" in prompt.text


async def test_the_picker_keeps_descriptions_indented_and_says_when_nothing_matches(make, fake):
    app = make()
    async with app.run_test(size=(80, 30)) as pilot:
        await pilot.press("ctrl+s")
        await pilot.pause()
        await settle(pilot)
        assert isinstance(app.screen, PickerScreen)
        options = app.screen.query_one("#picker-options")
        width = options.scrollable_content_region.width
        prompts = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        described = [p.split("\n")[1:] for p in prompts if "\n" in p]
        assert any(len(lines) > 1 for lines in described), "a description long enough to wrap"
        for lines in described:
            assert all(line.startswith("  ") and len(line) <= width for line in lines)
        await pilot.press(*"zzzz")
        await pilot.pause()
        assert options.option_count == 1
        only = options.get_option_at_index(0)
        assert only.disabled and "nothing matches 'zzzz'" in str(only.prompt)
        await pilot.press("enter")
        assert isinstance(app.screen, PickerScreen), "Enter on no match picks nothing"
