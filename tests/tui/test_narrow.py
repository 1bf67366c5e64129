"""The chat app on small terminals: it starts at 60x20, shows the model and persona where the
side panel is hidden, keeps Quit and Help in the footer, and leaves at most one blank row
under a streaming reply."""

from __future__ import annotations

from textual.widgets._footer import FooterKey

from chatterm.tui.widgets.open_block import OpenBlock

from .helpers import settle, wait_until


async def test_at_60_columns_the_app_starts_and_shows_model_persona_quit_and_help(make):
    app = make(persona="teacher")
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        assert not app.chat.panel.display and not app.chat.conversations.display
        assert app.chat.prompt.size.width > 20
        assert str(app.chat.prompt.border_subtitle) == "fake-model · teacher"
        keys = [k for k in app.chat.query(FooterKey) if k.region.right <= 60 and k.region.width]
        assert [k.description for k in keys[:2]] == ["Quit", "Help"]


async def test_a_streaming_reply_leaves_at_most_one_blank_row_under_its_text(make, fake):
    fake.delay = 0.02
    fake.enqueue(" ".join(f"word{i}" for i in range(150)))
    app = make()
    async with app.run_test(size=(60, 20)) as pilot:
        app.chat.prompt.text = "go"
        await pilot.press("enter")
        heights = []

        def sample() -> bool:
            for block in app.chat.query(OpenBlock):
                live = block.query_one(".live")
                if block.display and live.region.height:
                    needed = live.render().get_height(live.styles, live.content_region.width)
                    heights.append(live.region.height - needed)
            return app.chat.job is None

        await wait_until(pilot, sample)
        await settle(pilot)
    assert heights, "the open block was seen while streaming"
    assert max(heights) <= 1
