"""Read and check a GGUF file's header, metadata and tensor table without loading it.

A pure-``struct`` reader with bounds checks on every count and length: the ``gguf`` package's
reader hangs on some crafted files, and llama.cpp may abort on others, so every file is checked
here before it reaches llama.cpp. Large arrays (the tokenizer's vocabulary) are skipped, keeping
only their length.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatterm.errors import ModelError
from chatterm.safe_files import NotRegularFileError, open_regular

MAGIC = b"GGUF"
_U64 = struct.Struct("<Q")
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY, _UINT32 = 8, 9, 4
_INTEGERS = frozenset({0, 1, 2, 3, 4, 5, 10, 11})
_KEEP_ARRAY_ITEMS = 64

# Bounds checked before anything is read or allocated. A sparse file can claim a terabyte, so
# "fits in the file" alone does not bound the work: every count also has a ceiling far above
# what real models use (the largest vocabularies hold ~262k tokens, merges ~300k, tensors a
# few thousand).
# Tokens that mark chat turns in the formats chatterm falls back to (see engine/chat_formats.py).
TURN_MARKERS = frozenset({b"<|im_start|>", b"<start_of_turn>", b"<|start_header_id|>"})
_MARKER_LENGTHS = frozenset(len(m) for m in TURN_MARKERS)
_MAX_KV = 100_000
_MAX_TENSORS = 1 << 18
_MAX_DIMS = 4  # GGML_MAX_DIMS
_MAX_KEY_BYTES = 4096
_MAX_STRING_BYTES = 16 << 20
_MAX_ARRAY_ITEMS = 1 << 22
_MAX_TOTAL_ITEMS = 1 << 23
_MAX_COUNT = 1 << 32  # any count or size in the metadata we rely on (layers, heads, context)

# ggml tensor types: (elements per block, bytes per block), for the truncation check.
_GGML_BLOCKS: dict[int, tuple[int, int]] = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 36),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    34: (256, 54),
    35: (256, 66),
    39: (32, 17),
}

FILE_TYPES = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
}


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class GGUFInfo:
    """What a GGUF file says about itself. ``metadata`` holds scalars, strings and short arrays;
    longer arrays appear in ``array_lengths`` only."""

    path: Path
    version: int
    metadata: dict[str, Any]
    array_lengths: dict[str, int] = field(default_factory=dict)
    tensors: list[TensorInfo] = field(default_factory=list)
    file_size: int = 0
    max_token_bytes: int = 0
    """The longest token text in the vocabulary (bytes): a text of ``B`` bytes needs at least
    ``B / max_token_bytes`` tokens, which proves oversized input cannot fit before tokenizing."""
    turn_markers: frozenset[str] = frozenset()
    """Which of :data:`TURN_MARKERS` the vocabulary holds: what a chat format can be chosen from
    when the file has no chat template, without asking llama.cpp to read the vocabulary."""
    data_start: int = 0
    """Where the tensor data begins in the file (bytes); a tensor's ``offset`` counts from here."""

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        return str(self.get("general.architecture", "unknown"))

    def arch_value(self, key: str, default: Any = None) -> Any:
        return self.get(f"{self.architecture}.{key}", default)

    @property
    def name(self) -> str | None:
        return self.get("general.name")

    @property
    def context_length(self) -> int | None:
        return self.arch_value("context_length")

    @property
    def block_count(self) -> int | None:
        return self.arch_value("block_count")

    @property
    def chat_template(self) -> str | None:
        return self.get("tokenizer.chat_template")

    @property
    def tokenizer_model(self) -> str | None:
        return self.get("tokenizer.ggml.model")

    @property
    def vocab_size(self) -> int | None:
        return self.array_lengths.get("tokenizer.ggml.tokens")

    @property
    def quantization(self) -> str | None:
        ftype = self.get("general.file_type")
        return FILE_TYPES.get(ftype, f"type {ftype}") if ftype is not None else None

    @property
    def parameter_count(self) -> int:
        return sum(t.elements for t in self.tensors)

    @property
    def split_count(self) -> int:
        return int(self.get("split.count", 1) or 1)

    def kv_cache_bytes(self, n_ctx: int, bytes_per_value: float = 2.0) -> int:
        """Bytes of a KV cache for ``n_ctx`` tokens: 2 (K and V) x layers x ctx x kv width x
        ``bytes_per_value`` (2 for f16; see :mod:`chatterm.cache_types` for the others)."""
        layers = self.block_count or 0
        heads = largest_count(self.arch_value("attention.head_count")) or 0
        kv_heads = largest_count(self.arch_value("attention.head_count_kv")) or heads
        embd = self.arch_value("embedding_length") or 0
        head_dim = self.arch_value("attention.key_length") or (embd // heads if heads else 0)
        return int(2 * layers * n_ctx * kv_heads * head_dim * bytes_per_value)


def largest_count(value: int | list[int] | None) -> int | None:
    """A head count, or the largest of per-layer head counts (some architectures)."""
    if isinstance(value, list):
        return max(value, default=None)
    return value


class _Reader:
    """Bounds-checked reads at an offset into a memory map (no syscall per field: the
    vocabulary alone is ~50,000 strings). Every length and count is checked against the bytes
    left and a ceiling before it is used."""

    def __init__(self, buf: Any, size: int, path: Path) -> None:
        self.buf, self.size, self.path, self.pos = buf, size, path, 0
        self.items_left = _MAX_TOTAL_ITEMS
        self.bytes_left = _MAX_STRING_BYTES * 4  # for all the strings kept, together
        self.longest = 0  # the longest string skipped by the last skip_strings
        self.markers: set[bytes] = set()  # TURN_MARKERS seen by skip_strings

    def fail(self, why: str) -> ModelError:
        return ModelError(f"{self.path} is not a usable GGUF file: {why}")

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail("it is truncated or corrupt (a length runs past the end of the file)")

    def read(self, n: int) -> bytes:
        self._need(n)
        data = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return data

    def unpack(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        self._need(n)
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return value

    def string(self, limit: int = _MAX_STRING_BYTES, what: str = "a string") -> str:
        n = self.unpack("<Q")
        if n > limit or n > self.bytes_left:
            raise self.fail(f"{what} claims {n:,} bytes (at most {limit:,} expected)")
        self.bytes_left -= n
        return self.read(n).decode("utf-8", errors="replace")

    def count(self, n: int, item_bytes: int, what: str) -> int:
        """Check a claimed number of items against the ceilings and the bytes left."""
        if n > _MAX_ARRAY_ITEMS or n > self.items_left:
            raise self.fail(f"{what} claims {n:,} items")
        if n * item_bytes > self.size - self.pos:
            raise self.fail(
                f"it is truncated or corrupt ({what} claims {n:,} items, more than the file holds)"
            )
        self.items_left -= n
        return n

    def skip(self, n: int) -> None:
        self._need(n)
        self.pos += n

    def skip_strings(self, count: int) -> None:
        # The tokenizer's vocabulary and merges: ~100k strings on every model load.
        unpack_from, buf, size, pos = _U64.unpack_from, self.buf, self.size, self.pos
        longest = 0
        for _ in range(count):
            if pos + 8 > size:
                raise self.fail("it is truncated or corrupt (a string runs past the end)")
            n = unpack_from(buf, pos)[0]
            if n in _MARKER_LENGTHS and buf[pos + 8 : pos + 8 + n] in TURN_MARKERS:
                self.markers.add(bytes(buf[pos + 8 : pos + 8 + n]))
            if n > longest:
                if n > _MAX_STRING_BYTES:
                    raise self.fail(f"a string claims {n:,} bytes")
                longest = n
            pos += 8 + n
        if pos > size:
            raise self.fail("it is truncated or corrupt (a string runs past the end)")
        self.pos = pos
        self.longest = longest

    def value(self, vtype: int, key: str, lengths: dict[str, int]) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string(what=f"metadata {key!r}")
        if vtype == _ARRAY:
            itype = self.unpack("<I")
            if itype not in _SCALARS and itype != _STRING:
                raise self.fail(f"array {key!r} has unsupported item type {itype}")
            item_bytes = 8 if itype == _STRING else struct.calcsize(_SCALARS[itype])
            count = self.count(self.unpack("<Q"), item_bytes, f"array {key!r}")
            lengths[key] = count
            if itype in _SCALARS and count > _KEEP_ARRAY_ITEMS:
                self.skip(count * item_bytes)
                return None
            if itype == _STRING and count > _KEEP_ARRAY_ITEMS:
                self.skip_strings(count)
                return None
            return [self.value(itype, key, {}) for _ in range(count)]
        raise self.fail(f"metadata {key!r} has unknown value type {vtype}")


def _file_key(path: Path) -> tuple[str, int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def read_gguf(path: str | Path) -> GGUFInfo:
    """Parse and sanity-check ``path``; raise :class:`ModelError` with a one-line reason.

    Only a regular file is opened, without blocking (a FIFO given as a model would otherwise
    hang); every count and length is bounded before it is used, and the metadata chatterm and
    llama.cpp rely on is type-checked (see :func:`_check_types`), so llama.cpp never sees a
    file this refuses. Results are cached per file identity (device, inode, size, mtime)."""
    path = Path(path)
    key = _file_key(path)
    return _read_cached(key) if key is not None else _read(path)


@functools.lru_cache(maxsize=8)
def _read_cached(key: tuple[str, int, int, int, int]) -> GGUFInfo:
    return _read(Path(key[0]))


def _read(path: Path) -> GGUFInfo:
    import mmap

    try:
        fd = open_regular(path)
    except FileNotFoundError:
        raise ModelError(f"model file not found: {path}") from None
    except NotRegularFileError as exc:
        raise ModelError(f"{path} is {exc.strerror}, not a GGUF file") from None
    except IsADirectoryError:
        raise ModelError(f"{path} is a directory, not a GGUF file") from None
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        if size < 24 or fh.read(4) != MAGIC:
            raise ModelError(
                f"{path} is not a usable GGUF file: it does not start with the GGUF magic bytes"
            )
        try:
            with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as buf:
                info, data_start = _parse(_Reader(buf, size, path))
        except (OSError, ValueError) as exc:  # mmap refused (e.g. the file shrank meanwhile)
            raise ModelError(f"cannot read {path}: {exc}") from None
    _check_tensor_data(info, data_start)
    info.data_start = data_start
    return info


def _parse(r: _Reader) -> tuple[GGUFInfo, int]:
    r.pos = 4
    version = r.unpack("<I")
    if version not in (2, 3):
        raise r.fail(f"GGUF version {version} is not supported (2 or 3 expected)")
    n_tensors = r.unpack("<Q")
    n_kv = r.unpack("<Q")
    # each metadata entry takes at least 13 bytes, each tensor entry at least 24
    if n_kv > _MAX_KV or n_tensors > _MAX_TENSORS:
        raise r.fail(f"implausible header ({n_tensors} tensors, {n_kv} metadata keys)")
    if n_kv * 13 + n_tensors * 24 > r.size - r.pos:
        raise r.fail(
            f"it is truncated or corrupt (the header claims {n_tensors} tensors and {n_kv} "
            "metadata keys, more than the file holds)"
        )
    metadata: dict[str, Any] = {}
    types: dict[str, tuple[int, int | None]] = {}
    lengths: dict[str, int] = {}
    max_token_bytes = 0
    markers: frozenset[str] = frozenset()
    for _ in range(n_kv):
        key = r.string(_MAX_KEY_BYTES, "a metadata key")
        vtype = r.unpack("<I")
        start = r.pos
        r.longest, r.markers = 0, set()
        metadata[key] = r.value(vtype, key, lengths)
        itype = struct.unpack_from("<I", r.buf, start)[0] if vtype == _ARRAY else None
        types[key] = (vtype, itype)
        if key == "tokenizer.ggml.tokens" and types[key] == (_ARRAY, _STRING):
            value = metadata[key]
            max_token_bytes = r.longest if value is None else _longest(value)
            if value is not None:  # a short vocabulary is kept whole
                r.markers |= {m for m in TURN_MARKERS if m.decode() in value}
            markers = frozenset(m.decode() for m in r.markers)
    _check_types(r, metadata, types)
    tensors: list[TensorInfo] = []
    for _ in range(n_tensors):
        name = r.string(_MAX_KEY_BYTES, "a tensor name")
        n_dims = r.unpack("<I")
        if n_dims > _MAX_DIMS:
            raise r.fail(f"tensor {name!r} has {n_dims} dimensions")
        shape = tuple(r.unpack("<Q") for _ in range(n_dims))
        tensors.append(TensorInfo(name, shape, r.unpack("<I"), r.unpack("<Q")))
    alignment = metadata.get("general.alignment", 32)
    data_start = -(-r.pos // alignment) * alignment
    info = GGUFInfo(r.path, version, metadata, lengths, tensors, r.size, max_token_bytes, markers)
    return info, data_start


def _longest(strings: Any) -> int:
    return max((len(str(s).encode("utf-8")) for s in strings or ()), default=0)


# What chatterm (and llama.cpp) read from the metadata, declared once with its GGUF type. A
# value of another type is refused here, with the key named, instead of surfacing later as a
# traceback (``int("abc")``) or an abort inside llama.cpp (``general.alignment`` must be u32).
_STR, _INT, _INTS = "a string", "an integer", "an integer or an array of integers"
_KEY_TYPES: dict[str, str] = {
    "general.architecture": _STR,
    "general.name": _STR,
    "general.file_type": _INT,
    "split.count": _INT,
    "tokenizer.chat_template": _STR,
    "tokenizer.ggml.model": _STR,
    "tokenizer.ggml.pre": _STR,
}
_ARCH_KEY_TYPES: dict[str, str] = {
    "context_length": _INT,
    "block_count": _INT,
    "embedding_length": _INT,
    "attention.head_count": _INTS,
    "attention.head_count_kv": _INTS,
    "attention.key_length": _INT,
    "attention.value_length": _INT,
}
_TYPE_NAMES = {6: "a float", 12: "a float", 7: "a boolean", _STRING: "a string", _ARRAY: "an array"}


def _check_types(
    r: _Reader, metadata: dict[str, Any], types: dict[str, tuple[int, int | None]]
) -> None:
    """Refuse metadata of the wrong type or out of range."""

    def expect(key: str, kind: str) -> None:
        if key not in types:
            return
        vtype, itype = types[key]
        value = metadata[key]
        ok = (
            (kind == _STR and vtype == _STRING)
            or (kind in (_INT, _INTS) and vtype in _INTEGERS and 0 <= value <= _MAX_COUNT)
            or (
                kind == _INTS
                and vtype == _ARRAY
                and itype in _INTEGERS
                and all(0 <= v <= _MAX_COUNT for v in value or ())
            )
        )
        if not ok:
            got = _TYPE_NAMES.get(vtype, f"the integer {value}" if vtype in _INTEGERS else "")
            raise r.fail(f"metadata {key!r} is {got or 'of GGUF type ' + str(vtype)}, not {kind}")

    for key, kind in _KEY_TYPES.items():
        expect(key, kind)
    arch = metadata.get("general.architecture", "unknown")
    for key, kind in _ARCH_KEY_TYPES.items():
        expect(f"{arch}.{key}", kind)
    if "general.alignment" in types:
        alignment = metadata["general.alignment"]
        is_u32 = types["general.alignment"][0] == _UINT32
        if not is_u32 or alignment <= 0 or alignment & (alignment - 1):
            raise r.fail("metadata 'general.alignment' must be a power of two stored as uint32")
    if "tokenizer.ggml.tokens" in types and types["tokenizer.ggml.tokens"] != (_ARRAY, _STRING):
        raise r.fail("metadata 'tokenizer.ggml.tokens' is not an array of strings")


def _check_tensor_data(info: GGUFInfo, data_start: int) -> None:
    if not info.tensors:  # a vocab-only GGUF (llama.cpp ships them) ends after its metadata
        return
    end = data_start
    for t in info.tensors:
        block = _GGML_BLOCKS.get(t.ggml_type)
        nbytes = (t.elements // block[0]) * block[1] if block else 0
        end = max(end, data_start + t.offset + nbytes)
    if end > info.file_size:
        missing = end - info.file_size
        raise ModelError(
            f"{info.path} is not a usable GGUF file: it is truncated "
            f"({missing:,} bytes of tensor data missing)"
        )


def shard_paths(path: str | Path) -> list[Path]:
    """All shards of a split GGUF given its first shard (``…-00001-of-00003.gguf``)."""
    import re

    path = Path(path)
    m = re.match(r"^(.*)-(\d{5})-of-(\d{5})\.gguf$", path.name)
    if not m:
        return [path]
    total = int(m.group(3))
    stem = m.group(1)
    return [path.with_name(f"{stem}-{i:05d}-of-{total:05d}.gguf") for i in range(1, total + 1)]
