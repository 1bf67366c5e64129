"""Token probabilities as the TUI streams, saves and reads them back. No Textual here.

A reply generated with probabilities on is saved with a JSON payload in the store's
``logprobs`` column::

    {"top_logprobs": 10, "vocab_size": 49152,
     "tokens": [{"token": " Paris", "id": 7042, "prob": 0.62,
                 "top": [{"token": " Paris", "id": 7042, "prob": 0.62}, …], "text": " Paris"}, …]}

Each token record is :func:`chatterm.lab.probs.token_records`' format (the one ``chatterm ask
--logprobs K --json`` prints), so both front ends write the same thing; a bare list of records
is read too. Text the engine flushed at the end without a token of its own (a held-back stop
string prefix, an incomplete character) is kept as a record with ``id`` −1 and no probability,
so the records' texts always add up to the reply.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chatterm.engine.events import Candidate, ChatMessage, Token
from chatterm.sampling import SamplingSettings

if TYPE_CHECKING:
    from chatterm.lab.distribution import Distribution

PROBS_TOP_K = 10
"""Candidates recorded per token while probabilities are on (the chart shows them all)."""

SAMPLING_ROWS = 20
"""Candidates the sampling view shows."""

Record = dict[str, Any]


class ProbCollector:
    """Worker side: collects ``Token`` events and hands them over as JSON-ready records, one
    batch at a time. Runs in the generation thread, between the engine's tokens, so the piece
    lookups it may need share the engine's buffer safely."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._pending: list[Token] = []

    def add(self, token: Token) -> None:
        self._pending.append(token)

    def take(self) -> tuple[Record, ...]:
        from chatterm.lab.probs import token_records

        out: list[Record] = []
        for token in self._pending:
            if token.token_id < 0:
                out.append(
                    {"token": token.text, "id": -1, "prob": None, "top": [], "text": token.text}
                )
            else:
                out.extend(token_records([token], self.engine))
        self._pending.clear()
        return tuple(out)


def engine_vocab_size(engine: Any) -> int:
    """The model's vocabulary size when the engine can tell (llama.cpp), else 0."""
    llama = getattr(engine, "llama", None)
    try:
        return int(llama.n_vocab()) if llama is not None else 0
    except Exception:  # a closed or remote engine: the size is only a refinement
        return 0


def payload(records: Sequence[Record], *, top_logprobs: int, vocab_size: int) -> dict[str, Any]:
    """What is saved in the ``logprobs`` column for one reply."""
    return {"top_logprobs": top_logprobs, "vocab_size": vocab_size, "tokens": list(records)}


def records_of(data: Any) -> list[Record]:
    """The token records in a saved payload (or a bare list); anything unreadable is skipped,
    so a payload from another version never breaks the transcript."""
    items = data.get("tokens") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        return []
    out = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("text", item.get("token")), str):
            record = dict(item)
            record.setdefault("text", record.get("token", ""))
            if not isinstance(record.get("top"), list):
                record["top"] = []
            out.append(record)
    return out


def vocab_size_of(data: Any) -> int:
    if isinstance(data, Mapping):
        try:
            return int(data.get("vocab_size") or 0)
        except (TypeError, ValueError):
            return 0
    return 0


def candidates(record: Mapping[str, Any]) -> list[Candidate]:
    out = []
    for c in record.get("top") or ():
        try:
            out.append(Candidate(int(c["id"]), str(c["token"]), float(c["prob"])))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def distribution(record: Mapping[str, Any], vocab_size: int = 0) -> Distribution | None:
    """The saved top candidates of one token as a (partial) :class:`Distribution`; ``None``
    when the record has none. Candidates that leave probability mass unaccounted for are
    never taken for the whole vocabulary, so :func:`explain` marks what it cannot know."""
    from chatterm.lab.distribution import Distribution

    cands = [c for c in candidates(record) if c.prob > 0]
    if not cands:
        return None
    if vocab_size <= len(cands) and sum(c.prob for c in cands) < 1.0 - 1e-6:
        vocab_size = len(cands) + 1
    return Distribution.from_candidates(cands, vocab_size=vocab_size)


def sampling_of(data: Mapping[str, Any] | None) -> SamplingSettings:
    """A message's saved sampling snapshot; the defaults when it has none or it is broken."""
    from chatterm.errors import SettingError

    try:
        return SamplingSettings.from_dict(data or {})
    except SettingError:
        return SamplingSettings()


def uses_penalties(settings: SamplingSettings) -> bool:
    """Penalties change a reply's later tokens, which :func:`explain` does not replay."""
    return bool(
        settings.repeat_penalty != 1.0 or settings.presence_penalty or settings.frequency_penalty
    )


def record_label(record: Mapping[str, Any]) -> str:
    prob = record.get("prob")
    shown = f"p = {prob:.3f}" if isinstance(prob, (int, float)) else "no probability"
    return f"{visible(str(record.get('token', '')))} · id {record.get('id')} · {shown}"


def visible(piece: str, width: int = 0) -> str:
    """A token's text with whitespace made visible: ␣ for a space, ↵ newline, → tab."""
    text = piece.replace(" ", "␣").replace("\n", "↵").replace("\t", "→") or "∅"
    if width and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def entropy_bits(probs: Iterable[float]) -> float:
    return -sum(p * math.log2(p) for p in probs if p > 0)


# -- next-token distributions for the sampling view -------------------------------------


def capture_distribution(
    engine: Any, messages: Sequence[ChatMessage], *, rows: int = SAMPLING_ROWS
) -> Distribution:
    """The distribution of the first token of the reply to ``messages``.

    A local llama.cpp engine gives the full vocabulary (:func:`next_token_distribution`);
    engines without local logits (remote servers, the scripted fake) give their top ``rows``
    candidates from a one-token generation, which :func:`explain` marks as approximate.
    Runs in a worker: it evaluates the prompt.
    """
    from chatterm.lab.distribution import Distribution, next_token_distribution

    if hasattr(engine, "prefill") and hasattr(engine, "logits"):
        return next_token_distribution(engine, messages)
    greedy = SamplingSettings(temperature=0, max_tokens=1, seed=0)
    prompt_text = ""
    first: Token | None = None
    for event in engine.generate(messages, greedy, top_logprobs=rows):
        prompt_text = getattr(event, "prompt_text", prompt_text)
        if isinstance(event, Token) and first is None and event.top:
            first = event
    if first is None:
        from chatterm.errors import UsageError

        raise UsageError(f"{engine.name} gave no token probabilities for this prompt")
    dist = distribution(
        {"top": [{"id": c.token_id, "token": c.piece, "prob": c.prob} for c in first.top]}
    )
    assert dist is not None
    return Distribution(
        dist.token_ids,
        dist.logprobs,
        dist.pieces,
        dist.vocab_size,
        dist.complete,
        engine.name,
        prompt_text,
        0,
    )
