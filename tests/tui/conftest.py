"""Fixtures for the chat app's tests.

Most tests drive the app with the scripted ``FakeEngine`` (no model load, deterministic text);
the key behaviours (send, stream, stop, regenerate, branch) are repeated once with the real
SmolLM2 engine in ``test_real_model.py``. The history is always a real SQLite file under the
test's own ``CHATTERM_HOME``, and tests assert its rows directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chatterm.chat_services import ChatServices, make_services
from chatterm.engine.fake import FakeEngine
from chatterm.tui.factory import make_app

from .helpers import Seen


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
def fake() -> FakeEngine:
    return FakeEngine(n_ctx=2048)


@pytest.fixture
def make(fake: FakeEngine) -> Callable[..., Any]:
    """Build the app through the same factory as the CLI, on the fake engine by default."""
    built: list[ChatServices] = []

    def factory(**kwargs: Any) -> Any:
        kwargs.setdefault("engine", fake)
        services = make_services(**kwargs)
        built.append(services)
        return make_app(services)

    yield factory
    for services in built:
        services.store.close()


@pytest.fixture
def home(chatterm_home: Path) -> Path:
    return chatterm_home
