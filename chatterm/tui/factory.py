"""Builds the chat app, once, for the CLI and the tests alike: :func:`make_app` wires a
:class:`~chatterm.chat_services.ChatServices` (from :func:`make_services`) into the app."""

from __future__ import annotations

from typing import Any

from chatterm.chat_services import ChatServices, make_services
from chatterm.tui.app import ChatApp

__all__ = ["ChatServices", "make_app", "make_services"]


def make_app(services_: ChatServices | None = None, **kwargs: Any) -> ChatApp:
    """The app, built from ``services_`` or from :func:`make_services` ``(**kwargs)``."""
    return ChatApp(services_ or make_services(**kwargs))
