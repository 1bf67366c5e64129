"""llama.cpp's grammar sampler inside chatterm's own token loop.

The grammar judges tokens against what it still allows. :meth:`GrammarMask.sample` follows
llama.cpp's ``common_sampler_sample``: the chain (top-k, top-p, min-p, temperature) picks from
the free logits and the grammar checks that one token; only when it refuses does it judge the
whole vocabulary, setting the logits of every token it rejects to -inf, and the chain picks
again among what is left. So the reply always parses, and a position where the model already
wants a valid token costs one check instead of a pass over the vocabulary (12-28 ms for
SmolLM2's 49,152 tokens, measured on a loaded 2-core machine).

Applying the grammar ourselves rather than inside llama.cpp's chain also lets the token loop
see which candidates survive a full pass (:meth:`GrammarMask.apply`), run when probabilities
are asked for: when they leave no choice of text the grammar *forced* the token
(``Token.forced``, see :func:`is_forced`). The lab uses :meth:`GrammarMask.allowed` to show
which of the likeliest candidates the grammar removes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import Any

from chatterm.errors import ChattermError


class GrammarDeadEnd(ChattermError):
    """The grammar (or the chain after it) left no token to pick: the reply ends with an
    error rather than a token the grammar refuses (llama.cpp aborts on accepting one)."""


class GrammarError(ChattermError):
    """llama.cpp refused the grammar for this model (e.g. a token reference it lacks)."""

    exit_code = 2


FORCED_MAX_CANDIDATES = 32
"""Above this many allowed tokens a position is never called forced (and is not checked)."""


def is_forced(
    allowed: Sequence[int], piece: Callable[[int], bytes], is_eog: Callable[[int], bool]
) -> bool:
    """Whether the grammar left no choice of *text* at this position: one allowed token, or
    several that all spell prefixes of one string (with BPE, a fixed key such as ``"name"``
    can be started as ``"``, ``"n``, ``"name`` …: the model picks only where to split). An
    allowed end-of-generation token is a real choice, so it makes the position free."""
    n = len(allowed)
    if n == 1:
        return True
    if n == 0 or n > FORCED_MAX_CANDIDATES or any(is_eog(int(t)) for t in allowed):
        return False
    pieces = sorted((piece(int(t)) for t in allowed), key=len)
    longest = pieces[-1]
    return all(longest.startswith(p) for p in pieces)


class GrammarMask:
    """A GBNF grammar's state while one reply is generated.

    ``apply(logits)`` masks a writable float32 logits row of shape ``(n_vocab,)`` in place and
    returns the ids of the tokens that remain allowed; ``accept(token)`` advances the grammar
    past the token that was sampled (never an end-of-generation token, and never one it rejected:
    llama.cpp aborts the process on that). ``close()`` frees it.
    """

    def __init__(self, vocab: Any, n_vocab: int, gbnf: str) -> None:
        import llama_cpp
        import numpy as np

        self._llama = llama_cpp
        self._sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
        if not self._sampler:
            raise GrammarError("llama.cpp could not build the grammar for this model")
        self.n_vocab = n_vocab
        dtype = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])
        assert dtype.itemsize == ctypes.sizeof(llama_cpp.llama_token_data)
        self._data = np.zeros(n_vocab, dtype=dtype)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._array = llama_cpp.llama_token_data_array(
            data=self._data.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=n_vocab,
            selected=-1,
            sorted=False,
        )
        self._ref = ctypes.byref(self._array)
        self._one = np.zeros(1, dtype=dtype)
        self._one_array = llama_cpp.llama_token_data_array(
            data=self._one.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=1,
            selected=-1,
            sorted=False,
        )
        self._one_ref = ctypes.byref(self._one_array)

    def allowed(self, logits: Any) -> Any:
        """A boolean mask of shape ``(n_vocab,)``: the tokens the grammar allows next."""
        import numpy as np

        data = self._data
        data["id"] = self._ids
        data["logit"] = logits
        data["p"] = 0.0
        self._array.size = self.n_vocab
        self._array.selected = -1
        self._array.sorted = False
        self._llama.llama_sampler_apply(self._sampler, self._ref)
        # llama.cpp keeps the order here (it only writes -inf), but go by the ids to be safe.
        mask = np.zeros(self.n_vocab, dtype=bool)
        mask[data["id"]] = ~np.isneginf(data["logit"])
        return mask

    def apply(self, logits: Any) -> Any:
        """Mask the grammar's rejections to -inf in ``logits``; return the ids that remain."""
        import numpy as np

        mask = self.allowed(logits)
        logits[~mask] = -np.inf
        return np.flatnonzero(mask)

    def allows(self, token: int) -> bool:
        """Whether the grammar accepts ``token`` next: one token judged, not the vocabulary."""
        data = self._one
        data["id"] = token
        data["logit"] = 0.0
        data["p"] = 0.0
        self._one_array.size = 1
        self._one_array.selected = -1
        self._one_array.sorted = False
        self._llama.llama_sampler_apply(self._sampler, self._one_ref)
        return float(data["logit"][0]) != float("-inf")

    def sample(self, chain: Any, logits: Any) -> tuple[int, bool]:
        """Pick the next token with ``chain`` (a llama.cpp sampler chain) so that the grammar
        accepts it, as llama.cpp's own ``common_sampler_sample`` does: the chain picks from
        the free logits first and only that token is checked; when the grammar refuses it,
        the whole row is masked and the chain picks again. The reply always follows the
        grammar, and a position where the model already wants a valid token costs one check
        instead of a pass over the vocabulary. Returns the token and whether it needed the
        second pick. The chain is applied, not sampled: the caller accepts the token into
        both (:meth:`accept`, ``llama_sampler_accept``)."""
        import numpy as np

        token = self._pick(chain, logits)
        if self.allows(token):
            return token, False
        masked = np.array(logits, dtype=np.float32, copy=True)
        if not len(self.apply(masked)):
            raise GrammarDeadEnd("the grammar allows no next token")
        return self._pick(chain, masked), True

    def _pick(self, chain: Any, logits: Any) -> int:
        data = self._data
        data["id"] = self._ids
        data["logit"] = logits
        data["p"] = 0.0
        self._array.size = self.n_vocab
        self._array.selected = -1
        self._array.sorted = False
        self._llama.llama_sampler_apply(chain, self._ref)
        selected = self._array.selected
        if not 0 <= selected < self._array.size:
            raise GrammarDeadEnd("the sampler chain selected no token")
        return int(data["id"][selected])

    def accept(self, token: int) -> None:
        self._llama.llama_sampler_accept(self._sampler, token)

    def accept_all(self, tokens: Sequence[int]) -> None:
        for token in tokens:
            self.accept(token)

    def close(self) -> None:
        if self._sampler:
            self._llama.llama_sampler_free(self._sampler)
            self._sampler = None

    def __enter__(self) -> GrammarMask:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
