"""The chat app's rendered-prompt view says when the model's template has no system role and
the persona's system prompt was folded into the first user message."""

from __future__ import annotations

import pytest

from chatterm.tui.screens.rendered_prompt import RenderedPromptScreen
from tests.gguf_copies import copy_gguf

from .helpers import settle, wait_until

pytestmark = pytest.mark.slow

NO_SYSTEM = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


async def test_the_prompt_view_says_the_system_prompt_was_folded(make, starter_path, tmp_path):
    from chatterm.engine.llama_engine import LlamaEngine
    from tests.conftest import TEST_THREADS

    path = copy_gguf(starter_path, tmp_path / "no-system.gguf", template=NO_SYSTEM)
    engine = LlamaEngine(path, n_ctx=512, threads=int(TEST_THREADS) if TEST_THREADS else None)
    try:
        app = make(engine=engine, persona="teacher")
        async with app.run_test(size=(120, 40)) as pilot:
            app.chat.prompt.text = "What is a token?"
            await pilot.press("f9")
            await wait_until(pilot, lambda: getattr(app.screen, "view", None) is not None)
            await settle(pilot)
            screen = app.screen
            assert isinstance(screen, RenderedPromptScreen)
            note = screen.query_one("#prompt-note")
            shown = str(note.render())
            displayed = note.display
            view = screen.view
    finally:
        engine.close()
    assert view is not None and view.notes and displayed
    assert "no system role" in shown and "first user message" in shown
    assert "<|im_start|>system" not in view.text
    assert view.text.index("<|im_start|>user") < view.text.index("What is a token?")


async def test_a_persona_nested_100000_deep_breaks_neither_the_picker_nor_the_typed_text(make):
    from chatterm import prompts
    from chatterm.tui.screens.picker import PickerScreen

    folder = prompts.user_dir("persona")
    folder.mkdir(parents=True, exist_ok=True)
    deep = "+++\na = " + "[" * 100000 + "]" * 100000 + "\n+++\nYou are deep.\n"
    (folder / "deep.md").write_text(deep, encoding="utf-8")
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        app.chat.prompt.text = "words I typed"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, PickerScreen)
        labels = [str(o.prompt) for o in app.screen.query_one("#picker-options").options]
        assert any("deep" in label for label in labels) and any("concise" in x for x in labels)
        await pilot.press("escape")
        await settle(pilot)
        assert app.chat.prompt.text == "words I typed"
