"""The logit lens: what the model "would say" if it stopped after each layer.

A transformer refines one vector per position, layer by layer (the *residual stream*); after the
last layer, a final norm and the output matrix turn the last position's vector into logits over
the vocabulary. The logit lens (nostalgebraist, "interpreting GPT: the logit lens", 2020) sends
every layer's vector through that same final norm and output matrix. The vectors are llama.cpp's
own (``l_out-<layer>``, captured in a separate context: :mod:`chatterm.lab.capture`); the norm
weights and the output matrix are read from the GGUF and dequantized with the ``gguf`` package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from chatterm.engine.base import Engine
from chatterm.engine.events import Candidate
from chatterm.errors import ContextOverflowError, ModelError, UsageError

TOP = 5
CHUNK_ROWS = 4096
"""Rows of the output matrix dequantized at a time: 4,096 × n_embd × 4 bytes (10 MB for
Gemma 3 270M's 640-wide rows), so a 262,144-token vocabulary never sits in memory as float32."""

FINAL_NORM = {"llama": "rms", "qwen2": "rms", "qwen3": "rms", "gemma3": "rms"}
"""Architectures whose last hidden state goes through one RMSNorm (``output_norm.weight``, with
``<arch>.attention.layer_norm_rms_epsilon``) and the output matrix, and nothing else, in
llama.cpp's graph (src/models/<arch>.cpp). Gemma's GGUF conversion already adds the 1 that
Gemma's ``(1 + weight)`` norm needs. Others are refused rather than shown wrongly."""

NORM_TOLERANCE = 1e-2
"""How far (relative, max-abs) our final norm of the last layer may be from llama.cpp's own
``result_norm`` before the lens refuses the model as one it does not understand."""


@dataclass(frozen=True)
class LayerGuess:
    """What the last position predicts after ``layer`` (0-based): the top tokens and the
    final answer's probability there."""

    layer: int
    top: tuple[Candidate, ...]
    answer_prob: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "top": [{"id": c.token_id, "token": c.piece, "prob": c.prob} for c in self.top],
            "answer_prob": self.answer_prob,
        }


@dataclass(frozen=True)
class Lens:
    """The logit lens of one prompt. ``answer`` is the last layer's top token (the model's
    own greedy next token); ``first_layer`` the earliest layer where it is already the top
    choice."""

    model: str
    architecture: str
    prompt_tokens: int
    layers: tuple[LayerGuess, ...]
    answer: Candidate
    first_layer: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "architecture": self.architecture,
            "prompt_tokens": self.prompt_tokens,
            "answer": {"id": self.answer.token_id, "token": self.answer.piece},
            "first_layer": self.first_layer,
            "layers": [g.to_dict() for g in self.layers],
        }


def check_architecture(info: Any) -> None:
    """Raises ``ModelError`` for an architecture the lens cannot read (see :data:`FINAL_NORM`)."""
    arch = info.architecture
    if arch not in FINAL_NORM:
        raise ModelError(
            f"the logit lens cannot read a {arch} model: it knows how "
            f"{', '.join(sorted(FINAL_NORM))} normalise their last hidden state, not {arch}"
        )


def _tensor(info: Any, name: str) -> Any:
    return next((t for t in info.tensors if t.name == name), None)


def _rows(info: Any, t: Any, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of a tensor's raw bytes, one row per output, read from the file
    (not memory-mapped: a second mapping of the GGUF would count against resident memory)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(t.ggml_type)]
    width, rows = int(t.shape[0]), int(np.prod(t.shape[1:]))
    row_bytes = width // block * type_size
    stop = rows if stop is None else min(stop, rows)
    with open(info.path, "rb") as fh:
        fh.seek(info.data_start + t.offset + start * row_bytes)
        data = fh.read((stop - start) * row_bytes)
    if len(data) != (stop - start) * row_bytes:
        raise ModelError(f"{info.path} is truncated: tensor {t.name} ends early")
    return np.frombuffer(data, dtype=np.uint8).reshape(stop - start, row_bytes)


def _row_count(t: Any) -> int:
    return int(np.prod(t.shape[1:]))


def _dequantize(info: Any, t: Any, raw: np.ndarray) -> np.ndarray:
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    return np.asarray(dequantize(raw, GGMLQuantizationType(t.ggml_type)), np.float32)


def final_norm(info: Any, hidden: np.ndarray) -> np.ndarray:
    """The final RMSNorm of hidden states ``(k, n_embd)``:
    ``x / sqrt(mean(x²) + eps) × output_norm.weight``."""
    norm_t = _tensor(info, "output_norm.weight")
    if norm_t is None:
        raise ModelError(f"the logit lens cannot read {info.path.name}: no output_norm.weight")
    weight = _dequantize(info, norm_t, _rows(info, norm_t)).reshape(-1)
    eps = float(info.arch_value("attention.layer_norm_rms_epsilon", 1e-6))
    h = hidden.astype(np.float32)
    return np.asarray(h / np.sqrt(np.mean(h * h, axis=-1, keepdims=True) + eps) * weight)


def _as_llama_sees(x: np.ndarray, weight_type: int) -> np.ndarray:
    """``x`` (k, n) rounded the way llama.cpp's CPU matmul rounds activations before a dot
    product with weights of ``weight_type``: Q8_0 blocks of 32 (``d = amax / 127`` stored as
    F16, ``q = round(x / d)``) for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 weights, Q8_K blocks of 256 for
    k-quants, F16 for F16 weights (``quantize_row_q8_0``/``quantize_row_q8_K_ref`` in
    ggml-quants.c; ``vec_dot_type`` in ggml-cpu.c). Without it the last layer's logits are up to
    ~0.25 away from llama.cpp's own."""
    from gguf import GGMLQuantizationType as Q

    k_quants = {Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K}
    t = Q(weight_type)
    if t == Q.F16:
        return x.astype(np.float16).astype(np.float32)
    if t in {Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q8_0} and x.shape[-1] % 32 == 0:
        b = x.reshape(x.shape[0], -1, 32)
        d = np.abs(b).max(axis=-1, keepdims=True) / np.float32(127)
        inv = np.divide(1, d, out=np.zeros_like(d), where=d != 0)
        q = np.round(b * inv)
        return (q * d.astype(np.float16).astype(np.float32)).reshape(x.shape)
    if t in k_quants and x.shape[-1] % 256 == 0:
        b = x.reshape(x.shape[0], -1, 256)
        at = np.abs(b).argmax(axis=-1)[..., None]
        peak = np.take_along_axis(b, at, axis=-1)
        iscale = np.divide(-127, peak, out=np.zeros_like(peak), where=peak != 0)
        q = np.minimum(127, np.round(iscale * b))
        scale = np.divide(1, iscale, out=np.zeros_like(iscale), where=iscale != 0)
        return (q * scale).reshape(x.shape).astype(np.float32)
    return x


def project(info: Any, hidden: np.ndarray) -> np.ndarray:
    """Logits ``(k, vocab)`` for hidden states ``(k, n_embd)``: the final RMSNorm
    (``x / sqrt(mean(x²) + eps) × output_norm``), the output matrix (``output.weight``, or the
    tied ``token_embd.weight``) and, where the GGUF sets one, the final logit soft-cap."""
    out_t = _tensor(info, "output.weight") or _tensor(info, "token_embd.weight")
    if out_t is None:
        raise ModelError(f"the logit lens cannot read {info.path.name}: no output matrix")
    normed = _as_llama_sees(final_norm(info, hidden), out_t.ggml_type)
    vocab = _row_count(out_t)
    logits = np.empty((normed.shape[0], vocab), dtype=np.float32)
    for start in range(0, vocab, CHUNK_ROWS):
        block = _dequantize(info, out_t, _rows(info, out_t, start, start + CHUNK_ROWS))
        logits[:, start : start + block.shape[0]] = normed @ block.T
    cap = info.arch_value("final_logit_softcapping")
    if cap:
        logits = np.float32(cap) * np.tanh(logits / np.float32(cap))
    return logits


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z.astype(np.float64))
    return e / e.sum(axis=-1, keepdims=True)


def logit_lens(engine: Engine, tokens: list[int], top: int = TOP) -> Lens:
    """Evaluate ``tokens`` once and project every layer's last-position state to tokens.

    Raises ``UsageError`` for an engine without local weights or an empty prompt,
    ``ContextOverflowError`` past the window, ``ModelError`` for an architecture the lens
    cannot read (refused before evaluating; also when our final norm of the last layer does not
    match llama.cpp's own ``result_norm``).
    """
    from chatterm.engine.llama_engine import LlamaEngine
    from chatterm.lab.capture import capture

    if not isinstance(engine, LlamaEngine):  # it reads llama.cpp's own tensors
        raise UsageError(
            f"{engine.name} runs elsewhere: the logit lens needs a local llama.cpp model"
        )
    if not tokens:
        raise UsageError("nothing to predict from: the prompt is empty")
    if len(tokens) > engine.n_ctx:
        raise ContextOverflowError(
            f"the prompt needs {len(tokens)} tokens but the context window is {engine.n_ctx}"
        )
    info = engine.info
    check_architecture(info)

    def want(name: str) -> bool:
        return name.startswith("l_out-") or name == "result_norm"

    def keep(_name: str, a: np.ndarray) -> np.ndarray:
        return np.array(a.reshape(-1, a.shape[-1])[-1])  # the last position only

    # The engine's flash-attention setting, so the last layer is exactly the engine's own.
    got = capture(
        engine,
        tokens,
        want,
        keep,
        flash_attn=engine.flash_attn,
        one_batch=False,
    )
    found = sorted((int(k.removeprefix("l_out-")), v) for k, v in got.items() if k != "result_norm")
    if not found or "result_norm" not in got:
        raise ModelError(f"the logit lens cannot read {engine.name}: no per-layer states")
    hidden = np.stack([v for _, v in found])
    probs = _softmax(project(info, hidden))
    # Self-check against llama.cpp: our norm of the last layer must be the one it applied.
    last = final_norm(info, hidden[-1:])[0]
    ref = got["result_norm"]
    if np.max(np.abs(last - ref)) > NORM_TOLERANCE * max(1.0, float(np.max(np.abs(ref)))):
        raise ModelError(
            f"the logit lens cannot read {engine.name}: its final norm differs from the "
            "RMSNorm the lens applies"
        )
    answer_id = int(np.argmax(probs[-1]))
    guesses = []
    for (layer, _), row in zip(found, probs):
        ids = np.argsort(-row, kind="stable")[:top]
        cands = tuple(Candidate(int(i), engine.piece(int(i)).piece, float(row[i])) for i in ids)
        guesses.append(LayerGuess(layer, cands, float(row[answer_id])))
    first = next(g.layer for g in guesses if g.top[0].token_id == answer_id)
    return Lens(
        model=engine.name,
        architecture=info.architecture,
        prompt_tokens=len(tokens),
        layers=tuple(guesses),
        answer=guesses[-1].top[0],
        first_layer=first,
    )
