"""The chat screen's conversation management: list, search, open, new, rename, delete; the
panels' visibility; and the model, persona and template pickers.

Everything here runs on the UI thread and talks to the store in short calls.
"""

from __future__ import annotations

from textual import events, on

from chatterm.errors import ChattermError
from chatterm.prompts import PromptFile
from chatterm.services import EngineOptions
from chatterm.store import Message, NotFoundError
from chatterm.tui.screens.base import UNSET, ChatBase, reports_errors
from chatterm.tui.screens.dialogs import ConfirmScreen, TextPromptScreen
from chatterm.tui.screens.picker import PickerScreen, PickItem
from chatterm.tui.widgets.conversation_list import ConversationItem, ConversationList
from chatterm.tui.widgets.message_view import Entry
from chatterm.tui.widgets.side_panel import SidePanel

LIST_LIMIT = 200
NO_PERSONA = "\x00none"


def entry_for(message: Message, positions: dict[int, tuple[int, int]] | None = None) -> Entry:
    """How the transcript shows a stored message; ``positions`` from ``branch_positions``."""
    number, total = (positions or {}).get(message.id, (1, 1))
    return Entry(
        id=message.id,
        role=message.role,
        content=message.content,
        status=message.status,
        model=message.model,
        finish_reason=message.finish_reason,
        branch_index=number - 1,
        branch_total=total,
        attachments=tuple(
            f"{a.source} · {a.tokens:,} tok" if a.tokens is not None else a.source
            for a in message.attachments
        ),
        reasoning=message.reasoning,
        thinking_summary=message.thinking_summary,
    )


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


class ConversationsScreen(ChatBase):
    """The conversation list, the panels' visibility and the pickers."""

    list_limit: int = LIST_LIMIT
    """How many conversations the list shows; "… N older conversations" asks for more."""

    # -- the list --------------------------------------------------------------------------

    HISTORY_POLL_S = 2.0
    """Seconds between checks for conversations another chatterm process saved."""

    @on(events.Mount)
    def _watch_history(self) -> None:
        self._history_version = self.store.data_version()
        self.set_interval(self.HISTORY_POLL_S, self._poll_history)

    @reports_errors
    def _poll_history(self) -> None:
        """Another process (a second app, ``chatterm ask``) changed the history: list what it
        added. SQLite's data_version changes only on other connections' commits, so this
        app's own saves cost nothing here."""
        version = self.store.data_version()
        if version != self._history_version:
            self._history_version = version
            self.refresh_conversations()

    def refresh_conversations(self) -> None:
        """Reload the list (most recent first), keeping the search filter."""
        query = self.conversations.query_text.strip()
        limit = self.list_limit
        found = self.store.list_conversations(limit=limit, search=query or None)
        hidden = 0
        if len(found) == limit:
            hidden = self.store.count_conversations(search=query or None) - limit
        snippets: dict[str, str] = {}
        if query:
            for hit in self.store.search(query, limit=50):
                snippets.setdefault(hit.conversation_id, " ".join(hit.snippet.split()))
        items = [ConversationItem(c.id, c.title, c.updated, snippets.get(c.id, "")) for c in found]
        current = self.conversation.id if self.conversation else None
        self.conversations.set_items(items, current, hidden=hidden)

    @on(ConversationList.MoreRequested)
    @reports_errors
    def _more_requested(self, event: ConversationList.MoreRequested) -> None:
        """List the next ``LIST_LIMIT`` older conversations too."""
        self.list_limit += LIST_LIMIT
        self.refresh_conversations()

    def store_prompts(self, limit: int = 200) -> list[str]:
        """Recent prompts for Up/Down recall, oldest first, from the recent conversations."""
        chunks: list[list[str]] = []
        count = 0
        for conversation in self.store.list_conversations(limit=20):
            prompts = [
                m.content for m in self.store.active_path(conversation.id) if m.role == "user"
            ]
            chunks.append(prompts)
            count += len(prompts)
            if count >= limit:
                break
        return [p for chunk in reversed(chunks) for p in chunk][-limit:]

    @on(ConversationList.SearchChanged)
    @reports_errors
    def _search_changed(self, event: ConversationList.SearchChanged) -> None:
        self.refresh_conversations()

    @on(ConversationList.Selected)
    @reports_errors
    async def _conversation_selected(self, event: ConversationList.Selected) -> None:
        await self.open_conversation(event.conversation_id)
        self.prompt.focus()

    @reports_errors
    async def open_conversation(self, conversation_id: str) -> None:
        """Show a saved conversation: its active branch, persona and settings."""
        if self.editing is not None:
            self._end_edit()
        try:
            conversation = self.store.get_conversation(conversation_id)
        except NotFoundError as exc:
            self.notify(str(exc), severity="error", markup=False)
            self.refresh_conversations()
            return
        self.conversation = conversation
        self.persona = self.services.find_persona(conversation.persona)
        self.system_prompt = conversation.system_prompt
        self.panel.show_persona(
            conversation.persona, self.persona.description if self.persona else ""
        )
        self.settings = conversation.sampling_settings()
        self.sampling.set_settings(self.settings)
        self.retry_parent = UNSET
        path = self.store.active_path(conversation.id)
        positions = self.store.branch_positions(conversation.id)
        await self.transcript.show([entry_for(m, positions) for m in path])
        last = next((m for m in reversed(path) if m.role == "assistant"), None)
        if self.job is None or self.job.conversation_id != conversation.id:
            self.reply_stats.show_saved(
                *((last.stats, last.finish_reason) if last else (None, None))
            )
        self.refresh_conversations()
        # Tokenizing a long history is work; let the transcript paint first.
        self.call_after_refresh(self.measure_context)

    @reports_errors
    async def action_new_chat(self) -> None:
        """A fresh conversation with the starting persona; saved when the first prompt is."""
        if self.editing is not None:
            self._end_edit()
        self.conversation = None
        self.persona = self.services.persona
        self.system_prompt = self._persona_prompt(self.persona)
        self.panel.show_persona(*self._persona_label())
        self.apply_settings(self.services.default_settings(self.persona))
        self.retry_parent = UNSET
        await self.transcript.show([])
        self.reply_stats.show_saved(None, None)
        self.refresh_conversations()
        self.prompt.focus()

    @on(ConversationList.RenameRequested)
    def _rename_requested(self, event: ConversationList.RenameRequested) -> None:
        self.rename_conversation(event.conversation_id)

    @reports_errors
    def rename_conversation(self, conversation_id: str) -> None:
        try:
            conversation = self.store.get_conversation(conversation_id)
        except NotFoundError:
            return

        def done(title: str | None) -> None:
            if title is None:
                return
            try:
                renamed = self.store.rename(conversation.id, title)
            except ChattermError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            if self.conversation is not None and self.conversation.id == renamed.id:
                self.conversation = renamed
            self.refresh_conversations()

        self.app.push_screen(TextPromptScreen("Rename the conversation:", conversation.title), done)

    @on(ConversationList.DeleteRequested)
    def _delete_requested(self, event: ConversationList.DeleteRequested) -> None:
        self.delete_conversation(event.conversation_id)

    @reports_errors
    def delete_conversation(self, conversation_id: str) -> None:
        try:
            conversation = self.store.get_conversation(conversation_id)
        except NotFoundError:
            return
        if self.job is not None and self.job.conversation_id == conversation.id:
            self.notify("Stop the reply (Esc) before deleting its conversation", severity="warning")
            return

        async def done(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.store.delete(conversation.id)
            except ChattermError as exc:
                self.report(exc)
                return
            self.notify(f"Deleted {conversation.title or 'the conversation'!r}", markup=False)
            if self.conversation is not None and self.conversation.id == conversation.id:
                await self.action_new_chat()
            else:
                self.refresh_conversations()

        title = conversation.title or "(untitled)"
        self.app.push_screen(
            ConfirmScreen(
                f"Delete {title!r} and its {conversation.message_count} messages? "
                "This cannot be undone."
            ),
            done,
        )

    # -- panels ----------------------------------------------------------------------------

    @on(SidePanel.IdentityChanged)
    def _identity_changed(self, event: SidePanel.IdentityChanged) -> None:
        """The model and persona also under the input, so they are seen where the panel is
        hidden (below 90 columns, or after ctrl+t)."""
        who = event.model + (f" · {event.persona}" if event.persona else "")
        self.prompt.border_subtitle = who if who else None

    def action_toggle_conversations(self) -> None:
        widget = self.conversations
        widget.display = not widget.display
        if not widget.display and widget.has_focus_within:
            self.prompt.focus()

    def action_toggle_panel(self) -> None:
        panel = self.panel
        panel.display = not panel.display
        if not panel.display and panel.has_focus_within:
            self.prompt.focus()

    def action_search(self) -> None:
        self.conversations.display = True
        self.conversations.focus_search()

    # -- pickers ---------------------------------------------------------------------------

    def action_pick_model(self) -> None:
        try:
            entries = self.services.models()
        except ChattermError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        if not entries:
            self.notify("No models installed: see `chatterm pull`", severity="warning")
            return
        current = self.engine.name if self.engine else None
        items = [
            PickItem(
                e.name,
                e.name,
                e.repo or e.path,
                " · ".join(
                    x for x in (e.quant or "", _size(e.size) if e.size else "", e.source) if x
                ),
                current=e.name == current,
            )
            for e in entries
        ]

        def done(name: str | None) -> None:
            if name and name != current:
                options = self.engine_options
                self.start_model_load(
                    EngineOptions(
                        model=name,
                        ctx_size=options.ctx_size,
                        threads=options.threads,
                        gpu_layers=options.gpu_layers,
                    )
                )

        self.app.push_screen(PickerScreen("Model", items, picker_id="model-picker"), done)

    def action_pick_persona(self) -> None:
        personas = self.services.personas()
        current = self.persona.name if self.persona else None
        items = [PickItem(NO_PERSONA, "(none)", "No system prompt", current=current is None)]
        items += [
            PickItem(
                p.name,
                p.name,
                p.description if p.ok else (p.error or ""),
                p.origin,
                disabled=not p.ok,
                current=p.name == current,
            )
            for p in personas
        ]

        def done(name: str | None) -> None:
            if name is None:
                return
            persona = None if name == NO_PERSONA else self.services.find_persona(name)
            self.set_persona(persona)

        self.app.push_screen(PickerScreen("Persona", items, picker_id="persona-picker"), done)

    @reports_errors
    def set_persona(self, persona: PromptFile | None) -> None:
        """Use ``persona``'s system prompt and default settings from the next reply on."""
        self.persona = persona
        self.system_prompt = self._persona_prompt(persona)
        self.panel.show_persona(*self._persona_label())
        if self.conversation is not None:
            self.conversation = self.store.update_conversation(
                self.conversation.id,
                persona=persona.name if persona else None,
                system_prompt=self.system_prompt,
            )
        self.apply_settings(self.services.default_settings(persona))
        label = f"Persona {persona.name!r}" if persona else "No persona"
        self.notify(f"{label}: applies to the next reply", timeout=3, markup=False)

    def action_pick_template(self) -> None:
        templates = self.services.templates()
        items = [
            PickItem(
                t.name,
                t.name,
                t.description if t.ok else (t.error or ""),
                t.origin,
                disabled=not t.ok,
            )
            for t in templates
        ]

        def done(name: str | None) -> None:
            chosen = next((t for t in templates if t.name == name), None)
            if chosen is not None:
                self.fill_from_template(chosen)

        self.app.push_screen(PickerScreen("Template", items, picker_id="template-picker"), done)

    def fill_from_template(self, template: PromptFile) -> None:
        """Render ``template`` into the input: what is typed becomes ``{{ input }}``, and
        variables without a default become ``⟨name⟩`` placeholders to fill in."""
        typed = self.prompt.text.strip()
        placeholders = {
            name: f"⟨{name}⟩" for name in template.missing(None, typed) if name != "input"
        }
        try:
            text = template.render(typed or "⟨your text⟩", placeholders)
        except ChattermError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        # The first placeholder is selected, so typing replaces it.
        self.prompt.fill(text, select_from="⟨", select_to="⟩")
        self.prompt.focus()

    @reports_errors
    async def palette_action(self, name: str) -> None:
        """Actions offered only in the command palette (they have no key)."""
        if name == "reset":
            self.sampling.post_message(self.sampling.ResetRequested(self.sampling))
        elif name in ("rename", "delete"):
            if self.conversation is None:
                self.notify("This conversation is not saved yet", severity="warning")
            elif name == "rename":
                self.rename_conversation(self.conversation.id)
            else:
                self.delete_conversation(self.conversation.id)
        elif name == "older":
            added = await self.transcript.load_older()
            if not added:
                self.notify("All messages are shown", timeout=2)
