"""The lab's layer of the chat screen: the probabilities toggle and the lab views' entry points.

``ChatScreen`` derives from :class:`LabChat`, which derives from ``ConversationsScreen``: the
same layering as the rest of the chat screen, so the turn's code only calls two hooks
(:meth:`LabChat.lab_top_logprobs` when a reply starts, :meth:`LabChat.lab_logprobs` when it is
saved) and everything else happens here, in handlers that run after the chat's own for the
same messages (Textual dispatches a message to each class of the MRO, most derived first).

With probabilities off nothing is computed: the worker asks the engine for no candidates and
``TokensArrived`` carries none. With them on, the worker adds the top candidates of every token
to each batch; the reply is drawn as coloured tokens (:class:`ProbView`) instead of Markdown,
and the candidates are saved with the message, so reopening the conversation shows them again.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.css.query import NoMatches
from textual.widget import Widget
from textual.widgets import Markdown
from textual.worker import Worker, WorkerState

from chatterm.attachments import user_content
from chatterm.engine.events import ChatMessage, PromptReady
from chatterm.engine.reasoning import THINK
from chatterm.lab.records import (
    PROBS_TOP_K,
    TokenRecord,
    engine_vocab_size,
    payload,
    records_of,
    sampling_of,
    vocab_size_of,
)
from chatterm.sampling import CHAIN, SamplingSettings
from chatterm.store import Message, NotFoundError
from chatterm.tui.generation import ReplyJob
from chatterm.tui.messages import PromptEvaluated, TokensArrived
from chatterm.tui.screens.compare import CompareRequest, CompareScreen
from chatterm.tui.screens.conversations import ConversationsScreen
from chatterm.tui.screens.rendered_prompt import RenderedPromptScreen
from chatterm.tui.screens.sampling import SamplingScreen
from chatterm.tui.screens.tokens import TokensScreen
from chatterm.tui.widgets.message_view import AssistantMessage, MessageView
from chatterm.tui.widgets.prob_text import ProbView

SENT_PROMPTS_KEPT = 64
PROBS_TITLE = "probabilities on: plain coloured text, no Markdown · F10 inspects a token"


def _snippet(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else "…" + flat[-(width - 1) :]


class LabChat(ConversationsScreen):
    """Probabilities, tokens, sampling, compare and the rendered prompt, from the chat."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.probs_on = False
        # What the engine reported for replies of this session, by reply id: the exact
        # prompt text and its cache reuse, for the rendered-prompt view.
        self.sent_prompts: dict[int, PromptReady] = {}

    # -- hooks the turn calls ----------------------------------------------------------------

    def lab_top_logprobs(self) -> int:
        """How many candidates per token the next reply asks the engine for (0: none)."""
        return PROBS_TOP_K if self.probs_on else 0

    def lab_logprobs(self, job: ReplyJob) -> dict[str, Any] | None:
        """The probabilities to save with ``job``'s reply, if it was generated with them."""
        if not job.top_logprobs or not job.probs:
            return None
        return payload(
            job.probs, top_logprobs=job.top_logprobs, vocab_size=engine_vocab_size(job.engine)
        )

    # -- streaming -----------------------------------------------------------------------------

    @on(PromptEvaluated)
    def _lab_prompt_evaluated(self, message: PromptEvaluated) -> None:
        self.sent_prompts[message.reply_id] = message.prompt
        while len(self.sent_prompts) > SENT_PROMPTS_KEPT:
            self.sent_prompts.pop(next(iter(self.sent_prompts)))

    @on(TokensArrived)
    async def _lab_tokens(self, message: TokensArrived) -> None:
        job = self.job
        if not message.probs or job is None or job.reply_id != message.reply_id:
            return
        job.probs.extend(message.probs)
        if not self.probs_on:
            return
        view = self.transcript.view_for(job.reply_id)
        if not isinstance(view, AssistantMessage):
            return
        existing = self._prob_view(view)
        if existing is None:
            await self._mount_prob_view(
                view, job.probs, job.sampling, engine_vocab_size(job.engine)
            )
        else:
            existing.add(message.probs)
        self._hide_tail(view)

    # -- showing saved probabilities ------------------------------------------------------------

    @staticmethod
    def _prob_view(view: Widget) -> ProbView | None:
        found = view.query(ProbView)
        return found.first() if found else None

    @staticmethod
    def _hide_tail(view: AssistantMessage) -> None:
        """The open-fence tail is the Markdown's companion: hidden with it."""
        for tail in view.query(".tail"):
            tail.display = False

    async def _mount_prob_view(
        self,
        view: AssistantMessage,
        records: list[TokenRecord],
        settings: SamplingSettings,
        vocab_size: int,
    ) -> ProbView:
        prob_view = ProbView(list(records), settings=settings, vocab_size=vocab_size)
        try:
            markdown = view.query_one(Markdown)
        except NoMatches:
            await view.mount(prob_view)
        else:
            markdown.display = False
            await view.mount(prob_view, after=markdown)
        self._hide_tail(view)
        return prob_view

    async def lab_show_saved_probs(self) -> int:
        """Colour every mounted reply that was saved with probabilities; returns how many."""
        shown = 0
        for view in list(self.transcript.query_children(AssistantMessage)):
            if self._prob_view(view) is not None or view.streaming:
                continue
            try:
                message = self.store.get_message(view.message_id)
            except NotFoundError:
                continue
            if not message.has_logprobs:
                continue
            data = self.store.logprobs(message.id)
            records = records_of(data)
            if records:
                await self._mount_prob_view(
                    view, records, sampling_of(message.sampling), vocab_size_of(data)
                )
                shown += 1
        return shown

    async def lab_hide_probs(self) -> None:
        for prob_view in list(self.transcript.query(ProbView)):
            parent = prob_view.parent
            await prob_view.remove()
            if isinstance(parent, AssistantMessage):
                parent.query_one(Markdown).display = True

    async def action_toggle_probs(self) -> None:
        self.probs_on = not self.probs_on
        self.prompt.border_title = PROBS_TITLE if self.probs_on else None
        if self.probs_on:
            shown = await self.lab_show_saved_probs()
            extra = f"; {shown} saved repl{'ies' if shown != 1 else 'y'} coloured" if shown else ""
            self.notify(
                "Probabilities on: the next replies are coloured by token probability, as "
                "plain text (Markdown is not rendered while this is on; F3 again turns it off)"
                + extra,
                timeout=6,
            )
        else:
            await self.lab_hide_probs()
            self.notify("Probabilities off", timeout=2)

    async def open_conversation(self, conversation_id: str) -> None:
        await super().open_conversation(conversation_id)
        if self.probs_on:
            await self.lab_show_saved_probs()

    @on(MessageView.BranchRequested)
    async def _lab_branch_shown(self, event: MessageView.BranchRequested) -> None:
        if self.probs_on:  # the chat's own handler has mounted the other branch by now
            await self.lab_show_saved_probs()

    @on(Worker.StateChanged)
    async def _lab_older_loaded(self, event: Worker.StateChanged) -> None:
        if (
            self.probs_on
            and event.worker.group == "transcript"
            and event.state == WorkerState.SUCCESS
        ):
            await self.lab_show_saved_probs()

    async def palette_action(self, name: str) -> None:
        await super().palette_action(name)
        if name == "older" and self.probs_on:
            await self.lab_show_saved_probs()

    # -- picking what a view is about -----------------------------------------------------

    def _focused_message(self) -> MessageView | None:
        node: Any = self.focused
        while node is not None and not isinstance(node, MessageView):
            node = node.parent
        return node

    def _path(self) -> list[Message]:
        return self.store.active_path(self.conversation.id) if self.conversation else []

    def _no_engine(self) -> bool:
        if self.engine is None:
            self.notify("No model is loaded yet", severity="warning")
            return True
        return False

    # -- the lab views ------------------------------------------------------------------------

    def action_lab_tokens(self) -> None:
        """F4: the focused message's tokens, else the input's."""
        if self._no_engine():
            return
        assert self.engine is not None
        view = self._focused_message()
        if view is not None:
            text = view.text
            title = "your message" if view.entry.role == "user" else "the reply"
            if view.entry.reasoning:  # the thinking's tokens too, as the model wrote them
                markers = getattr(self.engine, "reasoning_markers", None) or THINK
                text = f"{markers.start}{view.entry.reasoning}{markers.end}{text}"
                title = "the reply, its thinking first"
        else:
            text = self.prompt.text
            title = "the input"
        if not text:
            self.notify("Type in the input, or focus a message, to see its tokens", timeout=3)
            return
        self.app.push_screen(TokensScreen(self.engine, text, title))

    def action_lab_inspect(self) -> None:
        """F10: move into the coloured tokens of the focused (or last) reply."""
        if not self.probs_on:
            self.notify("Turn probabilities on first (F3)", severity="warning", timeout=3)
            return
        view = self._focused_message()
        if not isinstance(view, AssistantMessage) or self._prob_view(view) is None:
            views = [
                v
                for v in self.transcript.query_children(AssistantMessage)
                if self._prob_view(v) is not None
            ]
            view = views[-1] if views else None
        prob_view = self._prob_view(view) if view is not None else None
        if prob_view is None:
            self.notify(
                "No reply here has probabilities: send a message while they are on",
                severity="warning",
                timeout=4,
            )
            return
        prob_view.prob_text.start()
        prob_view.scroll_visible()

    def action_lab_prompt(self) -> None:
        """F9: the rendered prompt of the focused (or last) message, or of the input."""
        if self._no_engine():
            return
        assert self.engine is not None
        path = self._path()
        view = self._focused_message()
        target = view.message_id if view is not None else None
        if target is None and path and not self.prompt.text.strip():
            target = path[-1].id
        if target is None:
            text = self.prompt.text
            if not text.strip():
                self.notify("Nothing to render yet: type a message first", timeout=3)
                return
            attached = self.attachment_bar.items  # shown in place, before the text
            messages = self.history(path) + [ChatMessage("user", user_content(text, attached))]
            self.app.push_screen(
                RenderedPromptScreen(
                    self.engine,
                    messages,
                    "the next message",
                    max_tokens=self.settings.max_tokens,
                )
            )
            return
        ids = [m.id for m in path]
        if target not in ids:
            return
        index = ids.index(target)
        if path[index].role == "assistant":
            reply: Message | None = path[index]
            before = path[:index]
        else:
            before = path[: index + 1]
            after = path[index + 1 : index + 2]
            reply = after[0] if after and after[0].role == "assistant" else None
        messages = self.history(before)
        stats = (reply.stats or {}) if reply is not None else {}
        dropped = int(stats.get("dropped_messages") or 0)
        if dropped:
            head = messages[:1] if messages and messages[0].role == "system" else []
            messages = head + messages[len(head) + dropped :]
        sent = self.sent_prompts.get(reply.id) if reply is not None else None
        cached = sent.cached_tokens if sent is not None else stats.get("cached_tokens")
        title = f"message {index + 1} of {len(path)}"
        self.app.push_screen(
            RenderedPromptScreen(
                self.engine,
                messages,
                title,
                cached=int(cached) if cached is not None else None,
                sent_text=sent.prompt_text if sent is not None and sent.prompt_text else None,
            )
        )

    def action_lab_sampling(self) -> None:
        """F5: the distribution after the input (or the last prompt), live under the settings."""
        if self._busy():
            return
        assert self.engine is not None
        path = self._path()
        text = self.prompt.text
        if text.strip():
            attached = self.attachment_bar.items  # shown in place, before the text
            messages = self.history(path) + [ChatMessage("user", user_content(text, attached))]
            label = f"your input «{_snippet(text)}»"
        else:
            users = [i for i, m in enumerate(path) if m.role == "user"]
            if not users:
                self.notify("Type a prompt first: the view shows what could come next", timeout=3)
                return
            messages = self.history(path[: users[-1] + 1])
            label = f"the last prompt «{_snippet(path[users[-1]].content)}»"

        def done(settings: SamplingSettings | None) -> None:
            if settings is None:
                return
            chosen = {name: getattr(settings, name) for name in CHAIN}
            self.apply_settings(self.settings.replace(**chosen))
            self.notify(
                "Sampling settings applied: " + ", ".join(f"{k} {v:g}" for k, v in chosen.items()),
                timeout=3,
                markup=False,
            )

        self.app.push_screen(
            SamplingScreen(self.engine, messages, self.settings, label=label), done
        )

    def action_lab_compare(self) -> None:
        """F8: the compare screen, with the input (or the last prompt) as its prompt."""
        if self._busy():
            return
        assert self.engine is not None
        prompt = self.prompt.text.strip()
        if not prompt:
            users = [m for m in self._path() if m.role == "user"]
            prompt = users[-1].content if users else ""
        settings = self.settings
        seed = settings.seed if settings.seed >= 0 else settings.resolved_seed().seed
        request = CompareRequest(
            engine=self.engine,
            load_engine=self.services.load_engine,
            options=self.engine_options,
            config=self.services.config,
            prompt=prompt,
            system=self.system_prompt,
            base=settings.to_dict(),
            seed=seed,
        )
        self.app.push_screen(CompareScreen(request))
