"""Copies of a real GGUF (SmolLM2, Gemma 3) with another chat template or name.

The copy keeps the real tokenizer and (unless ``vocab_only``) the real weights, byte for byte,
so it renders, tokenizes and answers like the original except for what the test changed. The
metadata is rewritten with ``struct`` (the ``gguf`` package's reader takes seconds over a large
vocabulary); tensor infos and data are copied unchanged, since their offsets are relative to the
data section.
"""

from __future__ import annotations

import struct
from pathlib import Path

KEEP = object()  # keep the source's value
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


def _string(value: str) -> bytes:
    data = value.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _kv_string(key: str, value: str) -> bytes:
    return _string(key) + struct.pack("<I", _STRING) + _string(value)


def _skip_value(buf: bytes, pos: int, vtype: int) -> int:
    if vtype == _STRING:
        (n,) = struct.unpack_from("<Q", buf, pos)
        return pos + 8 + n
    if vtype == _ARRAY:
        sub, count = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if sub in _SCALAR_SIZES:
            return pos + count * _SCALAR_SIZES[sub]
        for _ in range(count):
            pos = _skip_value(buf, pos, sub)
        return pos
    return pos + _SCALAR_SIZES[vtype]


def copy_gguf(
    src: Path,
    dst: Path,
    *,
    template: object = KEEP,
    name: object = KEEP,
    vocab_only: bool = False,
    architecture: object = KEEP,
) -> Path:
    """Write ``dst``: ``src`` with ``tokenizer.chat_template`` set to ``template`` (``None``
    removes it), ``general.name`` to ``name`` and ``general.architecture`` to
    ``architecture`` (the ``<arch>.*`` keys keep their names), without tensors when
    ``vocab_only``."""
    buf = Path(src).read_bytes()
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", buf, 0)
    assert magic == b"GGUF" and version == 3
    pos = 24
    kept: list[bytes] = []
    alignment = 32
    for _ in range(n_kv):
        start = pos
        (klen,) = struct.unpack_from("<Q", buf, pos)
        key = buf[pos + 8 : pos + 8 + klen].decode("utf-8")
        pos += 8 + klen
        (vtype,) = struct.unpack_from("<I", buf, pos)
        pos = _skip_value(buf, pos + 4, vtype)
        if key == "general.alignment":
            (alignment,) = struct.unpack_from("<I", buf, pos - 4)
        if (
            (key == "tokenizer.chat_template" and template is not KEEP)
            or (key == "general.name" and name is not KEEP)
            or (key == "general.architecture" and architecture is not KEEP)
        ):
            continue
        kept.append(buf[start:pos])
    if isinstance(template, str):
        kept.append(_kv_string("tokenizer.chat_template", template))
    if isinstance(name, str):
        kept.append(_kv_string("general.name", name))
    if isinstance(architecture, str):
        kept.append(_kv_string("general.architecture", architecture))
    infos_start = pos
    for _ in range(n_tensors):
        (nlen,) = struct.unpack_from("<Q", buf, pos)
        pos += 8 + nlen
        (n_dims,) = struct.unpack_from("<I", buf, pos)
        pos += 4 + 8 * n_dims + 4 + 8
    infos = buf[infos_start:pos]
    data_start = -(-pos // alignment) * alignment
    tensors = 0 if vocab_only else n_tensors
    head = struct.pack("<4sIQQ", b"GGUF", 3, tensors, len(kept)) + b"".join(kept)
    with open(dst, "wb") as out:
        out.write(head)
        written = len(head)
        if tensors:
            out.write(infos)
            written += len(infos)
        out.write(b"\0" * (-written % alignment))
        if tensors:
            out.write(memoryview(buf)[data_start:])
    return dst
