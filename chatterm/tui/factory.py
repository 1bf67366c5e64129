"""The one factory for the chat app, shared by the CLI, the tests and the benchmarks:
:func:`make_services` (headless, from :mod:`chatterm.chat_services`) resolves config, persona
and store; :func:`make_app` wires them into the app."""

from __future__ import annotations

from typing import Any

from chatterm.chat_services import ChatServices, make_services
from chatterm.tui.app import ChatApp

__all__ = ["make_app", "make_services"]


def make_app(services_: ChatServices | None = None, **kwargs: Any) -> ChatApp:
    """The app, built from ``services_`` or from :func:`make_services` ``(**kwargs)``."""
    return ChatApp(services_ or make_services(**kwargs))
