"""Crafted GGUF files, written with ``struct``: whatever the header claims, nothing else.

``gguf(kvs, tensors)`` lays out a GGUF v3 file from ``(key, type, value)`` triples; values
are packed by type (``"str"``, ``"u32"``, ``"i32"``, ``"u64"``, ``"f32"``, ``"bool"``,
``("arr", item_type, items)``) or given as raw bytes with ``("raw", type_id, bytes)``.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

TYPE_IDS = {
    "u8": 0,
    "i8": 1,
    "u16": 2,
    "i16": 3,
    "u32": 4,
    "i32": 5,
    "f32": 6,
    "bool": 7,
    "str": 8,
    "arr": 9,
    "u64": 10,
    "i64": 11,
    "f64": 12,
}
FORMATS = {
    "u8": "<B",
    "i8": "<b",
    "u16": "<H",
    "i16": "<h",
    "u32": "<I",
    "i32": "<i",
    "f32": "<f",
    "bool": "<?",
    "u64": "<Q",
    "i64": "<q",
    "f64": "<d",
}


def string(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def value(kind: Any, item: Any) -> bytes:
    if kind == "str":
        return string(item)
    if isinstance(kind, tuple) and kind[0] == "arr":
        _, itype, items = kind
        body = b"".join(value(itype, x) for x in items)
        return struct.pack("<IQ", TYPE_IDS[itype], len(items)) + body
    return struct.pack(FORMATS[kind], item)


def kv(key: str, kind: Any, item: Any = None) -> bytes:
    if isinstance(kind, tuple) and kind[0] == "raw":
        return string(key) + struct.pack("<I", kind[1]) + kind[2]
    type_id = TYPE_IDS["arr"] if isinstance(kind, tuple) else TYPE_IDS[kind]
    return string(key) + struct.pack("<I", type_id) + value(kind, item)


BASE = [
    ("general.architecture", "str", "llama"),
    ("general.name", "str", "crafted"),
    ("llama.context_length", "u32", 2048),
    ("llama.block_count", "u32", 2),
    ("llama.embedding_length", "u32", 64),
    ("llama.attention.head_count", "u32", 4),
    ("tokenizer.ggml.model", "str", "gpt2"),
    ("tokenizer.ggml.tokens", ("arr", "str", ["a", "b", "c"]), None),
]


def gguf(
    kvs: list[tuple[str, Any, Any]] | None = None,
    *,
    n_tensors: int | None = None,
    n_kv: int | None = None,
    tail: bytes = b"",
    version: int = 3,
) -> bytes:
    """A GGUF image: the header (counts overridable, to lie), the metadata, then ``tail``."""
    kvs = BASE if kvs is None else kvs
    body = b"".join(kv(k, t, v) for k, t, v in kvs)
    head = b"GGUF" + struct.pack(
        "<IQQ", version, 0 if n_tensors is None else n_tensors, len(kvs) if n_kv is None else n_kv
    )
    return head + body + tail


def with_override(key: str, kind: Any, item: Any = None) -> list[tuple[str, Any, Any]]:
    """The base metadata with ``key`` replaced (or added) with another type or value."""
    kept = [(k, t, v) for k, t, v in BASE if k != key]
    return kept + [(key, kind, item)]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
