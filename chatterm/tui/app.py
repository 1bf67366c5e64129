"""The chatterm Textual app: it owns the services and shows the chat screen.

Build it with :func:`chatterm.tui.factory.make_app` (the CLI and the tests share that factory).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterable
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.screen import Screen

from chatterm.chat_services import ChatServices
from chatterm.engine.base import Engine
from chatterm.tui import keys
from chatterm.tui.lab.keys import LAB_BINDINGS
from chatterm.tui.screens.chat import ChatScreen
from chatterm.tui.screens.help import HelpScreen

SWITCH_INTERVAL = 0.001
TERMINATING = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n))


class ChatApp(App[None]):
    """Keyboard-first chat with local models. ``ctrl+q`` quits with exit code 0."""

    CSS_PATH = "app.tcss"
    TITLE = "chatterm"
    BINDINGS: ClassVar[list[BindingType]] = [*keys.APP_BINDINGS]
    COMMAND_PALETTE_BINDING = "ctrl+p"

    def __init__(self, services: ChatServices) -> None:
        super().__init__()
        self.services = services
        self.keymap = keys.user_keymap()
        # Engines this app loaded itself; the caller closes them after ``run`` returns, when
        # no worker thread can still be inside a decode.
        self.loaded_engines: list[Engine] = []

    @property
    def chat(self) -> ChatScreen:
        return self.get_screen("chat")  # type: ignore[return-value]

    @property
    def engine(self) -> Engine | None:
        return self.chat.engine if self.is_screen_installed("chat") else self.services.engine

    def on_mount(self) -> None:
        # The generation thread needs the GIL briefly between decode calls; while the UI
        # renders a frame it would wait up to the default 5 ms switch interval each time.
        sys.setswitchinterval(SWITCH_INTERVAL)
        if self.keymap:
            self.set_keymap(self.keymap)
            remappable = [*keys.APP_BINDINGS, *keys.CHAT_BINDINGS, *LAB_BINDINGS]
            for warning in keys.keymap_warnings(self.keymap, remappable):
                self.notify(warning, title="config.toml", severity="warning", timeout=15)
        self.install_screen(ChatScreen(self.services), "chat")
        self.push_screen("chat")
        self._catch_termination()

    def _catch_termination(self) -> None:
        """SIGTERM and SIGHUP (``kill``, a closed terminal) quit as ctrl+q does: a streaming
        reply is stopped and saved as "stopped" first. The exit code is 128 + the signal."""
        loop = asyncio.get_running_loop()
        for signum in TERMINATING:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signum, self._terminated, signum)

    def on_unmount(self) -> None:
        with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
            loop = asyncio.get_running_loop()
            for signum in TERMINATING:
                loop.remove_signal_handler(signum)

    def _terminated(self, signum: int) -> None:
        if self.is_screen_installed("chat"):
            self.chat.prepare_exit()
        self.exit(return_code=128 + signum)

    def engine_changed(self, previous: Engine | None, engine: Engine) -> None:
        self.loaded_engines.append(engine)
        if previous is not None and previous in self.loaded_engines:
            # Nothing generates during a model switch (the screen refuses it), so the old
            # model can be freed now.
            self.loaded_engines.remove(previous)
            previous.close()

    def close_engines(self) -> None:
        """Free the models this app loaded (call after ``run`` returns)."""
        for engine in self.loaded_engines:
            engine.close()
        self.loaded_engines.clear()

    async def action_quit(self) -> None:
        """Stop and save a streaming reply first, then exit with code 0."""
        if self.is_screen_installed("chat"):
            self.chat.prepare_exit()
        self.exit(return_code=0)

    def action_help_quit(self) -> None:
        """Ctrl+C outside a text field: someone reaching for the usual keys, most likely to
        stop a reply. Say how to stop it (Esc) and how to quit."""
        quit_keys = keys.display_keys(keys.keys_for(keys.by_id("app.quit"), self.keymap))
        stop_keys = keys.display_keys(keys.keys_for(keys.by_id("chat.stop"), self.keymap))
        streaming = self.is_screen_installed("chat") and self.chat.job is not None
        first = f"{stop_keys} stops the reply and keeps its text; " if streaming else ""
        self.notify(
            f"{first}{quit_keys} quits (a streaming reply is saved first)",
            title="Ctrl+C copies; it does not quit",
            markup=False,
        )

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.keymap))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette lists every chat action (with its key) besides Textual's own."""
        yield from super().get_system_commands(screen)
        chat = self.chat if self.is_screen_installed("chat") else None
        if chat is None or screen is not chat:
            return
        for binding in [*keys.APP_BINDINGS, *keys.CHAT_BINDINGS, *LAB_BINDINGS]:
            if binding.action in ("quit",):
                continue
            shown = keys.display_keys(keys.keys_for(binding, self.keymap))
            target = self if binding in keys.APP_BINDINGS else chat
            yield SystemCommand(
                f"{binding.description} ({shown})",
                binding.tooltip,
                lambda action=binding.action, node=target: self.call_later(node.run_action, action),
            )
        for title, help_text, action in (
            ("Reset sampling settings", "Back to the persona's or default settings", "reset"),
            ("Rename this conversation", "Give the open conversation a new title", "rename"),
            ("Delete this conversation", "Delete the open conversation (asks first)", "delete"),
            ("Load earlier messages", "Mount the previous page of this conversation", "older"),
        ):
            yield SystemCommand(
                title, help_text, lambda a=action: self.call_later(chat.palette_action, a)
            )
