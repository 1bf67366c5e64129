"""The chat screen: it orchestrates one turn at a time.

Data flow of a turn: ``PromptInput`` posts ``Submitted``; this screen saves the user message at
once, creates the reply's row ("streaming", with the sampling snapshot) and starts the
generation worker; the worker posts ``TokensArrived`` batches and one ``ReplyFinished``; the
handlers here render (through the message widget) and save (partial text about every second,
the final text and status at the end). Stopping (Esc) sets the job's cancel event: the engine
ends between tokens and the partial reply is kept, marked "stopped".

All SQLite calls run here, on the UI thread: each is one short transaction (~0.03 ms).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.binding import BindingType
from textual.widgets import Static
from textual.worker import Worker, WorkerState, get_current_worker

from chatterm.chat_services import ChatServices
from chatterm.engine.base import Engine
from chatterm.engine.reasoning import stats_summary
from chatterm.errors import ChattermError
from chatterm.sampling import SamplingSettings
from chatterm.store import Conversation, Message, model_fingerprint, status_for
from chatterm.tui import generation, keys
from chatterm.tui.generation import ReplyJob, stream_reply
from chatterm.tui.lab.chat_layer import LabChat
from chatterm.tui.lab.keys import LAB_BINDINGS
from chatterm.tui.messages import (
    GenerationProgress,
    ModelLoadFailed,
    PromptEvaluated,
    ReplyFailed,
    ReplyFinished,
    TokensArrived,
)
from chatterm.tui.screens.base import UNSET, reports_errors
from chatterm.tui.screens.conversations import entry_for
from chatterm.tui.screens.path_picker import PathPickerScreen
from chatterm.tui.widgets.attachment_bar import AttachmentBar
from chatterm.tui.widgets.message_view import AssistantMessage, MessageView, UserMessage
from chatterm.tui.widgets.prompt_input import PromptInput
from chatterm.tui.widgets.thinking_block import ThinkingBlock


class ChatScreen(LabChat):
    """The chat: sending, streaming, stopping, regenerating, editing and branching."""

    BINDINGS: ClassVar[list[BindingType]] = [*keys.CHAT_BINDINGS, *LAB_BINDINGS]

    def __init__(self, services: ChatServices) -> None:
        super().__init__(services)
        self._blink = True  # the input's cursor blink, turned off while a reply streams
        self._thinking_open: dict[str, bool] = {}  # per conversation: thinking shown open

    @reports_errors
    async def on_mount(self) -> None:
        self.query_one("#edit-banner").display = False
        self.panel.show_persona(*self._persona_label())
        self.refresh_conversations()
        self.prompt.recall = self.store_prompts()
        if self.engine is not None:
            self._show_model()
            self.measure_context()
        else:
            self.start_model_load(self.engine_options)
        self.prompt.focus()

    # -- sending -------------------------------------------------------------------------

    @on(PromptInput.Submitted)
    async def _submitted(self, event: PromptInput.Submitted) -> None:
        text = event.text
        if self.job is not None:
            self.prompt.restore(text)
            self.notify("A reply is still streaming: Esc stops it", severity="warning")
            return
        if self.engine is None:
            if self.model_loading is not None:
                self.pending = text
                self.notify("The model is loading; your message is sent when it is ready")
            else:
                self.prompt.restore(text)
                self.notify("No model is loaded: pick one from the model list", severity="error")
            return
        try:
            await self.send(text)
        except ChattermError as exc:
            # Nothing typed is lost: whatever failed, the text goes back into the input.
            self.prompt.restore(text)
            self.report(exc, title="Not sent")

    # -- attachments (@) -------------------------------------------------------------------

    @on(PromptInput.AttachRequested)
    def _attach_requested(self, event: PromptInput.AttachRequested) -> None:
        root = Path.cwd()

        def chosen(path: str | None) -> None:
            if path is None:
                self.prompt.insert_at()  # cancelled: it was a plain @ after all
            else:
                self.attachment_bar.attach(root / path, self.engine)
            self.prompt.focus()

        self.app.push_screen(PathPickerScreen(root), chosen)

    @on(AttachmentBar.Changed)
    def _attachments_changed(self, event: AttachmentBar.Changed) -> None:
        self.measure_context()

    def ensure_conversation(self) -> Conversation:
        if self.conversation is None:
            self.conversation = self.store.create_conversation(
                model=self.engine.name if self.engine else None,
                persona=self.persona.name if self.persona else None,
                system_prompt=self.system_prompt,
                sampling=self.settings,
            )
        return self.conversation

    async def send(self, text: str) -> None:
        """Save the prompt, create the reply row and start generating."""
        engine = self.engine
        assert engine is not None
        conversation = self.ensure_conversation()
        previous_leaf = self.store.get_conversation(conversation.id).current_leaf_id
        transcript = self.transcript
        if self.editing is not None:
            edited = self.editing
            keep = transcript.index_of(edited)
            user = self.store.edit_user_message(edited, text)
            self._end_edit()
        else:
            parent = self.retry_parent
            keep = len(transcript.entries)
            if parent is not UNSET:
                keep = self._retry_keep(parent)
            attached = self.attachment_bar.items
            if parent is UNSET:
                user = self.store.add_user_message(conversation.id, text, attachments=attached)
            else:
                user = self.store.add_user_message(
                    conversation.id, text, parent_id=parent, attachments=attached
                )
            await self.attachment_bar.clear()  # saved with the message: the chips are done
        self.retry_parent = UNSET
        sampling = self.settings.resolved_seed()
        reply = self.store.start_assistant_message(
            conversation.id,
            parent_id=user.id,
            model=engine.name,
            model_path=engine.model_path,
            model_hash=self._fingerprint(engine),
            sampling=sampling,
        )
        positions = self.store.branch_positions(conversation.id)
        await transcript.truncate(len(transcript.entries) if keep is None else keep)
        await transcript.add(entry_for(user, positions))
        await self._start_reply(
            reply,
            positions,
            sampling,
            user_text=text,
            user_id=user.id,
            previous_leaf=previous_leaf,
        )

    def _retry_keep(self, parent: int | None) -> int:
        """After a failed start, the new prompt replaces the failed one on screen."""
        entries = self.transcript.entries
        if parent is None:
            return 0
        index = self.transcript.index_of(parent)
        return len(entries) if index is None else index + 1

    def _fingerprint(self, engine: Engine) -> str | None:
        path = engine.model_path
        return model_fingerprint(path) if path else None

    async def _start_reply(
        self,
        reply: Message,
        positions: dict[int, tuple[int, int]],
        sampling: SamplingSettings,
        *,
        user_text: str = "",
        user_id: int | None = None,
        previous_leaf: int | None = None,
    ) -> None:
        engine = self.engine
        assert engine is not None and self.conversation is not None
        entry = entry_for(reply, positions)
        entry.thinking_open = self.thinking_open(self.conversation.id)
        view = await self.transcript.add(entry)
        if isinstance(view, AssistantMessage):
            view.start_stream()
        path = self.store.active_path(self.conversation.id)
        job = ReplyJob(
            reply_id=reply.id,
            conversation_id=self.conversation.id,
            engine=engine,
            messages=self.history(path, exclude=reply.id),
            sampling=sampling,
            user_text=user_text,
            user_id=user_id,
            previous_leaf=previous_leaf,
            top_logprobs=self.lab_top_logprobs(),
        )
        self.job = job
        # A blinking cursor repaints the input four times a second, as much as the reply
        # itself costs; hold it steady while the model needs the CPU.
        self._blink, self.prompt.cursor_blink = self.prompt.cursor_blink, False
        self.reply_stats.update("waiting for the first token…")
        self.generate(job)

    @work(thread=True, exclusive=True, group="generation", exit_on_error=False)
    def generate(self, job: ReplyJob) -> None:
        """The thin adapter between the engine and the UI: posts messages, touches nothing."""
        worker = get_current_worker()
        stream_reply(job, self.post_message, lambda: worker.is_cancelled)

    # -- streaming handlers --------------------------------------------------------------

    def _job_for(self, reply_id: int) -> ReplyJob | None:
        job = self.job
        return job if job is not None and job.reply_id == reply_id else None

    @on(PromptEvaluated)
    def _prompt_evaluated(self, message: PromptEvaluated) -> None:
        dropped = message.prompt.dropped_messages
        if dropped and self._job_for(message.reply_id):
            self.notify(
                f"The conversation is longer than the {message.prompt.n_ctx}-token window: "
                f"the oldest {dropped} messages were left out of this reply's prompt",
                severity="warning",
                markup=False,
            )

    @on(TokensArrived)
    async def _tokens(self, message: TokensArrived) -> None:
        job = self._job_for(message.reply_id)
        if job is None:
            return
        before, thought = job.text, job.reasoning
        job.parts.append(message.text)
        job.reasoning_parts.append(message.reasoning)
        view = self.transcript.view_for(job.reply_id)
        if isinstance(view, AssistantMessage):
            if not view.streaming:  # the conversation was reopened while streaming
                view.start_stream()
                view.entry.thinking_open = self.thinking_open(job.conversation_id)
                view.append_reasoning(thought)
                await view.append(before)
            view.append_reasoning(message.reasoning)
            await view.append(message.text)
        now = time.monotonic()
        if now - job.last_save >= generation.SAVE_INTERVAL:
            job.last_save = now
            try:
                self.store.update_partial(job.reply_id, job.text, job.reasoning)
            except ChattermError as exc:
                if not job.save_failed:  # say it once; the reply keeps streaming
                    job.save_failed = True
                    self.report(exc, title="Saving the reply failed")

    def _on_screen(self, job: ReplyJob) -> bool:
        """Whether the job's conversation is the one shown (the panel speaks of that one)."""
        return self.conversation is not None and self.conversation.id == job.conversation_id

    @on(GenerationProgress)
    def _progress(self, message: GenerationProgress) -> None:
        job = self._job_for(message.reply_id)
        if job is not None and self._on_screen(job):
            self.reply_stats.show_progress(message.tokens, message.elapsed)

    @on(ReplyFinished)
    @reports_errors
    async def _finished(self, message: ReplyFinished) -> None:
        job = self._job_for(message.reply_id)
        if job is None:
            return
        finished = message.finished
        status = status_for(finished.reason)
        view = self.transcript.view_for(job.reply_id)
        if isinstance(view, AssistantMessage):
            view.fold_thinking(stats_summary(finished.stats.to_dict()))
        self._save_final(job, status, finished.reason, finished.stats.to_dict())
        await self._end_job(job, status, finished.reason)
        if self._on_screen(job):
            self.reply_stats.show_stats(finished.stats, finished.reason)
        if finished.error:
            self.notify(finished.error, title="Generation failed", severity="error", markup=False)

    @on(ReplyFailed)
    @reports_errors
    async def _failed(self, message: ReplyFailed) -> None:
        job = self._job_for(message.reply_id)
        if job is not None:
            await self._refused(job, message.error)

    async def _refused(self, job: ReplyJob, error: str) -> None:
        """The engine refused the prompt before generating (too long for the window, a chat
        template that fails). A refused message is not history (the rule stated in
        :mod:`chatterm.store.turn`): its rows go, the branch it came from shows again, and the
        text comes back into the input."""
        on_screen = self.conversation is not None and self.conversation.id == job.conversation_id
        ids = [i for i in (job.user_id, job.reply_id) if i is not None]
        gone = False
        try:
            gone = self.store.discard(ids, leaf=job.previous_leaf)
        except ChattermError as exc:
            self.report(exc)
        job.saved_final = True
        self.job = None
        self.prompt.cursor_blink = self._blink
        if on_screen:
            if gone:
                self.conversation = None
            path = self.store.active_path(job.conversation_id) if not gone else []
            positions = self.store.branch_positions(job.conversation_id) if not gone else {}
            await self.transcript.show([entry_for(m, positions) for m in path])
        self.refresh_conversations()
        self.reply_stats.update("the last message was not sent")
        self.notify(error, title="Cannot reply", severity="error", markup=False, timeout=8)
        if job.user_text:
            self.prompt.restore(job.user_text)
        self.measure_context()

    async def _fail(self, job: ReplyJob, error: str) -> None:
        """The reply could not start: mark it, say why, give the text back."""
        self._save_final(job, "error", "error", None)
        await self._end_job(job, "error", "error")
        self.reply_stats.update("the last reply failed")
        self.notify(error, title="Cannot reply", severity="error", markup=False, timeout=8)
        if job.user_text:
            self.prompt.restore(job.user_text)
            if job.user_id is not None and not job.text:
                # The next prompt replaces the failed one instead of following it.
                self.retry_parent = self.store.get_message(job.user_id).parent_id

    def _save_final(
        self, job: ReplyJob, status: str, reason: str, stats: dict[str, Any] | None
    ) -> None:
        try:
            self.store.finish_assistant_message(
                job.reply_id,
                job.text,
                status=status,
                stats=stats,
                finish_reason=reason,
                logprobs=self.lab_logprobs(job),
                reasoning=job.reasoning,
            )
        except ChattermError as exc:
            self.report(exc, title="Saving the reply failed")
        job.saved_final = True

    async def _end_job(self, job: ReplyJob, status: str, reason: str) -> None:
        view = self.transcript.view_for(job.reply_id)
        if isinstance(view, AssistantMessage):
            await view.finish(status, reason)
        self.job = None
        self.prompt.cursor_blink = self._blink
        try:
            # The reply's conversation, which may no longer be the one on screen.
            updated = self.store.update_conversation(job.conversation_id, model=job.engine.name)
            if self.conversation is not None and self.conversation.id == updated.id:
                self.conversation = updated
            self.refresh_conversations()
        except ChattermError as exc:
            self.report(exc)
        self.measure_context()
        if self.pending is not None:
            text, self.pending = self.pending, None
            await self.send(text)

    @on(Worker.StateChanged)
    @reports_errors
    async def _worker_changed(self, event: Worker.StateChanged) -> None:
        """Unexpected failures of any worker end here as a notification, never a crash."""
        worker = event.worker
        if event.state != WorkerState.ERROR:
            return
        error = f"{type(worker.error).__name__}: {worker.error}"
        if worker.group == "generation" and self.job is not None:
            await self._fail(self.job, f"generation failed: {error}")
        elif worker.group == "model" and self.model_loading is not None:
            self.post_message(ModelLoadFailed(self.model_loading, error))
        else:
            self.notify(error, title="Something failed", severity="error", markup=False)

    # -- stopping and quitting -----------------------------------------------------------

    def action_stop(self) -> None:
        """Esc: stop the reply (the engine ends between tokens); otherwise cancel an edit or
        go back to the input."""
        if self.job is not None:
            self.job.cancel.set()
            return
        if self.editing is not None:
            self._end_edit()
            self.prompt.clear()
        self.prompt.focus()

    def prepare_exit(self) -> None:
        """Before quitting: stop the reply and save its text as "stopped" now, since the
        worker's final message may never be handled."""
        job = self.job
        if job is not None:
            job.cancel.set()
            if not job.saved_final:
                self._save_final(job, "stopped", "cancelled", None)
        if self.pending is not None:
            self.notify("Quitting before the model loaded: your message was not sent")

    # -- regenerate, edit, branches -----------------------------------------------------

    async def action_regenerate(self) -> None:
        last = next((e for e in reversed(self.transcript.entries) if e.role == "assistant"), None)
        if last is None:
            self.notify("There is no reply to regenerate yet", severity="warning")
            return
        await self.regenerate(last.id)

    @on(AssistantMessage.RegenerateRequested)
    @reports_errors
    async def _regenerate_requested(self, event: AssistantMessage.RegenerateRequested) -> None:
        await self.regenerate(event.view.message_id)

    @reports_errors
    async def regenerate(self, message_id: int) -> None:
        """A new reply beside ``message_id`` (same prompt, current settings): a sibling."""
        if self._busy() or self.conversation is None:
            return
        engine = self.engine
        assert engine is not None
        sampling = self.settings.resolved_seed()
        previous_leaf = self.store.get_conversation(self.conversation.id).current_leaf_id
        reply = self.store.regenerate(
            message_id,
            model=engine.name,
            model_path=engine.model_path,
            model_hash=self._fingerprint(engine),
            sampling=sampling,
        )
        keep = self.transcript.index_of(message_id)
        await self.transcript.truncate(len(self.transcript.entries) if keep is None else keep)
        positions = self.store.branch_positions(self.conversation.id)
        await self._start_reply(reply, positions, sampling, previous_leaf=previous_leaf)

    def action_edit_last(self) -> None:
        last = next((e for e in reversed(self.transcript.entries) if e.role == "user"), None)
        if last is None:
            self.notify("There is no prompt to edit yet", severity="warning")
            return
        self.begin_edit(last.id, last.content)

    @on(UserMessage.EditRequested)
    def _edit_requested(self, event: UserMessage.EditRequested) -> None:
        self.begin_edit(event.view.message_id, event.view.text)

    def begin_edit(self, message_id: int, text: str) -> None:
        if self.job is not None:
            self.notify("Wait for the reply or stop it with Esc first", severity="warning")
            return
        self.editing = message_id
        banner = self.query_one("#edit-banner", Static)
        banner.update("Editing an earlier prompt: Enter sends it as a new branch, Esc cancels")
        banner.display = True
        self.prompt.text = text
        self.prompt.move_cursor(self.prompt.document.end)
        self.prompt.focus()

    @on(MessageView.BranchRequested)
    @reports_errors
    async def _branch_requested(self, event: MessageView.BranchRequested) -> None:
        if self.job is not None:
            self.notify("Wait for the reply or stop it with Esc first", severity="warning")
            return
        await self.switch_branch(event.view.message_id, event.step)

    @reports_errors
    async def switch_branch(self, message_id: int, step: int) -> None:
        """Show the previous/next sibling of ``message_id`` and the branch below it."""
        if self.conversation is None:
            return
        siblings = self.store.siblings(message_id)
        if siblings.total < 2:
            return
        target = siblings.messages[(siblings.index + step) % siblings.total]
        path = self.store.switch_branch(target.id)
        keep = self.transcript.index_of(message_id)
        positions = self.store.branch_positions(self.conversation.id)
        entries = [entry_for(m, positions) for m in path]
        if keep is None or keep < self.transcript.mounted_from:
            await self.transcript.show(entries)
        else:
            await self.transcript.truncate(keep)
            for entry in entries[keep:]:
                await self.transcript.add(entry)
        view = self.transcript.view_for(target.id)
        if view is not None:
            view.focus()
            view.scroll_visible()
        self.measure_context()

    # -- thinking (reasoning models) -------------------------------------------------------

    def thinking_open(self, conversation_id: str | None) -> bool:
        """Whether this conversation shows replies' thinking open (the user's last choice)."""
        return self._thinking_open.get(conversation_id or "", False)

    @on(ThinkingBlock.Toggled)
    def _thinking_toggled(self, event: ThinkingBlock.Toggled) -> None:
        """The choice sticks for the conversation: later replies open or fold the same way."""
        if self.conversation is not None:
            self._thinking_open[self.conversation.id] = event.open

    def action_toggle_thinking(self) -> None:
        """Open or fold the last reply's thinking."""
        view = next(
            (
                v
                for v in reversed(list(self.transcript.query_children(AssistantMessage)))
                if v.entry.reasoning
            ),
            None,
        )
        if view is None:
            self.notify("No reply here has any thinking", severity="warning", timeout=2)
        else:
            view.action_toggle_thinking()

    # -- copying ---------------------------------------------------------------------------

    def _last_reply_view(self) -> AssistantMessage | None:
        views = list(self.transcript.query_children(AssistantMessage))
        return views[-1] if views else None

    def action_copy_reply(self) -> None:
        view = self._last_reply_view()
        if view is None:
            self.notify("There is no reply to copy yet", severity="warning")
        else:
            view.action_copy()

    def action_copy_code(self) -> None:
        view = self._last_reply_view()
        if view is None:
            self.notify("There is no reply yet", severity="warning")
        else:
            view.action_copy_code()
