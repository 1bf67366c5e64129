"""Snapshot tests of the stable screens at a fixed 120x40 terminal: the main screen, the side
panel after a reply, the help screen and a finished transcript.

Content is deterministic: a scripted engine with fixed stats, no cursor blink. Update the
snapshots after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``
and look at the report before committing them.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from chatterm.engine.events import Finished, Stats
from chatterm.engine.fake import FakeEngine
from chatterm.tui.factory import make_app, make_services

from .helpers import settle, wait_until

SIZE = (120, 40)
REPLY = """\
## Adding numbers

Here is a function that adds two numbers:

```python
def add(a: int, b: int) -> int:
    return a + b
```

- It takes **two** arguments.
- It returns their sum, e.g. `add(2, 3) == 5`.
"""


class SteadyEngine(FakeEngine):
    """The fake engine with fixed timings, so the stats line is the same on every run."""

    def generate(self, messages, sampling, *, top_logprobs=0, cancel=None):
        for event in super().generate(messages, sampling, top_logprobs=top_logprobs, cancel=cancel):
            if isinstance(event, Finished):
                fixed = Stats(
                    prompt_tokens=event.stats.prompt_tokens,
                    cached_tokens=0,
                    generated_tokens=event.stats.generated_tokens,
                    ttft_s=0.120,
                    prompt_tps=850.0,
                    decode_tps=72.5,
                    total_s=0.61,
                )
                event = replace(event, stats=fixed)
            yield event


@pytest.fixture
def app(chatterm_home):
    engine = SteadyEngine(name="smollm2-135m-instruct", n_ctx=2048)
    services = make_services(engine=engine)
    yield make_app(services)
    services.store.close()


async def still(pilot) -> None:
    pilot.app.chat.prompt.cursor_blink = False
    await settle(pilot)


async def chat_once(pilot, text: str) -> None:
    chat = pilot.app.chat
    chat.prompt.cursor_blink = False
    chat.prompt.text = text
    chat.prompt.focus()
    await pilot.press("enter")
    await wait_until(pilot, lambda: chat.job is None)
    await settle(pilot)


def test_main_screen(snap_compare, app):
    assert snap_compare(app, terminal_size=SIZE, run_before=still)


def test_side_panel_after_a_reply(snap_compare, app):
    async def run_before(pilot) -> None:
        pilot.app.chat.services.engine.enqueue("Four.")
        await chat_once(pilot, "What is 2 + 2?")
        field = pilot.app.chat.query_one("#setting-temperature")
        field.value = "0.2"
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, app):
    async def run_before(pilot) -> None:
        await still(pilot)
        await pilot.press("f1")
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_finished_transcript_with_markdown_and_branches(snap_compare, app):
    async def run_before(pilot) -> None:
        engine = pilot.app.chat.services.engine
        engine.enqueue("An earlier answer.", REPLY)
        await chat_once(pilot, "Write a Python function that adds two numbers.")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: len(engine.calls) == 2 and pilot.app.chat.job is None)
        await settle(pilot)
        pilot.app.chat.prompt.focus()
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
