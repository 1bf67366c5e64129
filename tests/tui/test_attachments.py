"""Attaching files in the chat app: ``@`` opens a fuzzy path picker, chips show token counts
and can be removed, the context meter counts them, and they are saved with the message."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Static

from chatterm.lab.records import TokenRecord
from chatterm.store import ConversationStore
from chatterm.tui.screens.path_picker import PathPickerScreen, list_paths, rank
from chatterm.tui.widgets.attachment_bar import AttachmentBar
from chatterm.tui.widgets.message_view import UserMessage
from chatterm.tui.widgets.prob_text import ProbText

from .helpers import send, settle, wait_until

SECRET = "The secret word is PELICAN.\n"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "proj"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "notes.md").write_text(SECRET)
    (root / "main.py").write_text("print('hi')\n")
    (root / ".gitignore").write_text("secret.env\n")
    (root / "secret.env").write_text("TOKEN=1\n")
    monkeypatch.chdir(root)
    return root


def test_paths_are_listed_with_gitignore_and_ranked_fuzzily(project: Path) -> None:
    paths = list_paths(project)
    assert "docs/" in paths and "docs/notes.md" in paths and "main.py" in paths
    assert "secret.env" not in paths
    assert rank("ntmd", paths)[0] == "docs/notes.md"
    assert rank("", paths) == paths[: len(rank("", paths))]


async def _attach(pilot, query: str) -> None:
    app = pilot.app
    app.chat.prompt.focus()
    await pilot.press("@")
    await wait_until(pilot, lambda: isinstance(app.screen, PathPickerScreen))
    picker = app.screen
    await wait_until(pilot, lambda: bool(picker.paths))
    for char in query:
        await pilot.press(char)
    await pilot.press("enter")
    await settle(pilot)


async def test_at_attaches_a_file_shown_as_a_chip_and_saved_with_the_message(
    make, project: Path, fake
) -> None:
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        before = app.chat.meter.figures
        await _attach(pilot, "notesmd")
        bar = app.chat.query_one(AttachmentBar)
        assert [a.source for a in bar.items] == [str(project / "docs" / "notes.md")]
        chip = str(bar.query_one("#chip-0").label)
        assert chip.endswith("notes.md · 8 tok ✕")  # the fake engine counts words
        assert app.chat.prompt.text == ""  # the @ was not typed into the message
        await settle(pilot)
        after = app.chat.meter.figures
        assert before is not None and after is not None and after[1] > before[1]
        await send(pilot, "What is the secret word?")
        assert bar.items == [] and not bar.has_class("-filled")
        shown = app.chat.transcript.query_one(UserMessage).query_one(".attachment", Static)
        assert str(shown.render()).endswith("notes.md · 8 tok")
    sent = fake.calls[-1].messages[-1].content
    assert sent.startswith(f'<attachment source="{project / "docs" / "notes.md"}">\n{SECRET}')
    assert sent.endswith("What is the secret word?")
    with ConversationStore() as store:
        (conversation,) = store.list_conversations()
        user = store.active_path(conversation.id)[0]
    assert user.content == "What is the secret word?"
    assert [a.text for a in user.attachments] == [SECRET]


async def test_a_chip_is_removed_by_pressing_it(make, project: Path) -> None:
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await _attach(pilot, "mainpy")
        bar = app.chat.query_one(AttachmentBar)
        assert len(bar.items) == 1
        await pilot.click("#chip-0")
        await settle(pilot)
        assert bar.items == []


async def test_a_cancelled_picker_or_an_at_inside_a_word_types_a_plain_at(
    make, project: Path
) -> None:
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        prompt = app.chat.prompt
        prompt.focus()
        await pilot.press("@")
        await wait_until(pilot, lambda: isinstance(app.screen, PathPickerScreen))
        await pilot.press("escape")
        await settle(pilot)
        assert prompt.text == "@"
        prompt.text = ""
        for char in "ann@example.org":
            await pilot.press(char)
        assert prompt.text == "ann@example.org"
        assert not isinstance(app.screen, PathPickerScreen)


async def test_forced_tokens_are_underlined_in_the_probabilities_view(make) -> None:
    app = make()
    async with app.run_test(size=(80, 20)):
        free = TokenRecord("Bob", 1, 0.9, (), "Bob")
        forced = TokenRecord('"}', 2, 0.2, (), '"}', forced=True)
        text = ProbText([free, forced])
        underlined = [s for s in text._spans if str(s.style) == "underline"]
        assert [(s.start, s.end) for s in underlined] == [(3, 5)]


@pytest.mark.slow
async def test_an_attached_file_reaches_the_real_model_in_place(
    make, real_engine, project: Path, seen
) -> None:
    from chatterm.tui.messages import PromptEvaluated

    app = make(engine=real_engine)
    async with app.run_test(size=(120, 40), message_hook=seen.append) as pilot:
        await settle(pilot)
        await _attach(pilot, "notesmd")
        bar = app.chat.query_one(AttachmentBar)
        (item,) = bar.items
        assert item.tokens == len(real_engine.token_ids(item.block()))  # the model's tokenizer
        app.chat.settings = app.chat.settings.replace(max_tokens=4)
        await send(pilot, "What is the secret word?")
    prompt = seen.of(PromptEvaluated)[-1].prompt.prompt_text
    block = f'<attachment source="{project / "docs" / "notes.md"}">\n{SECRET}</attachment>'
    assert f"{block}\n\nWhat is the secret word?" in prompt


@pytest.mark.slow
async def test_the_sampling_view_shows_a_schemas_grammar_stage(make, real_engine) -> None:
    from chatterm import structured
    from chatterm.tui.screens.sampling import SamplingScreen

    app = make(engine=real_engine)
    schema = structured.canonical(structured.concise_schema("name, age int"))
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.settings = app.chat.settings.replace(schema=schema)  # as a persona sets it
        app.chat.prompt.text = "Describe Bob, who is 41."
        await pilot.press("f5")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SamplingScreen)
        expl = screen.explanation
        assert expl is not None and expl.stages[0].name == "grammar"
        assert any(r.removed_by == "grammar" for r in expl.rows)
        kept = [r for r in expl.rows if r.removed_by is None]
        assert kept and all(r.piece.lstrip().startswith("{") for r in kept)
