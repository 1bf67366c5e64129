"""Read tensors out of one llama.cpp forward pass, in a context of its own.

llama.cpp's graph scheduler calls an evaluation callback (``cb_eval`` in the context
parameters; ``ggml_backend_sched_eval_callback`` in ggml-backend.h) for every node: first with
``ask`` true ("do you want this tensor?"), then, for the nodes the callback wanted, with ``ask``
false once the tensor is computed. Node names are the ones the model graph gives with
``cb(tensor, name, layer)``: ``kq_soft_max-<layer>`` (the softmaxed attention, only with flash
attention off; src/llama-graph.cpp), ``l_out-<layer>`` (the residual stream after a layer) and
``result_norm`` (src/models/*.cpp, llama.cpp as vendored by llama-cpp-python 0.3.36).

The capture runs in a fresh ``llama_context`` on the engine's already-loaded weights, with flash
attention off and one micro-batch for the whole prompt, on chatterm's compute thread: the chat
engine's own context, KV cache and speed are never touched.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from chatterm.engine import compute_thread
from chatterm.errors import ModelError

if TYPE_CHECKING:
    from chatterm.engine.llama_engine import LlamaEngine

GGML_MAX_DIMS = 4
GGML_TYPE_F32 = 0
BATCH = 512
"""Tokens per batch when not ``one_batch``: the chat engine's prefill chunk, so the numbers come
out as the engine's."""


class _TensorHead(ctypes.Structure):
    """The first fields of ``struct ggml_tensor`` (ggml.h), stable across ggml versions."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
    ]


_GGML: Any = None


def _ggml() -> Any:
    global _GGML
    if _GGML is None:
        import llama_cpp._ggml as ggml_lib

        lib = ggml_lib.libggml
        lib.ggml_get_name.argtypes = [ctypes.c_void_p]
        lib.ggml_get_name.restype = ctypes.c_char_p
        lib.ggml_nbytes.argtypes = [ctypes.c_void_p]
        lib.ggml_nbytes.restype = ctypes.c_size_t
        lib.ggml_is_contiguous.argtypes = [ctypes.c_void_p]
        lib.ggml_is_contiguous.restype = ctypes.c_bool
        lib.ggml_backend_tensor_get.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_size_t,
        ]
        lib.ggml_backend_tensor_get.restype = None
        _GGML = lib
    return _GGML


def _read(lib: Any, tensor: int) -> np.ndarray:
    """The tensor as a float32 array shaped ``(ne3, ne2, ne1, ne0)`` (C order: ne0 fastest)."""
    head = _TensorHead.from_address(tensor)
    shape = tuple(int(head.ne[i]) for i in reversed(range(GGML_MAX_DIMS)))
    if head.type != GGML_TYPE_F32 or not lib.ggml_is_contiguous(tensor):
        raise ModelError("llama.cpp computed a tensor chatterm cannot read (not contiguous F32)")
    out = np.empty(shape, dtype=np.float32)
    lib.ggml_backend_tensor_get(tensor, out.ctypes.data, 0, out.nbytes)
    return out


def capture(
    engine: LlamaEngine,
    tokens: Sequence[int],
    want: Callable[[str], bool],
    keep: Callable[[str, np.ndarray], np.ndarray] = lambda _name, a: a,
    *,
    flash_attn: bool = False,
    one_batch: bool = True,
) -> dict[str, np.ndarray]:
    """Evaluate ``tokens`` once in a separate context and return the wanted tensors by name.

    ``want(name)`` picks graph nodes; ``keep(name, array)`` may cut each one down as it
    arrives (the array is shaped ``(ne3, ne2, ne1, ne0)``), so only what is kept stays in
    memory. ``flash_attn``: on, the softmaxed attention never exists as a tensor; match the
    engine's setting to reproduce its numbers exactly. ``one_batch``: evaluate the whole prompt
    as one micro-batch (attention needs every query row in one tensor); otherwise in batches of
    :data:`BATCH` like the engine's prefill, where a tensor's later batch replaces its earlier
    one (enough for the last position), and llama.cpp's buffers stay small for long prompts.
    Logits are computed for the last position only. Raises ``ModelError`` when llama.cpp
    cannot make the context or evaluate the tokens.
    """
    import llama_cpp

    n = len(tokens)
    lib = _ggml()
    found: dict[str, np.ndarray] = {}
    failure: list[BaseException] = []

    def callback(tensor: int, ask: bool, _user: Any) -> bool:
        try:
            name = (lib.ggml_get_name(tensor) or b"").decode("utf-8", "replace")
            if ask:
                return bool(want(name))
            found[name] = keep(name, _read(lib, tensor))
            return True
        except BaseException as exc:  # never let an exception cross into C
            failure.append(exc)
            return False  # stops the computation

    c_callback = llama_cpp.ggml_backend_sched_eval_callback(callback)

    def run() -> None:
        params = llama_cpp.llama_context_default_params()
        size = max(256, -(-n // 256) * 256)
        params.n_ctx = size
        params.n_batch = size if one_batch else BATCH
        params.n_ubatch = size if one_batch else BATCH
        params.n_seq_max = 1
        params.n_threads = engine.threads
        params.n_threads_batch = engine.threads
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.no_perf = True
        params.cb_eval = c_callback
        params.cb_eval_user_data = None
        ctx = llama_cpp.llama_init_from_model(engine.llama.model, params)
        if not ctx:
            raise ModelError("llama.cpp could not create a context for the capture")
        try:
            step = n if one_batch else BATCH
            for start in range(0, n, step):
                part = tokens[start : start + step]
                ids = (llama_cpp.llama_token * len(part))(*part)
                status = llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(ids, len(part)))
                if failure:
                    raise failure[0]
                if status != 0:
                    raise ModelError(f"llama.cpp could not evaluate the prompt (status {status})")
        finally:
            llama_cpp.llama_free(ctx)

    compute_thread.shared().call(run)
    return found
