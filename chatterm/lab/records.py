"""Token-probability records: what a reply generated with probabilities carries, token by token,
from the engine to the screen, the store and ``chatterm ask --json``. No UI library here.

A :class:`TokenRecord` is frozen; in JSON (the store's ``logprobs`` column, ``ask --logprobs K
--json``) it is written as::

    {"token": " Paris", "id": 7042, "prob": 0.62,
     "top": [{"token": " Paris", "id": 7042, "prob": 0.62}, …], "text": " Paris"}

``token`` is the token's own text (its piece); ``text`` is what the reply gained with it (empty
while a multi-byte character is incomplete). A record also reads like that JSON object
(``record["top"]``), so code holding either form reads it one way. A saved reply's payload is::

    {"top_logprobs": 10, "vocab_size": 49152, "tokens": [<record>, …]}

and a bare list of records (``ask``'s) is read too. Text the engine flushed at the end without
a token of its own (a held-back stop-string prefix, an incomplete character) is kept as a record
with ``id`` −1 and no probability, so the records' texts always add up to the reply. Tokens of a
reasoning model's thinking block carry ``"reasoning": true``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatterm.engine.base import Engine, LocalModel
from chatterm.engine.events import Candidate, Token
from chatterm.sampling import SamplingSettings

if TYPE_CHECKING:
    from chatterm.lab.distribution import Distribution

PROBS_TOP_K = 10
"""Candidates recorded per token while the chat app's probabilities are on."""

_KEYS = ("token", "id", "prob", "top", "text", "forced", "reasoning")


@dataclass(frozen=True)
class TokenRecord(Mapping[str, Any]):
    """One generated token with its probability and its likeliest alternatives.

    ``id`` is −1 for text with no token of its own and for remote servers, which send
    probabilities without token ids; ``prob`` is ``None`` when unknown."""

    token: str
    id: int
    prob: float | None
    top: tuple[Candidate, ...]
    text: str
    forced: bool = False  # a grammar left this token as the only candidate
    reasoning: bool = False  # a token of a thinking block (reasoning models)

    @classmethod
    def from_token(cls, token: Token, piece: str) -> TokenRecord:
        return cls(
            piece, token.token_id, token.prob, token.top, token.text, token.forced, token.reasoning
        )

    @classmethod
    def flush(cls, text: str, reasoning: bool = False) -> TokenRecord:
        """Text the engine flushed at the end without a token of its own."""
        return cls(text, -1, None, (), text, reasoning=reasoning)

    @classmethod
    def from_json(cls, item: Any) -> TokenRecord | None:
        """Read one saved record; ``None`` when it is not one (a payload from another version
        never breaks the transcript)."""
        if not isinstance(item, Mapping):
            return None
        text = item.get("text", item.get("token"))
        if not isinstance(text, str):
            return None
        prob = item.get("prob")
        return cls(
            str(item.get("token", text)),
            _int(item.get("id")),
            float(prob) if isinstance(prob, (int, float)) else None,
            _candidates(item.get("top")),
            text,
            item.get("forced") is True,
            item.get("reasoning") is True,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "id": self.id,
            "prob": self.prob,
            "top": [{"token": c.piece, "id": c.token_id, "prob": c.prob} for c in self.top],
            "text": self.text,
            **({"forced": True} if self.forced else {}),
            **({"reasoning": True} if self.reasoning else {}),
        }

    # The JSON object's read access: ``record["prob"]``, ``record.get("top")``.
    def __getitem__(self, key: str) -> Any:
        if key not in _KEYS:
            raise KeyError(key)
        return self.to_json()[key] if key == "top" else getattr(self, key)  # a field's value

    def __iter__(self) -> Iterator[str]:
        return iter(_KEYS)

    def __len__(self) -> int:
        return len(_KEYS)

    @property
    def label(self) -> str:
        """``␣Paris · id 7042 · p = 0.620``: how the chart titles this token."""
        shown = f"p = {self.prob:.3f}" if self.prob is not None else "no probability"
        return f"{visible(self.token)} · id {self.id} · {shown}"

    def distribution(self, vocab_size: int = 0) -> Distribution | None:
        """The saved top candidates as a (partial) :class:`Distribution`; ``None`` when there
        are none. Candidates that leave probability mass unaccounted for are never taken for
        the whole vocabulary, so :func:`~chatterm.lab.distribution.explain` marks what it
        cannot know."""
        from chatterm.lab.distribution import Distribution

        return Distribution.from_top(self.top, vocab_size=vocab_size)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _candidates(items: Any) -> tuple[Candidate, ...]:
    out = []
    for c in items if isinstance(items, list) else ():
        try:
            out.append(Candidate(int(c["id"]), str(c["token"]), float(c["prob"])))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(out)


# -- making records ------------------------------------------------------------------------


def records_of_tokens(tokens: Iterable[Token], engine: Engine | None = None) -> list[TokenRecord]:
    """One record per generated token (the final flush, id −1 without a probability, is left
    out). A token's piece comes from its own candidate, else from ``engine`` when it can look
    tokens up, else from its text."""
    out = []
    for t in tokens:
        if t.token_id < 0 and t.prob is None:
            continue
        out.append(TokenRecord.from_token(t, _piece(t, engine)))
    return out


def token_records(tokens: Sequence[Token], engine: Engine | None = None) -> list[dict[str, Any]]:
    """:func:`records_of_tokens` in their JSON form, as ``ask --logprobs K --json`` prints."""
    return [r.to_json() for r in records_of_tokens(tokens, engine)]


def _piece(token: Token, engine: Engine | None) -> str:
    piece = next((c.piece for c in token.top if c.token_id == token.token_id), None)
    if piece is not None:
        return piece
    if token.token_id >= 0 and isinstance(engine, LocalModel):
        return engine.piece(token.token_id).piece
    return token.text


class ProbCollector:
    """Worker side: collects ``Token`` events and hands them over as records, one batch at a
    time, keeping the final flush so the records add up to the reply. Runs in the generation
    thread, between the engine's tokens."""

    def __init__(self, engine: Engine | None) -> None:
        self.engine = engine
        self._pending: list[Token] = []

    def add(self, token: Token) -> None:
        self._pending.append(token)

    def take(self) -> tuple[TokenRecord, ...]:
        out = tuple(
            TokenRecord.flush(t.text, t.reasoning)
            if t.token_id < 0 and t.prob is None
            else TokenRecord.from_token(t, _piece(t, self.engine))
            for t in self._pending
        )
        self._pending.clear()
        return out


# -- the saved payload --------------------------------------------------------------------


def payload(
    records: Sequence[TokenRecord], *, top_logprobs: int, vocab_size: int
) -> dict[str, Any]:
    """What is saved in the ``logprobs`` column for one reply (JSON-ready)."""
    return {
        "top_logprobs": top_logprobs,
        "vocab_size": vocab_size,
        "tokens": [r.to_json() for r in records],
    }


def records_of(data: Any) -> list[TokenRecord]:
    """The records in a saved payload (or a bare list); anything unreadable is skipped."""
    items = data.get("tokens") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        return []
    return [r for r in map(TokenRecord.from_json, items) if r is not None]


def candidates_from_record(record: Mapping[str, Any]) -> list[Candidate]:
    """The top candidates of one record or its JSON form, e.g. to rebuild a
    :class:`~chatterm.lab.distribution.Distribution` with ``Distribution.from_candidates``."""
    return list(_candidates(list(record.get("top") or ())))


def engine_vocab_size(engine: Engine) -> int:
    """The model's vocabulary size when the engine can tell (a local model), else 0."""
    return engine.vocab_size if isinstance(engine, LocalModel) else 0


def vocab_size_of(data: Any) -> int:
    if isinstance(data, Mapping):
        try:
            return int(data.get("vocab_size") or 0)
        except (TypeError, ValueError):
            return 0
    return 0


def distribution(record: Mapping[str, Any], vocab_size: int = 0) -> Distribution | None:
    """:meth:`TokenRecord.distribution` for a record or its JSON form."""
    found = record if isinstance(record, TokenRecord) else TokenRecord.from_json(record)
    if found is None:
        found = TokenRecord("", -1, None, _candidates(record.get("top")), "")
    return found.distribution(vocab_size)


def sampling_of(data: Mapping[str, Any] | None) -> SamplingSettings:
    """A message's saved sampling snapshot; the defaults when it has none or it is broken."""
    from chatterm.errors import SettingError

    try:
        return SamplingSettings.from_dict(data or {})
    except SettingError:
        return SamplingSettings()


def uses_penalties(settings: SamplingSettings) -> bool:
    """Penalties change a reply's later tokens, which ``explain`` does not replay."""
    return bool(
        settings.repeat_penalty != 1.0 or settings.presence_penalty or settings.frequency_penalty
    )


def visible(piece: str, width: int = 0) -> str:
    """A token's text with whitespace made visible: ␣ for a space, ↵ newline, → tab."""
    text = piece.replace(" ", "␣").replace("\n", "↵").replace("\t", "→") or "∅"
    if width and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def entropy_bits(probs: Iterable[float]) -> float:
    return -sum(p * math.log2(p) for p in probs if p > 0)
