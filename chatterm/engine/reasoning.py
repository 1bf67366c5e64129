"""Reasoning ("thinking") kept apart from the answer.

Reasoning models write a thinking passage between two markers before their answer:
``<think>…</think>`` for DeepSeek-R1 distills, Qwen3, QwQ, GLM and most others; a few templates
name their own (``[THINK]…[/THINK]`` for Magistral, ``<|START_THINKING|>…<|END_THINKING|>`` for
Command R7B, ``<seed:think>…</seed:think>`` for Seed-OSS). Some templates open the block in the
generation prompt itself (DeepSeek-R1's ``<｜Assistant｜><think>\\n``), so the reply starts inside
it and only the closing marker ever appears in the generated text.

:class:`ReasoningSplitter` reads a reply as it streams (markers may be split across tokens) and
says which text is reasoning and which is answer. Only a reply that *starts* with the opening
marker (after whitespace) has a thinking block: a model quoting ``<think>`` in its answer is not
thinking. A block still open when the reply ends (stopped, or out of tokens) stays reasoning and
is reported as open, never turned into answer text.

Headless: no front end is imported here; the engines, the store and every front end use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Markers:
    """The text that opens and closes a thinking block."""

    start: str = "<think>"
    end: str = "</think>"


THINK = Markers()
# Templates that name other markers; checked before the common ``<think>`` pair.
KNOWN_MARKERS: tuple[Markers, ...] = (
    Markers("<seed:think>", "</seed:think>"),
    Markers("<|START_THINKING|>", "<|END_THINKING|>"),
    Markers("[THINK]", "[/THINK]"),
    THINK,
)


def markers_for(template: str | None) -> Markers:
    """The thinking markers a chat template uses (``<think>``/``</think>`` when it names none
    of the known pairs, so a reply opening with ``<think>`` is recognised on any model)."""
    if template:
        for markers in KNOWN_MARKERS:
            if markers.start in template and markers.end in template:
                return markers
    return THINK


def template_has_reasoning(template: str | None) -> bool:
    """Whether the template knows about thinking at all (names a marker pair or takes
    ``reasoning_content``)."""
    if not template:
        return False
    if "reasoning_content" in template:
        return True
    return any(m.start in template and m.end in template for m in KNOWN_MARKERS)


def takes_enable_thinking(template: str | None) -> bool:
    """Whether the template reads the ``enable_thinking`` switch (Qwen3, DeepSeek-R1 as
    llama.cpp ships it, SmolLM3, GLM, …)."""
    return bool(template) and "enable_thinking" in (template or "")


def takes_reasoning_content(template: str | None) -> bool:
    """Whether the template reads ``reasoning_content`` on assistant messages (Qwen3, GLM,
    Command R7B, …). Templates that do not get the reasoning back inside ``content``, marked,
    and their own stripping (``content.split('</think>')[-1]``) decides what the model sees."""
    return bool(template) and "reasoning_content" in (template or "")


def template_variables(template: str | None, think: bool | None) -> dict[str, Any]:
    """Extra variables for rendering: ``enable_thinking`` for templates that read it.

    ``think=None`` means the model's default, which is thinking on, as llama-server passes it
    (llama.cpp's DeepSeek-R1 template closes the block unless ``enable_thinking`` is true)."""
    if not takes_enable_thinking(template):
        return {}
    return {"enable_thinking": True if think is None else bool(think)}


def message_fields(
    template: str | None, content: str, reasoning: str, markers: Markers | None = None
) -> dict[str, Any]:
    """An assistant message's fields for the template: ``reasoning_content`` beside the answer
    where the template reads it, else the reasoning put back in front of the answer, marked, as
    the model wrote it (``<think>…</think>answer``), so the template's own stripping decides."""
    if not reasoning:
        return {"content": content}
    if takes_reasoning_content(template):
        return {"content": content, "reasoning_content": reasoning}
    m = markers or markers_for(template)
    return {"content": f"{m.start}{reasoning}{m.end}{content}"}


def opens_inside(prompt_tail: str, markers: Markers) -> bool:
    """Whether the generation prompt leaves a thinking block open (DeepSeek-R1's
    ``<｜Assistant｜><think>\\n``), so the reply starts inside it. ``prompt_tail`` is the
    scaffold after the last message (the generation prompt), not user text."""
    start = prompt_tail.rfind(markers.start)
    return start >= 0 and prompt_tail.find(markers.end, start) < 0


@dataclass(frozen=True)
class Split:
    """A whole reply taken apart: the reasoning (without markers), the answer, and whether the
    block was still open at the end."""

    reasoning: str
    answer: str
    open: bool = False


def split_text(text: str, markers: Markers | None = None, *, start_inside: bool = False) -> Split:
    """Split a finished reply (or an old saved one that kept ``<think>`` in its text)."""
    splitter = ReasoningSplitter(markers or THINK, start_inside=start_inside)
    pieces = splitter.feed(text) + splitter.flush()
    reasoning = "".join(t for t, r in pieces if r)
    answer = "".join(t for t, r in pieces if not r)
    return Split(reasoning, answer, splitter.state == "reasoning")


def split_message(content: str, reasoning: str | None) -> Split:
    """A saved reply as stored: ``reasoning`` when the store kept it apart, else taken out of
    an old row's text that still holds a ``<think>`` block (rows saved before reasoning had its
    own column). Any known marker pair is recognised."""
    if reasoning:
        return Split(reasoning, content)
    head = content.lstrip()
    for markers in KNOWN_MARKERS:
        if head.startswith(markers.start):
            return split_text(content, markers)
    return Split("", content)


class ReasoningSplitter:
    """Splits streamed reply text into reasoning and answer pieces.

    ``feed(text)`` returns ``[(text, is_reasoning), …]`` for what can be told apart so far;
    text that may be the start of a marker is held back until the next call decides it
    (markers arrive split across tokens: ``<``, ``think``, ``>``). ``flush()`` releases what is
    held at the end. Markers are dropped from the output, and so is whitespace before the opening
    one; all other whitespace is kept, so ``start + reasoning + end + answer`` is the generated
    text again.

    ``state`` is ``"start"`` (nothing but whitespace yet), ``"reasoning"`` or ``"answer"``;
    ``saw_block`` says whether a thinking block was found at all.
    """

    def __init__(self, markers: Markers = THINK, *, start_inside: bool = False) -> None:
        self.markers = markers
        self.state = "reasoning" if start_inside else "start"
        self.saw_block = start_inside
        self.closed = False  # the end marker was seen
        self._held = ""

    @property
    def in_reasoning(self) -> bool:
        return self.state == "reasoning"

    def feed(self, text: str) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        buf = self._held + text
        self._held = ""
        while buf:
            if self.state == "start":
                stripped = buf.lstrip()
                if not stripped:
                    self._held = buf  # whitespace only: the block may still open
                    break
                start = self.markers.start
                if stripped.startswith(start):
                    buf = stripped[len(start) :]
                    self.state = "reasoning"
                    self.saw_block = True
                    continue
                if start.startswith(stripped):
                    self._held = buf  # could still become the opening marker
                    break
                self.state = "answer"
                continue
            if self.state == "answer":
                out.append((buf, False))
                break
            # reasoning: look for the end marker, holding back a possible partial one
            end = self.markers.end
            at = buf.find(end)
            if at >= 0:
                if at:
                    out.append((buf[:at], True))
                buf = buf[at + len(end) :]
                self.state = "answer"
                self.closed = True
                continue
            keep = _partial_suffix(buf, end)
            if len(buf) > keep:
                out.append((buf[: len(buf) - keep], True))
            self._held = buf[len(buf) - keep :]
            break
        return _merge(out)

    def flush(self) -> list[tuple[str, bool]]:
        """The held-back text, at the end of the reply: still reasoning inside an open block,
        answer otherwise."""
        held, self._held = self._held, ""
        if not held:
            return []
        if self.state == "start":
            self.state = "answer"
        return [(held, self.state == "reasoning")]


def _partial_suffix(text: str, marker: str) -> int:
    """How many trailing characters of ``text`` could be the start of ``marker``."""
    for n in range(min(len(marker) - 1, len(text)), 0, -1):
        if marker.startswith(text[-n:]):
            return n
    return 0


def _merge(pieces: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    out: list[tuple[str, bool]] = []
    for text, flag in pieces:
        if not text:
            continue
        if out and out[-1][1] == flag:
            out[-1] = (out[-1][0] + text, flag)
        else:
            out.append((text, flag))
    return out


def summary(tokens: int, seconds: float, *, open_block: bool = False) -> str:
    """The one line a folded thinking block shows: ``thought for 4.1 s, 312 tokens``."""
    what = "thinking (not finished)" if open_block else "thought"
    timing = f" for {seconds:.1f} s" if seconds > 0 else ""
    return f"{what}{timing}, {tokens} token{'s' if tokens != 1 else ''}"


def stats_summary(stats: Mapping[str, Any] | None) -> str:
    """:func:`summary` from a saved stats dict (empty when the reply did not think)."""
    if not stats or not stats.get("reasoning_tokens"):
        return ""
    return summary(
        int(stats.get("reasoning_tokens", 0)),
        float(stats.get("reasoning_s", 0.0)),
        open_block=bool(stats.get("reasoning_open")),
    )


class ReasoningTracker:
    """Turns a reply's tokens into :class:`~chatterm.engine.events.Token` events marked as
    reasoning or answer, and counts the thinking for the reply's stats. One per reply; every
    engine (llama.cpp, remote, fake) uses it, so all front ends see the same events.

    ``budget`` (reasoning tokens, 0 = unlimited): :attr:`over_budget` turns true once the block
    has that many tokens and is still open; the engine then emits :attr:`closing_text` itself.
    """

    def __init__(
        self,
        markers: Markers = THINK,
        *,
        start_inside: bool = False,
        budget: int = 0,
        clock: Any = None,
    ) -> None:
        import time

        self.splitter = ReasoningSplitter(markers, start_inside=start_inside)
        self.budget = budget
        self.reasoning_tokens = 0
        self.forced_close = False
        self._now = clock or time.perf_counter
        self._started = 0.0
        self._ended = 0.0
        self._explicit_until = 0.0  # the last reasoning delta a server sent apart
        self._explicit = False  # thinking arrived apart from the text (a server's field)

    @property
    def markers(self) -> Markers:
        return self.splitter.markers

    @property
    def in_reasoning(self) -> bool:
        return self.splitter.in_reasoning

    @property
    def over_budget(self) -> bool:
        return bool(
            self.budget
            and self.splitter.in_reasoning
            and not self.forced_close
            and self.reasoning_tokens >= self.budget
        )

    def closing_text(self, reasoning_so_far_ends_with_newline: bool = False) -> str:
        """What the engine emits to close the block when the budget is spent: the end marker
        on its own line, then the blank line templates put before the answer."""
        self.forced_close = True
        lead = "" if reasoning_so_far_ends_with_newline else "\n"
        return f"{lead}{self.markers.end}\n\n"

    def token(
        self,
        text: str,
        token_id: int,
        prob: float | None = None,
        top: tuple[Any, ...] = (),
        *,
        counted: bool | None = None,
        forced: bool = False,
    ) -> list[Any]:
        """The events for one generated token's text (several when the token spans the end
        of the block; only the first carries the id, probabilities and ``forced``).
        ``counted``: whether this is a model token for the stats (default: it has an id, not
        ``-1``)."""
        from chatterm.engine.events import Token

        now = self._now()
        if not self._started:
            self._started = now
        was, opened_before = self.splitter.state, self.splitter.saw_block
        pieces = self.splitter.feed(text)
        # Inside the block at either end of this token, or the token opened and closed it.
        inside = was == "reasoning" or self.splitter.state == "reasoning"
        inside = inside or (not opened_before and self.splitter.saw_block)
        if (token_id != -1 if counted is None else counted) and inside:
            self.reasoning_tokens += 1
        if was == "reasoning" and self.splitter.state != "reasoning" and not self._ended:
            self._ended = now
        if not pieces:
            return [Token("", token_id, prob, top, forced, reasoning=inside)]
        events = []
        for i, (piece, is_reasoning) in enumerate(pieces):
            if i == 0:
                events.append(Token(piece, token_id, prob, top, forced, reasoning=is_reasoning))
            else:
                events.append(Token(piece, -1, reasoning=is_reasoning))
        return events

    def reasoning_text(self, text: str) -> list[Any]:
        """Thinking that arrived already apart (a server's ``reasoning_content`` delta)."""
        from chatterm.engine.events import Token

        now = self._now()
        if not self._started:
            self._started = now
        self._explicit = True
        self.reasoning_tokens += 1
        self._ended = 0.0
        self._explicit_until = now
        return [Token(text, -1, reasoning=True)]

    def finish(self) -> list[Any]:
        """Release held-back text at the end of the reply."""
        from chatterm.engine.events import Token

        if self.splitter.in_reasoning and not self._ended:
            self._ended = self._now()
        return [Token(t, -1, reasoning=r) for t, r in self.splitter.flush()]

    def stats_fields(self) -> dict[str, Any]:
        """``reasoning_tokens``, ``reasoning_s`` and ``reasoning_open`` for :class:`Stats`."""
        if not self.splitter.saw_block and not self._explicit:
            return {}
        end = self._ended or self._explicit_until or self._now()
        return {
            "reasoning_tokens": self.reasoning_tokens,
            "reasoning_s": max(0.0, end - self._started) if self._started else 0.0,
            "reasoning_open": self.splitter.in_reasoning,
        }


def think_switch_note(template: str | None, think: bool | None) -> str | None:
    """What to tell the user when ``--think``/``--no-think`` cannot act on this model: its chat
    template reads no ``enable_thinking`` switch. ``None`` when the switch applies or was not
    asked for."""
    if think is None or takes_enable_thinking(template):
        return None
    if think:
        return (
            "this model's chat template has no thinking switch (enable_thinking): "
            "--think changes nothing"
        )
    return (
        "this model cannot switch thinking off: its chat template has no thinking switch "
        "(enable_thinking); --thinking-budget limits how long it thinks"
    )


def reasoning_seen_again(prompt_text: str, messages: Sequence[Any]) -> tuple[int, int]:
    """How many earlier replies' thinking the rendered prompt still holds, of how many
    replies thought: ``(seen, total)``. Most templates drop old thinking (Qwen3 keeps only
    the thinking after the last user message, DeepSeek-R1 none); this says what the model is
    really shown again, and so what the KV cache can reuse."""
    thought = [m for m in messages if getattr(m, "role", "") == "assistant" and m.reasoning]
    seen = sum(1 for m in thought if m.reasoning.strip() and m.reasoning.strip() in prompt_text)
    return seen, len(thought)
