"""The one check of a context-window size, wherever it comes from (config.toml, the
environment, ``--ctx-size``), made before anything is allocated.

Three questions, in order: is it a whole number in range (else a usage error, exit 2); would
the weights and the KV cache for it fit in this machine's memory (else a usage error saying how
much it would need: llama.cpp would otherwise allocate until the kernel kills it); and is it
longer than the model was trained for (a note: it runs, but replies past that length degrade).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatterm.errors import SettingError

if TYPE_CHECKING:
    from chatterm.cache_types import CacheType
    from chatterm.gguf_file import GGUFInfo

MIN_CTX = 256
"""llama.cpp pads every context to a multiple of 256 cells, while llama-cpp-python sizes its token
buffer by the size asked for: a smaller window ran out of buffer mid-reply (``index 64 is out of
bounds``). 256 also leaves room for a template's scaffold, a short question and a reply."""
MAX_CTX = 1 << 24
"""16,777,216 tokens: above every model published so far (10M), below sizes whose arithmetic
alone overflows llama.cpp's 32-bit token positions."""


BATCH_TOKENS = 512
"""The engine's batch size: llama.cpp's attention buffers for one batch hold about
``n_ctx x batch`` 4-byte values (the mask and scores), on top of the KV cache."""


def check_ctx_size(value: Any, source: str = "--ctx-size") -> int:
    """``value`` as a context-window size in tokens, or :class:`SettingError` naming
    ``source`` (``--ctx-size``, ``CHATTERM_CTX_SIZE``, ``config.toml [engine] ctx_size``)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            number = None
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    if number is None:
        raise SettingError(f"{source} must be a whole number of tokens, got {value!r}")
    if not MIN_CTX <= number <= MAX_CTX:
        shown = f"{number:,}" if abs(number) < 10**30 else f"{number:.3e}"
        raise SettingError(
            f"{source} must be between {MIN_CTX} and {MAX_CTX:,} tokens, got {shown}"
        )
    return number


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"  # unreachable


def plan(
    info: GGUFInfo,
    n_ctx: int,
    *,
    source: str = "the context window",
    cache_type: CacheType | None = None,
) -> str | None:
    """Check ``n_ctx`` for the model described by ``info`` before llama.cpp allocates it.

    Raises :class:`SettingError` when it is out of range or when the weights plus a KV cache
    of ``n_ctx`` tokens in ``cache_type`` (default f16) exceed the memory this process may use
    (physical memory, a cgroup limit or an address-space limit, whichever is smallest).
    Returns a note when ``n_ctx`` is longer than the model's trained context, else ``None``."""
    from chatterm.hardware import memory_limit

    n_ctx = check_ctx_size(n_ctx, source)
    kv = info.kv_cache_bytes(n_ctx, cache_type.bytes_per_value if cache_type else 2.0)
    work = n_ctx * BATCH_TOKENS * 4
    need = kv + info.file_size + work
    limit = memory_limit()
    if limit is not None and need > limit[0]:
        raise SettingError(
            f"a {n_ctx:,}-token context window needs about {_size(need)} of memory "
            f"({_size(info.file_size)} of weights, {_size(kv)} of KV cache, {_size(work)} of "
            f"attention buffers), but {limit[1]} is {_size(limit[0])}; lower --ctx-size "
            "(ctx_size in config.toml)"
        )
    trained = info.context_length
    if trained and n_ctx > trained:
        return (
            f"the context window ({n_ctx:,} tokens) is longer than the {trained:,} tokens this "
            "model was trained on; replies may degrade past that length"
        )
    return None
