"""The KV cache's number formats: what each costs in memory and what llama.cpp calls it.

Every token of the context keeps a key and a value vector per layer. In f16 (llama.cpp's
default) each number takes 2 bytes; quantized formats store blocks of 32 numbers with one
scale: ``q8_0`` in 34 bytes, ``q4_0`` in 18 (ggml's ``block_q8_0`` / ``block_q4_0``, ggml-common.h).
A quantized V cache needs flash attention (llama.cpp refuses it otherwise), which chatterm
turns on by default. ``chatterm lab kv-cache`` shows what the smaller formats cost in agreement
with f16 on the user's own model.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatterm.errors import SettingError


@dataclass(frozen=True)
class CacheType:
    """One KV cache format: its name, bytes per stored number, and ggml's type name."""

    name: str
    bytes_per_value: float
    ggml_name: str

    @property
    def quantized(self) -> bool:
        return self.name != "f16"


CACHE_TYPES: dict[str, CacheType] = {
    t.name: t
    for t in (
        CacheType("f16", 2.0, "GGML_TYPE_F16"),
        CacheType("q8_0", 34 / 32, "GGML_TYPE_Q8_0"),
        CacheType("q4_0", 18 / 32, "GGML_TYPE_Q4_0"),
    )
}
DEFAULT = "f16"


def cache_type(value: object, source: str = "--cache-type") -> CacheType:
    """The cache type named ``value``; :class:`SettingError` (exit 2) naming ``source``."""
    if isinstance(value, str) and value.strip().lower() in CACHE_TYPES:
        return CACHE_TYPES[value.strip().lower()]
    raise SettingError(f"{source} must be one of {', '.join(CACHE_TYPES)}, got {value!r}")


def ggml_type(kind: CacheType) -> int:
    """llama.cpp's number for ``kind`` (for ``type_k`` / ``type_v``); imports llama_cpp."""
    import llama_cpp

    return int(getattr(llama_cpp, kind.ggml_name))
