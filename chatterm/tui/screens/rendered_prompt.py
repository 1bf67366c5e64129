"""The rendered prompt: the exact text the model saw for a message, after the chat template.

Special tokens are highlighted and the tokens reused from the KV cache are tinted, so the cost
of a turn is visible: a long tinted run means a fast first token. The prompt is re-rendered
from the messages (``engine.render``) in a worker, token ids are turned back into pieces, and
the cached count comes from the reply's saved stats (``PromptReady.cached_tokens``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from chatterm.engine.base import Engine, LocalModel
from chatterm.engine.events import ChatMessage
from chatterm.engine.reasoning import reasoning_seen_again

CACHED_STYLE = "on $success 25%"
SPECIAL_STYLE = "bold $warning"
_SPECIAL_TEXT = re.compile(r"<\|[^|<>\s]{1,40}\|>|<s>|</s>")


@dataclass(frozen=True)
class PromptSegment:
    """A run of prompt text: a special token or plain text, inside the cached prefix or not."""

    text: str
    special: bool = False
    cached: bool = False


@dataclass(frozen=True)
class RenderedView:
    text: str
    segments: tuple[PromptSegment, ...]
    tokens: int
    cached: int
    special: int
    exact_tokens: bool  # token boundaries known (llama.cpp), not guessed from the text
    notes: tuple[str, ...] = ()  # from the rendering: a system prompt folded into a user turn
    thinking_seen: tuple[int, int] = (0, 0)  # earlier replies' thinking kept / replies that thought


def prompt_segments(
    engine: Engine, messages: Sequence[ChatMessage], cached: int, max_tokens: int | None = None
) -> RenderedView:
    """Render ``messages`` (planned like a reply of ``max_tokens`` when given: see
    ``Engine.plan``) and split the text into segments."""
    prompt = (
        engine.render(messages) if max_tokens is None else engine.plan(messages, max_tokens).prompt
    )
    thinking = reasoning_seen_again(prompt.text, messages)
    if not isinstance(engine, LocalModel):  # no token-level access: mark control tokens by look
        segments = []
        pos = 0
        for match in _SPECIAL_TEXT.finditer(prompt.text):
            if match.start() > pos:
                segments.append(PromptSegment(prompt.text[pos : match.start()]))
            segments.append(PromptSegment(match.group(), special=True))
            pos = match.end()
        if pos < len(prompt.text):
            segments.append(PromptSegment(prompt.text[pos:]))
        specials = sum(s.special for s in segments)
        return RenderedView(
            prompt.text,
            tuple(segments),
            len(prompt.tokens),
            0,
            specials,
            False,
            prompt.notes,
            thinking,
        )
    piece = engine.piece
    out: list[PromptSegment] = []
    fallback: list[int] = []  # byte-fallback ids, decoded together into readable characters
    fallback_cached = False
    specials = 0

    def flush_fallback() -> None:
        if fallback:
            text = engine.detokenize(fallback)
            out.append(PromptSegment(text, cached=fallback_cached))
            fallback.clear()

    for i, token in enumerate(prompt.tokens):
        p = piece(token)
        in_cache = i < cached
        if p.byte_fallback:
            if fallback and fallback_cached != in_cache:
                flush_fallback()
            fallback.append(token)
            fallback_cached = in_cache
            continue
        flush_fallback()
        specials += p.special
        out.append(PromptSegment(p.piece, special=p.special, cached=in_cache))
    flush_fallback()
    return RenderedView(
        prompt.text,
        tuple(_merge(out)),
        len(prompt.tokens),
        min(cached, len(prompt.tokens)),
        specials,
        True,
        prompt.notes,
        thinking,
    )


def _merge(segments: list[PromptSegment]) -> list[PromptSegment]:
    """Join neighbours of the same kind, so the view has a few spans instead of one per token."""
    merged: list[PromptSegment] = []
    for seg in segments:
        last = merged[-1] if merged else None
        if last is not None and not seg.special and not last.special and last.cached == seg.cached:
            merged[-1] = PromptSegment(last.text + seg.text, cached=seg.cached)
        else:
            merged.append(seg)
    return merged


def prompt_content(view: RenderedView) -> Content:
    parts: list[tuple[str, str]] = []
    for seg in view.segments:
        style = " ".join(
            s
            for s in (SPECIAL_STYLE if seg.special else "", CACHED_STYLE if seg.cached else "")
            if s
        )
        parts.append((seg.text, style))
    return Content.assemble(*parts)


def legend(view: RenderedView, cached_known: bool) -> Content:
    evaluated = view.tokens - view.cached
    parts: list[str | tuple[str, str]] = [(f"{view.tokens} tokens", "bold"), "  "]
    if cached_known and view.exact_tokens:
        parts += [
            ("  ", CACHED_STYLE),
            f" reused from the KV cache: {view.cached}   ",
            f"evaluated: {evaluated}   ",
        ]
    elif cached_known:
        parts.append(("cache reuse unknown for this engine   ", "dim"))
    else:
        parts.append(("not sent yet: cache reuse unknown   ", "dim"))
    parts += [("<|special|>", SPECIAL_STYLE), f" special tokens: {view.special}"]
    return Content.assemble(*parts)


def thinking_note(seen: int, total: int) -> str:
    """What of earlier replies' thinking the model is shown again (the template decides)."""
    if seen == total:
        return f"The model sees the thinking of all {total} earlier replies that thought again."
    if seen == 0:
        return (
            f"The chat template leaves out the thinking of the {total} earlier replies that "
            "thought: the model sees only their answers."
        )
    return (
        f"The model sees the thinking of {seen} of the {total} earlier replies that thought "
        "again; the chat template leaves out the rest."
    )


@dataclass
class PromptRendered(Message):
    view: RenderedView


@dataclass
class PromptRenderFailed(Message):
    error: str


class RenderedPromptScreen(ModalScreen[None]):
    """What the model saw. ``cached`` is the reply's reused-token count (``None``: the prompt
    was not sent yet); ``sent_text``, when known, is checked against the re-rendered text."""

    BINDINGS = [
        Binding("c", "copy", "Copy", id="prompt.copy", tooltip="Copy the rendered prompt"),
        Binding("escape,q,f9", "close", "Close", id="prompt.close"),
    ]

    DEFAULT_CSS = """
    RenderedPromptScreen .prompt-box {
        width: 90%;
        max-width: 130;
        height: 85%;
    }
    RenderedPromptScreen #prompt-legend, RenderedPromptScreen #prompt-note {
        height: auto;
        color: $text-muted;
    }
    RenderedPromptScreen #prompt-text {
        margin: 1 0 0 0;
        height: auto;
    }
    """

    def __init__(
        self,
        engine: Engine,
        messages: Sequence[ChatMessage],
        title: str,
        *,
        cached: int | None = None,
        sent_text: str | None = None,
        max_tokens: int | None = None,
    ) -> None:
        """``max_tokens``: for a reply not sent yet, plan it as the engine will (old turns
        dropped when the window is full); ``None`` renders ``messages`` as they are."""
        super().__init__(classes="dialog", id="rendered-prompt")
        self.max_tokens = max_tokens
        self.engine = engine
        self.messages = list(messages)
        self.title_text = title
        self.cached = cached
        self.sent_text = sent_text
        self.view: RenderedView | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog-box prompt-box") as box:
            box.border_title = f"Prompt for {self.title_text} · {self.engine.name}"
            box.border_subtitle = "c copy · esc close"
            yield Static("rendering…", id="prompt-legend", markup=False)
            yield Static("", id="prompt-note", markup=False)
            yield Static("", id="prompt-text", markup=False)

    def on_mount(self) -> None:
        self.query_one("#prompt-note").display = False
        self.render_prompt(self.engine, self.messages, self.cached or 0, self.max_tokens)

    @work(thread=True, exclusive=True, group="lab-prompt", exit_on_error=False)
    def render_prompt(
        self, engine: Engine, messages: list[ChatMessage], cached: int, max_tokens: int | None
    ) -> None:
        try:
            view = prompt_segments(engine, messages, cached, max_tokens)
        except Exception as exc:  # a template error, a closed engine: shown, never a crash
            self.post_message(PromptRenderFailed(f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(PromptRendered(view))

    @on(PromptRendered)
    def _rendered(self, message: PromptRendered) -> None:
        view = self.view = message.view
        self.query_one("#prompt-legend", Static).update(legend(view, self.cached is not None))
        self.query_one("#prompt-text", Static).update(prompt_content(view))
        notes = [f"Note: {n[0].upper()}{n[1:]}." for n in view.notes]
        if self.sent_text is not None and self.sent_text != view.text:
            notes.append(
                "Re-rendered from the messages as they are now; the prompt actually sent "
                "differed (older turns dropped, or the persona changed since)."
            )
        if view.thinking_seen[1]:
            notes.append(thinking_note(*view.thinking_seen))
        if notes:
            note = self.query_one("#prompt-note", Static)
            note.update("\n".join(notes))
            note.display = True
        self.query_one(VerticalScroll).scroll_end(animate=False)

    @on(PromptRenderFailed)
    def _failed(self, message: PromptRenderFailed) -> None:
        self.query_one("#prompt-legend", Static).update(f"could not render: {message.error}")

    def action_copy(self) -> None:
        if self.view is not None:
            self.app.copy_to_clipboard(self.view.text)
            self.notify(f"Copied the prompt ({len(self.view.text)} characters)", timeout=2)

    def action_close(self) -> None:
        self.dismiss(None)
