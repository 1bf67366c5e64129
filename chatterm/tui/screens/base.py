"""The chat screen's foundation: layout, state, the settings panel, the context meter and
model loading. ``ConversationsScreen`` adds the conversation list and pickers on top, and
``ChatScreen`` the turn itself; each layer stays a readable size.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

from textual import getters, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Static

from chatterm.attachments import user_content
from chatterm.chat_services import ChatServices
from chatterm.engine.base import Engine
from chatterm.engine.context import reply_reserve, split_system
from chatterm.engine.events import ChatMessage
from chatterm.errors import ChattermError, ContextOverflowError
from chatterm.prompts import PromptFile
from chatterm.sampling import SamplingSettings
from chatterm.services import EngineOptions
from chatterm.store import Conversation, Message, model_history
from chatterm.tui.generation import ReplyJob
from chatterm.tui.messages import (
    ContextMeasured,
    ContextUnmeasured,
    ModelLoaded,
    ModelLoadFailed,
)
from chatterm.tui.widgets.attachment_bar import AttachmentBar
from chatterm.tui.widgets.chat_footer import ChatFooter
from chatterm.tui.widgets.conversation_list import ConversationList
from chatterm.tui.widgets.prompt_input import PromptInput
from chatterm.tui.widgets.sampling_panel import SamplingPanel
from chatterm.tui.widgets.side_panel import ContextMeter, ReplyStats, SidePanel
from chatterm.tui.widgets.transcript import Transcript

UNSET: Any = object()
"""``retry_parent`` when the next prompt simply follows the current branch."""

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(method: F) -> F:
    """A handler whose ``ChattermError`` (a locked or broken history file, an unknown id…)
    becomes a notification instead of ending the app."""

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def run_async(self: ChatBase, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except ChattermError as exc:
                self.report(exc)
                return None

        return run_async  # type: ignore[return-value]

    @functools.wraps(method)
    def run(self: ChatBase, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ChattermError as exc:
            self.report(exc)
            return None

    return run  # type: ignore[return-value]


class ChatBase(Screen[None]):
    """Conversation list | transcript and input | settings panel, and the state behind them.

    Below 120 columns the conversation list starts hidden, below 90 the settings panel too, so
    the transcript keeps a readable width; ctrl+b and ctrl+t still show them.
    """

    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (90, "-medium"),
        (120, "-wide"),
    ]

    transcript = getters.query_one(Transcript)
    prompt = getters.query_one(PromptInput)
    attachment_bar = getters.query_one(AttachmentBar)
    panel = getters.query_one(SidePanel)
    sampling = getters.query_one(SamplingPanel)
    conversations = getters.query_one(ConversationList)
    meter = getters.query_one(ContextMeter)
    reply_stats = getters.query_one(ReplyStats)

    def __init__(self, services: ChatServices) -> None:
        super().__init__(id="chat")
        self.services = services
        self.store = services.store
        self.engine: Engine | None = services.engine
        self.engine_options = services.options
        self.model_loading: EngineOptions | None = None
        self.conversation: Conversation | None = None
        self.persona: PromptFile | None = services.persona
        self.system_prompt: str | None = self._persona_prompt(self.persona)
        self.settings: SamplingSettings = services.default_settings(self.persona)
        self.job: ReplyJob | None = None
        self.editing: int | None = None  # the user message being edited, if any
        self.retry_parent: Any = UNSET  # where the next prompt goes after a failed start
        self.pending: str | None = None  # sent once the model has loaded
        self._meter_generation = 0

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield ConversationList(id="conversations")
            with Vertical(id="centre"):
                yield Transcript(id="transcript")
                yield Static("", id="edit-banner")
                yield AttachmentBar(id="attachments")
                yield PromptInput(
                    id="prompt", placeholder="Message (Enter sends, Ctrl+J newline, F1 help)"
                )
            yield SidePanel(self.settings, id="side-panel")
        yield ChatFooter()

    def _persona_label(self) -> tuple[str | None, str]:
        if self.persona is None:
            return None, ""
        return self.persona.name, self.persona.description

    @staticmethod
    def _persona_prompt(persona: PromptFile | None) -> str | None:
        if persona is None:
            return None
        try:
            return persona.render("") or None
        except ChattermError:
            return None

    def _show_model(self) -> None:
        engine = self.engine
        if engine is None:
            self.panel.show_model("no model", "pick one with the model picker")
            return
        detail = f"window {engine.n_ctx} tokens"
        note = engine.gpu_note
        if note:
            detail += f" · {note}"
        self.panel.show_model(engine.name, detail)
        self.app.sub_title = engine.name

    def history(self, path: list[Message], exclude: int | None = None) -> list[ChatMessage]:
        """What the model sees (see :func:`chatterm.store.model_history`)."""
        return model_history(self.system_prompt, path, exclude=exclude)

    def _busy(self) -> bool:
        if self.job is not None:
            self.notify("Wait for the reply or stop it with Esc first", severity="warning")
            return True
        if self.engine is None:
            self.notify("No model is loaded yet", severity="warning")
            return True
        return False

    def _end_edit(self) -> None:
        self.editing = None
        self.query_one("#edit-banner").display = False

    def report(self, error: ChattermError | str, title: str = "Something went wrong") -> None:
        self.notify(str(error), title=title, severity="error", markup=False, timeout=10)

    async def send(self, text: str) -> None:
        """Send ``text`` as the next prompt (``ChatScreen`` implements the turn)."""
        raise NotImplementedError

    # -- settings --------------------------------------------------------------------------

    @on(SamplingPanel.Changed)
    @reports_errors
    def _sampling_changed(self, event: SamplingPanel.Changed) -> None:
        self.settings = event.settings
        if self.conversation is not None:
            self.conversation = self.store.update_conversation(
                self.conversation.id, sampling=self.settings
            )
        if event.field == "max_tokens":
            self.measure_context()

    @on(SamplingPanel.ResetRequested)
    @reports_errors
    def _sampling_reset(self, event: SamplingPanel.ResetRequested) -> None:
        self.apply_settings(self.services.default_settings(self.persona))
        label = f"persona {self.persona.name!r}" if self.persona else "the defaults"
        self.notify(f"Sampling settings reset to {label}", timeout=3, markup=False)

    def apply_settings(self, settings: SamplingSettings) -> None:
        self.settings = settings
        self.sampling.set_settings(settings)
        if self.conversation is not None:
            self.conversation = self.store.update_conversation(
                self.conversation.id, sampling=settings
            )
        self.measure_context()

    # -- context meter -------------------------------------------------------------------

    def measure_context(self) -> None:
        """Measure in a worker (tokenizing a long history takes a moment); skipped while a
        reply streams, and redone when it ends."""
        engine = self.engine
        if engine is None or self.job is not None:
            return
        path = self.store.active_path(self.conversation.id) if self.conversation else []
        messages = self.history(path)
        attached = self.attachment_bar.items
        if attached:  # the next message's attachments already take their room
            messages.append(ChatMessage("user", user_content("", attached)))
        self._meter_generation += 1
        self._measure(engine, messages, self.settings.max_tokens, self._meter_generation)

    @work(thread=True, exclusive=True, group="meter", exit_on_error=False)
    def _measure(
        self, engine: Engine, messages: list[ChatMessage], max_tokens: int, generation: int
    ) -> None:
        n_ctx = engine.n_ctx
        head, body = split_system(messages)
        reserve = reply_reserve(n_ctx, max_tokens)
        try:
            system = len(engine.render(head, add_generation_prompt=False).tokens) if head else 0
            total, dropped = system, 0
            if body:
                try:  # the engine's own plan: the meter shows what the next reply sends
                    plan = engine.plan(messages, max_tokens)
                    total, dropped = plan.total_tokens, plan.dropped
                except ContextOverflowError:  # only the newest message would be left
                    total, dropped = len(engine.render(messages).tokens), len(body) - 1
        except ChattermError as exc:
            # A server that cannot count tokens, or one that failed: said in the meter itself,
            # not as a failure notification after every reply.
            self.post_message(ContextUnmeasured(str(exc), n_ctx, engine.n_ctx_known, generation))
            return
        self.post_message(
            ContextMeasured(system, total - system, reserve, n_ctx, dropped, generation)
        )

    @on(ContextUnmeasured)
    def _unmeasured(self, message: ContextUnmeasured) -> None:
        if message.generation == self._meter_generation:
            self.meter.show_unmeasured(message.reason, message.n_ctx, message.n_ctx_known)

    @on(ContextMeasured)
    def _measured(self, message: ContextMeasured) -> None:
        if message.generation == self._meter_generation:
            self.meter.show_figures(
                message.system_tokens,
                message.history_tokens,
                message.reserve_tokens,
                message.n_ctx,
                message.dropped_messages,
            )

    # -- model loading -------------------------------------------------------------------

    def start_model_load(self, options: EngineOptions) -> None:
        if self.job is not None:
            self.notify("Wait for the reply or stop it with Esc first", severity="warning")
            return
        self.model_loading = options
        self.panel.show_loading(True)
        self.notify(f"Loading {options.model or 'the default model'}…", timeout=3, markup=False)
        self.load_model(options)

    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def load_model(self, options: EngineOptions) -> None:
        started = time.monotonic()
        try:
            engine = self.services.load_engine(options)
        except ChattermError as exc:
            self.post_message(ModelLoadFailed(options, str(exc)))
            return
        self.post_message(ModelLoaded(engine, options, time.monotonic() - started))

    @on(ModelLoaded)
    @reports_errors
    async def _model_loaded(self, message: ModelLoaded) -> None:
        previous = self.engine
        self.engine = message.engine
        self.engine_options = message.options
        self.model_loading = None
        self.panel.show_loading(False)
        self._show_model()
        self.app_engine_changed(previous, message.engine)
        self.notify(
            f"{message.engine.name} loaded in {message.seconds:.1f} s", timeout=3, markup=False
        )
        if self.conversation is not None:
            self.conversation = self.store.update_conversation(
                self.conversation.id, model=message.engine.name
            )
        self.measure_context()
        if self.pending is not None:
            text, self.pending = self.pending, None
            await self.send(text)

    def app_engine_changed(self, previous: Engine | None, engine: Engine) -> None:
        """Tell the app which engine to close at exit; close a replaced one we loaded."""
        owner = getattr(self.app, "engine_changed", None)
        if owner is not None:
            owner(previous, engine)

    @on(ModelLoadFailed)
    def _model_failed(self, message: ModelLoadFailed) -> None:
        self.model_loading = None
        self.panel.show_loading(False)
        kept = f"; still using {self.engine.name}" if self.engine else ""
        self.notify(
            f"{message.error}{kept}",
            title="Model not loaded",
            severity="error",
            markup=False,
            timeout=10,
        )
        if self.pending is not None and self.engine is None:
            self.prompt.restore(self.pending)
            self.pending = None
        self._show_model()
