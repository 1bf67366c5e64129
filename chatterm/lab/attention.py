"""Attention weights: which earlier tokens each token "looks at", per layer and head.

Each layer of a transformer has several attention *heads*; a head scores every earlier token
against the current one, and a softmax turns the scores into weights that sum to 1: the share of
that earlier token's value the head mixes into the current position. The weights are captured
from llama.cpp's own computation (the ``kq_soft_max-<layer>`` tensors, see
:mod:`chatterm.lab.capture`), in a separate context with flash attention off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from chatterm.engine.base import Engine
from chatterm.errors import ContextOverflowError, ModelError, UsageError

if TYPE_CHECKING:
    from chatterm.engine.llama_engine import LlamaEngine

BUDGET_BYTES = 256 * 2**20
"""The most memory the captured attention may take: ``layers × heads × tokens² × 4`` bytes
(float32). SmolLM2-135M (30 layers × 9 heads) reaches it at about 490 tokens, Gemma 3 270M
(18 × 4) at 960."""

SOFTMAX = "kq_soft_max-"


@dataclass(frozen=True)
class Attention:
    """The attention of one prompt. ``weights[layer, head, query, key]`` (float32, shape
    ``(layers, heads, n, n)``): how much the token at ``query`` attends to the one at ``key``;
    each row sums to 1 and is zero for ``key > query`` (causal)."""

    model: str
    architecture: str
    token_ids: tuple[int, ...]
    pieces: tuple[str, ...]
    weights: np.ndarray

    @property
    def layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def heads(self) -> int:
        return int(self.weights.shape[1])

    def check(self, layer: int | None, head: int | None) -> None:
        """Raises ``UsageError`` for a layer or head the model does not have (0-based)."""
        if layer is not None and not 0 <= layer < self.layers:
            raise UsageError(f"--layer must be 0–{self.layers - 1} for {self.model}")
        if head is not None and not 0 <= head < self.heads:
            raise UsageError(f"--head must be 0–{self.heads - 1} for {self.model}")

    def matrix(self, layer: int | None = None, head: int | None = None) -> np.ndarray:
        """``(n, n)`` weights of one layer and head; ``None`` averages over all of them."""
        self.check(layer, head)
        w = self.weights if layer is None else self.weights[layer : layer + 1]
        w = w if head is None else w[:, head : head + 1]
        return np.asarray(w.mean(axis=(0, 1)), dtype=np.float32)

    def top(
        self, query: int, k: int = 3, layer: int | None = None, head: int | None = None
    ) -> list[tuple[int, float]]:
        """The ``k`` positions ``query`` attends to most, as ``(position, weight)``."""
        row = self.matrix(layer, head)[query, : query + 1]
        order = np.argsort(-row, kind="stable")[:k]
        return [(int(i), float(row[i])) for i in order]

    def to_dict(self, layer: int | None = None, head: int | None = None) -> dict[str, Any]:
        """JSON-ready: the tokens and every weight (``weights[layer][head][query][key]`` for
        the whole capture, or ``[query][key]`` for the one selection)."""
        out: dict[str, Any] = {
            "model": self.model,
            "architecture": self.architecture,
            "layers": self.layers,
            "heads": self.heads,
            "tokens": [{"id": i, "piece": p} for i, p in zip(self.token_ids, self.pieces)],
        }
        if layer is None and head is None:
            out["weights"] = np.round(self.weights.astype(np.float64), 6).tolist()
        else:
            out["layer"], out["head"] = layer, head
            out["weights"] = np.round(self.matrix(layer, head).astype(np.float64), 6).tolist()
        return out


def budget_bytes(layers: int, heads: int, n: int) -> int:
    """Bytes the captured attention of ``n`` tokens takes (float32)."""
    return layers * heads * n * n * 4


def _heads(engine: LlamaEngine) -> int:
    value = engine.info.arch_value("attention.head_count")
    if isinstance(value, list | tuple):
        value = max(value) if value else None
    if not isinstance(value, int) or value <= 0:
        raise ModelError(
            f"the attention view cannot read {engine.name}: its GGUF gives no "
            f"{engine.info.architecture}.attention.head_count"
        )
    return value


def capture_attention(engine: Engine, tokens: list[int], budget: int = BUDGET_BYTES) -> Attention:
    """Evaluate ``tokens`` (with BOS if the model wants one; see
    :func:`chatterm.lab.distribution.raw_text_tokens`) and capture every layer's attention.

    Raises ``UsageError`` for an engine without local weights or an empty prompt,
    ``ContextOverflowError`` when the weights would exceed ``budget`` bytes (checked before
    anything is allocated) or the prompt exceeds the engine's window, ``ModelError`` when
    llama.cpp computes no softmaxed attention for this architecture.
    """
    from chatterm.engine.llama_engine import LlamaEngine
    from chatterm.lab.capture import capture

    if not isinstance(engine, LlamaEngine):  # it reads llama.cpp's own tensors
        raise UsageError(
            f"{engine.name} runs elsewhere: the attention view needs a local llama.cpp model"
        )
    n = len(tokens)
    if n == 0:
        raise UsageError("nothing to look at: the prompt is empty")
    layers = int(engine.info.arch_value("block_count", 0) or 0)
    heads = _heads(engine)
    need = budget_bytes(layers, heads, n)
    if need > budget:
        raise ContextOverflowError(
            f"the attention of {n} tokens needs {need / 2**20:.0f} MiB ({layers} layers × "
            f"{heads} heads × {n}² × 4 bytes), over the attention view's budget of "
            f"{budget / 2**20:.0f} MiB; shorten the text"
        )
    if n > engine.n_ctx:
        raise ContextOverflowError(
            f"the prompt needs {n} tokens but the context window is {engine.n_ctx}"
        )

    def keep(_name: str, a: np.ndarray) -> np.ndarray:
        # (1, heads, queries, kv cells): cells past the prompt are padding, masked to zero.
        return np.ascontiguousarray(a[0, :, :n, :n])

    got = capture(engine, tokens, lambda name: name.startswith(SOFTMAX), keep)
    found = sorted((int(k.removeprefix(SOFTMAX)), v) for k, v in got.items())
    if not found:
        raise ModelError(
            f"the attention view cannot read {engine.name}: llama.cpp computed no softmaxed "
            f"attention for its architecture ({engine.info.architecture})"
        )
    weights = np.stack([v for _, v in found])
    return Attention(
        model=engine.name,
        architecture=engine.info.architecture,
        token_ids=tuple(tokens),
        pieces=tuple(engine.piece(t).piece for t in tokens),
        weights=weights,
    )
