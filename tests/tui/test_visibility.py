"""What the user must see at a glance: which field or message has focus, and that replies are
plain coloured text (not Markdown) while probabilities are on."""

from __future__ import annotations

from chatterm.tui.widgets.message_view import UserMessage
from chatterm.tui.widgets.sampling_panel import SettingInput

from .helpers import send, settle


async def test_a_focused_setting_and_a_focused_message_stand_out(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await send(pilot, "hello")
        first, second = list(app.chat.query(SettingInput))[:2]
        first.focus()
        await pilot.pause()
        assert first.styles.background != second.styles.background
        assert first.styles.text_style.bold and not second.styles.text_style.bold
        message = list(app.chat.transcript.query(UserMessage))[-1]
        resting = message.styles.background
        message.focus()
        await pilot.pause()
        focused = message.styles.background
        assert focused != resting
        assert message.styles.border_left[0] == "thick"


async def test_probabilities_on_says_that_replies_are_not_rendered_as_markdown(make, fake):
    app = make()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await settle(pilot)
        assert "no Markdown" in str(app.chat.prompt.border_title)
        assert "Markdown is not rendered" in str(list(app._notifications)[-1].message)
        await pilot.press("f3")
        await settle(pilot)
        assert not app.chat.prompt.border_title
