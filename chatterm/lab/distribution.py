"""The next-token distribution, and how the sampling chain reshapes it.

:func:`explain` replays in NumPy the chain that :meth:`LlamaEngine._sampler` builds from
llama.cpp's samplers, in the same order and by the same rules (read from llama.cpp's
``src/llama-sampling.cpp``; the tests run the real samplers over the same logits and compare):

1. repetition penalties: none apply to the first token of a reply (the chain is new for every
   reply and has accepted no tokens yet), so they are not shown;
2. temperature 0: greedy; only the likeliest token remains and no other stage runs;
3. top-k: keep the k tokens with the highest logits (0 = off);
4. top-p: softmax (temperature 1) over what top-k left, keep the shortest run of likeliest
   tokens whose probabilities add up to at least p (always one or more; 1 = off);
5. min-p: keep tokens at least ``min_p`` times as likely as the likeliest one (0 = off);
6. temperature: divide the survivors' logits by T and softmax: what ``dist`` samples from.

So top-p and min-p judge probabilities *before* temperature: raising the temperature flattens
what survives but never changes which tokens survive.

The TUI replays one :class:`Distribution` through :func:`explain` as the user moves sliders;
nothing is generated again. Exact ties at a cut-off, and sums within ~1e-6 of top-p, may fall
the other way in llama.cpp, which sorts ties arbitrarily and adds in float32.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from chatterm.engine.base import Engine, LocalModel
from chatterm.engine.events import Candidate, ChatMessage
from chatterm.errors import ContextOverflowError, UsageError

if TYPE_CHECKING:
    import numpy as np

# How many of the likeliest tokens get their text looked up when a distribution is captured.
DEFAULT_PIECES = 256
# With a grammar, the likeliest tokens it allows are shown even below the top rows asked for.
GRAMMAR_EXTRA_ROWS = 5


class SamplerSettings(Protocol):
    """What :func:`explain` reads; :class:`chatterm.sampling.SamplingSettings` fits."""

    @property
    def temperature(self) -> float: ...
    @property
    def top_k(self) -> int: ...
    @property
    def top_p(self) -> float: ...
    @property
    def min_p(self) -> float: ...


@dataclass(frozen=True, eq=False)
class Distribution:
    """The model's probabilities for the next token, likeliest first.

    ``logprobs`` are log-probabilities over the *whole* vocabulary at temperature 1 (the raw
    softmax), so a distribution captured live (``complete``: every token) and one rebuilt from
    the top-K candidates saved with a message (not ``complete``) are read the same way.
    """

    token_ids: np.ndarray
    logprobs: np.ndarray
    pieces: tuple[str, ...]
    vocab_size: int
    complete: bool = True
    model: str = ""
    prompt_text: str = ""
    prompt_tokens: int = 0
    allowed: np.ndarray | None = None
    """With a grammar: a boolean per token id, True for the tokens it allows next."""
    grammar_label: str = ""
    more_pieces: Mapping[int, str] = field(default_factory=dict)
    """Texts of tokens beyond the first ``pieces``, by token id (e.g. what a grammar allows)."""

    def __len__(self) -> int:
        return len(self.token_ids)

    @cached_property
    def probs(self) -> np.ndarray:
        import numpy as np

        return np.exp(self.logprobs)

    def piece(self, rank: int) -> str:
        """The text of the ``rank``-th likeliest token (0-based); ``<id>`` if not looked up."""
        if rank < len(self.pieces):
            return self.pieces[rank]
        token_id = int(self.token_ids[rank])
        return self.more_pieces.get(token_id, f"<{token_id}>")

    def top(self, n: int) -> list[Candidate]:
        """The ``n`` likeliest tokens as candidates (raw probabilities)."""
        n = min(n, len(self))
        return [
            Candidate(int(self.token_ids[i]), self.piece(i), float(self.probs[i])) for i in range(n)
        ]

    @classmethod
    def from_logits(
        cls,
        logits: Any,
        piece: Callable[[int], str],
        *,
        n_pieces: int = DEFAULT_PIECES,
        model: str = "",
        prompt_text: str = "",
        prompt_tokens: int = 0,
    ) -> Distribution:
        """From one row of logits (copied); ``piece(token_id)`` names the ``n_pieces``
        likeliest tokens."""
        import numpy as np

        x = np.asarray(logits, dtype=np.float64)
        finite = x[np.isfinite(x)]
        peak = float(finite.max()) if finite.size else 0.0
        log_z = peak + math.log(float(np.exp(x - peak).sum()))
        order = np.argsort(-x, kind="stable")
        ids = order.astype(np.int64)
        pieces = tuple(piece(int(t)) for t in ids[:n_pieces])
        return cls(ids, x[order] - log_z, pieces, len(x), True, model, prompt_text, prompt_tokens)

    @classmethod
    def from_candidates(
        cls,
        candidates: Sequence[Candidate],
        *,
        vocab_size: int = 0,
        model: str = "",
        prompt_text: str = "",
    ) -> Distribution:
        """From saved top-K candidates (e.g. a ``Token.top``); stages that depend on tokens
        beyond these K are marked approximate by :func:`explain`."""
        import numpy as np

        ordered = sorted((c for c in candidates if c.prob > 0), key=lambda c: -c.prob)
        ids = np.array([c.token_id for c in ordered], dtype=np.int64)
        logprobs = np.array([math.log(c.prob) for c in ordered], dtype=np.float64)
        vocab = max(vocab_size, len(ordered))
        return cls(
            ids,
            logprobs,
            tuple(c.piece for c in ordered),
            vocab,
            vocab == len(ordered),
            model,
            prompt_text,
            0,
        )

    @classmethod
    def from_top(
        cls,
        candidates: Sequence[Candidate],
        *,
        vocab_size: int = 0,
        model: str = "",
        prompt_text: str = "",
    ) -> Distribution | None:
        """Like :meth:`from_candidates`, for the top candidates a reply recorded; ``None``
        when there are none. Candidates that leave probability mass unaccounted for are never
        taken for the whole vocabulary, so :func:`explain` marks what it cannot know."""
        cands = [c for c in candidates if c.prob > 0]
        if not cands:
            return None
        if vocab_size <= len(cands) and sum(c.prob for c in cands) < 1.0 - 1e-6:
            vocab_size = len(cands) + 1
        return cls.from_candidates(
            cands, vocab_size=vocab_size, model=model, prompt_text=prompt_text
        )


@dataclass(frozen=True)
class Row:
    """One candidate token: its raw probability, the stage that removed it (``None`` if it
    survived) and its probability in what is finally sampled (0 when removed)."""

    rank: int
    token_id: int
    piece: str
    prob: float
    removed_by: str | None
    final_prob: float

    @property
    def survived(self) -> bool:
        return self.removed_by is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "id": self.token_id,
            "piece": self.piece,
            "prob": self.prob,
            "removed_by": self.removed_by,
            "final_prob": self.final_prob,
        }


@dataclass(frozen=True)
class Stage:
    """One filter of the chain: its setting, whether it ran, and how many tokens it left."""

    name: str
    setting: str
    active: bool
    kept: int


@dataclass(frozen=True)
class Explanation:
    """What the chain does to a distribution under one set of settings."""

    rows: list[Row]
    stages: tuple[Stage, ...]
    survivors: int
    temperature: float
    vocab_size: int
    exact: bool = True
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "vocab_size": self.vocab_size,
            "survivors": self.survivors,
            "exact": self.exact,
            "stages": [
                {"name": s.name, "setting": s.setting, "active": s.active, "kept": s.kept}
                for s in self.stages
            ],
            "candidates": [r.to_dict() for r in self.rows],
        }


def explain(dist: Distribution, settings: SamplerSettings, n: int = 20) -> Explanation:
    """Run ``settings``' chain over ``dist`` and describe the ``n`` likeliest candidates.

    Every stage keeps a prefix of the likeliest-first order, so the chain reduces to a list of
    cut-offs; cost is O(vocabulary) at worst, under a millisecond for 49k tokens, fast enough
    to follow a slider.
    """
    import numpy as np

    if dist.allowed is not None:
        return _explain_with_grammar(dist, settings, n)
    lp = dist.logprobs
    known = len(lp)
    vocab = max(dist.vocab_size, known)
    temperature = float(settings.temperature)
    top_k, top_p, min_p = int(settings.top_k), float(settings.top_p), float(settings.min_p)
    exact = True
    cuts: list[tuple[str, int]] = []
    stages: list[Stage] = []
    kept = vocab

    if known == 0:
        return Explanation([], (), 0, temperature, vocab, False, _settings_dict(settings))
    if temperature <= 0:
        kept = 1
        cuts.append(("greedy", 1))
        stages.append(Stage("greedy", "temperature 0", True, 1))
        stages += [
            Stage("top-k", f"k={top_k}", False, 1),
            Stage("top-p", f"p={top_p:g}", False, 1),
            Stage("min-p", f"min_p={min_p:g}", False, 1),
        ]
    else:
        if top_k > 0:
            kept = min(kept, top_k)
            cuts.append(("top-k", kept))
        stages.append(Stage("top-k", f"k={top_k}", top_k > 0, kept))

        if top_p < 1.0:
            head = min(kept, known)
            weights = np.exp(lp[:head] - lp[0])
            if kept <= known:
                mass = float(weights.sum())
            else:
                # Beyond the known candidates: the whole vocabulary's mass, exact when top-k
                # is off, an approximation of the top-k set's mass otherwise.
                mass = math.exp(-float(lp[0]))
                exact = exact and kept >= vocab
            reached = np.flatnonzero(np.cumsum(weights) / mass >= top_p)
            if reached.size:
                kept = int(reached[0]) + 1
            elif kept > known:
                exact = False  # the cut lies among tokens we do not know
            cuts.append(("top-p", kept))
        stages.append(Stage("top-p", f"p={top_p:g}", top_p < 1.0, kept))

        if min_p > 0:
            floor = float(lp[0]) + math.log(min_p)
            head = min(kept, known)
            passing = max(1, int(np.count_nonzero(lp[:head] >= floor)))
            if passing == head and kept > known:
                exact = False  # unknown tokens below the known ones may pass too
            else:
                kept = passing
            cuts.append(("min-p", kept))
        stages.append(Stage("min-p", f"min_p={min_p:g}", min_p > 0, kept))

    survivors = min(kept, known)
    if kept > known:
        exact = False  # some survivors are unknown: final probabilities are over the known ones
    if temperature <= 0:
        final = np.ones(1)
    else:
        scaled = lp[:survivors] / temperature
        final = np.exp(scaled - scaled.max())
        final /= final.sum()

    rows = []
    probs = dist.probs
    for rank in range(min(n, known)):
        removed_by = next((name for name, cut in cuts if rank >= cut), None)
        rows.append(
            Row(
                rank + 1,
                int(dist.token_ids[rank]),
                dist.piece(rank),
                float(probs[rank]),
                removed_by,
                float(final[rank]) if rank < survivors else 0.0,
            )
        )
    return Explanation(
        rows, tuple(stages), kept, temperature, vocab, exact, _settings_dict(settings)
    )


def _explain_with_grammar(dist: Distribution, settings: SamplerSettings, n: int) -> Explanation:
    """The chain with a grammar in front, as the engine runs it: the grammar sets the logits
    of every token it rejects to -inf, so the later stages judge the allowed tokens alone
    (top-p over their re-normalised probabilities). Rows keep the model's own probabilities
    and ranks; a rejected candidate is marked ``grammar``."""
    import dataclasses

    import numpy as np

    assert dist.allowed is not None
    keep = dist.allowed[dist.token_ids]
    kept = np.flatnonzero(keep)
    lp = dist.logprobs[kept]
    if lp.size:
        peak = float(lp.max())
        lp = lp - (peak + math.log(float(np.exp(lp - peak).sum())))
    sub = Distribution(
        dist.token_ids[kept],
        lp,
        tuple(dist.piece(int(i)) for i in kept[:DEFAULT_PIECES]),
        len(kept),
        True,
        dist.model,
        dist.prompt_text,
        dist.prompt_tokens,
    )
    shown = int(np.count_nonzero(keep[:n]))
    # Also the likeliest tokens the grammar allows below the top n: what will be sampled.
    inner = explain(sub, settings, n=max(shown, min(GRAMMAR_EXTRA_ROWS, len(kept))))
    by_rank = {int(r): row for r, row in zip(kept[: len(inner.rows)], inner.rows)}
    rows = []
    probs = dist.probs
    ranks = [r for r in range(min(n, len(dist)))]
    ranks += [r for r, row in by_rank.items() if r >= n and row.removed_by is None]
    for rank in ranks:
        inside = by_rank.get(rank)
        rows.append(
            Row(
                rank + 1,
                int(dist.token_ids[rank]),
                dist.piece(rank),
                float(probs[rank]),
                inside.removed_by if inside is not None else "grammar",
                inside.final_prob if inside is not None else 0.0,
            )
        )
    label = dist.grammar_label or "grammar"
    stage = Stage("grammar", label, True, len(kept))
    return dataclasses.replace(
        inner,
        rows=rows,
        stages=(stage, *inner.stages),
        vocab_size=dist.vocab_size,
        settings={**inner.settings, "grammar": label},
    )


def _settings_dict(settings: SamplerSettings) -> dict[str, Any]:
    return {
        "temperature": float(settings.temperature),
        "top_k": int(settings.top_k),
        "top_p": float(settings.top_p),
        "min_p": float(settings.min_p),
    }


# -- capture from a live engine ------------------------------------------------------------


def next_token_distribution(
    engine: Engine,
    messages: Sequence[ChatMessage],
    *,
    continuation: Sequence[int] = (),
    n_pieces: int = DEFAULT_PIECES,
    grammar: str = "",
    grammar_label: str = "",
) -> Distribution:
    """The distribution for the first token of the reply to ``messages`` (after the chat
    template), or, with ``continuation`` (token ids of a reply so far), for the token after it:
    the TUI passes a saved reply's first i tokens to inspect its i-th token in full. With a
    GBNF ``grammar``, ``allowed`` marks the tokens it allows after ``continuation``."""
    prompt = engine.render(messages)
    return distribution_after(
        engine,
        [*prompt.tokens, *continuation],
        prompt_text=prompt.text,
        n_pieces=n_pieces,
        grammar=grammar,
        grammar_label=grammar_label,
        continuation=continuation,
    )


def raw_text_tokens(engine: LocalModel, text: str) -> list[int]:
    """``text`` as a plain continuation prompt, no chat template (BOS if the model wants it)."""
    return list(engine.token_ids(text, special=False, add_bos=True))


def distribution_after(
    engine: Engine,
    tokens: Sequence[int],
    *,
    prompt_text: str = "",
    n_pieces: int = DEFAULT_PIECES,
    grammar: str = "",
    grammar_label: str = "",
    continuation: Sequence[int] = (),
) -> Distribution:
    """Evaluate ``tokens`` (reusing the KV cache's prefix) and capture the next-token logits.

    Raises ``UsageError`` for an engine without local logits (the fake, remote servers) or an
    empty prompt, ``ContextOverflowError`` when the tokens do not fit the window.
    """
    import numpy as np

    if not isinstance(engine, LocalModel):
        raise UsageError(
            f"{engine.name} does not expose its logits; the lab needs a local llama.cpp model"
        )
    if not tokens:
        raise UsageError("nothing to predict from: the prompt is empty")
    if len(tokens) >= engine.n_ctx:
        raise ContextOverflowError(
            f"the prompt needs {len(tokens)} tokens but the context window is {engine.n_ctx}; "
            "shorten it or raise --ctx-size"
        )
    with engine.lock:  # a reply in another thread must not move the logits under us
        engine.prefill(list(tokens))
        logits = np.array(engine.logits(), dtype=np.float32, copy=True)
        dist = Distribution.from_logits(
            logits,
            lambda t: engine.piece(t).piece,
            n_pieces=n_pieces,
            model=engine.name,
            prompt_text=prompt_text,
            prompt_tokens=len(tokens),
        )
    if not grammar:
        return dist
    import dataclasses

    with engine.grammar_mask(grammar) as mask:
        mask.accept_all(continuation)
        allowed = mask.allowed(logits)
    likeliest = [int(t) for t in dist.token_ids[allowed[dist.token_ids]][: GRAMMAR_EXTRA_ROWS * 4]]
    return dataclasses.replace(
        dist,
        allowed=allowed,
        grammar_label=grammar_label or "grammar",
        more_pieces={t: engine.piece(t).piece for t in likeliest},
    )


SAMPLING_ROWS = 20
"""Candidates the sampling view shows."""


def capture_distribution(
    engine: Engine,
    messages: Sequence[ChatMessage],
    *,
    rows: int = SAMPLING_ROWS,
    grammar: str = "",
    grammar_label: str = "",
) -> Distribution:
    """The distribution of the first token of the reply to ``messages``.

    A local llama.cpp engine gives the full vocabulary (:func:`next_token_distribution`),
    with what a GBNF ``grammar`` allows when one is given (a persona's schema);
    engines without local logits (remote servers, the scripted fake) give their top ``rows``
    candidates from a one-token generation, which :func:`explain` marks as approximate.
    Runs in a worker: it evaluates the prompt.
    """
    from chatterm.engine.events import PromptReady, Token
    from chatterm.sampling import SamplingSettings

    if isinstance(engine, LocalModel):
        return next_token_distribution(
            engine, messages, grammar=grammar, grammar_label=grammar_label
        )
    greedy = SamplingSettings(temperature=0, max_tokens=1, seed=0)
    prompt_text = ""
    first: Token | None = None
    for event in engine.generate(messages, greedy, top_logprobs=rows):
        if isinstance(event, PromptReady):
            prompt_text = event.prompt_text
        if isinstance(event, Token) and first is None and event.top:
            first = event
    dist = (
        None
        if first is None
        else Distribution.from_top(first.top, model=engine.name, prompt_text=prompt_text)
    )
    if dist is None:
        raise UsageError(f"{engine.name} gave no token probabilities for this prompt")
    return dist
