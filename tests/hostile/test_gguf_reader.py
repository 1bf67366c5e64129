"""Hostile GGUF files: bounded before anything is read, typed before anything is used, and
refused before llama.cpp ever sees them (issue 16, parts 1, 3 and 4)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatterm.errors import ModelError
from chatterm.gguf_file import GGUFInfo, read_gguf
from tests.hostile.gguf_craft import TYPE_IDS, gguf, kv, with_override, write
from tests.hostile.limits import assert_one_line_error, bounded, run_limited

FAST = settings(
    max_examples=150,
    deadline=None,  # the time limit is bounded()'s, which fails a hang instead of flaking
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def read_or_refuse(path: Path, case: str) -> GGUFInfo | None:
    """Read ``path`` under the case limits: a GGUFInfo whose typed fields hold their types,
    or a one-line ModelError naming the file."""
    with bounded(case):
        try:
            info = read_gguf(path)
        except ModelError as exc:
            message = str(exc)
            assert "\n" not in message and str(path) in message
            return None
    assert_typed(info)
    return info


def assert_typed(info: GGUFInfo) -> None:
    assert isinstance(info.architecture, str)
    for value in (info.context_length, info.block_count, info.vocab_size):
        assert value is None or (isinstance(value, int) and value >= 0)
    assert info.chat_template is None or isinstance(info.chat_template, str)
    assert info.quantization is None or isinstance(info.quantization, str)
    assert isinstance(info.kv_cache_bytes(4096), int)
    assert isinstance(info.split_count, int) and isinstance(info.parameter_count, int)
    assert isinstance(info.max_token_bytes, int)


@FAST
@given(body=st.binary(max_size=600), version=st.sampled_from([2, 3]))
def test_random_bytes_after_the_magic_are_read_or_refused(tmp_path, body, version):
    path = write(tmp_path / "random.gguf", b"GGUF" + struct.pack("<I", version) + body)
    read_or_refuse(path, "gguf: random bytes")


KEYS = st.sampled_from(
    [
        "general.architecture",
        "general.name",
        "general.alignment",
        "general.file_type",
        "split.count",
        "llama.context_length",
        "llama.block_count",
        "llama.embedding_length",
        "llama.attention.head_count",
        "llama.attention.head_count_kv",
        "llama.attention.key_length",
        "tokenizer.chat_template",
        "tokenizer.ggml.model",
        "tokenizer.ggml.tokens",
        "some.other.key",
    ]
)
SCALARS = st.one_of(
    st.tuples(st.just("u32"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("i32"), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("u64"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("f32"), st.floats(width=32, allow_nan=True)),
    st.tuples(st.just("bool"), st.booleans()),
    st.tuples(st.just("str"), st.text(max_size=20)),
)
VALUES = st.one_of(
    SCALARS,
    st.tuples(st.just("arr_u32"), st.lists(st.integers(0, 2**32 - 1), max_size=70)),
    st.tuples(st.just("arr_str"), st.lists(st.text(max_size=8), max_size=70)),
)


def _entry(key: str, typed: tuple) -> tuple:
    kind, item = typed
    if kind == "arr_u32":
        return key, ("arr", "u32", item), None
    if kind == "arr_str":
        return key, ("arr", "str", item), None
    return key, kind, item


@FAST
@given(entries=st.lists(st.tuples(KEYS, VALUES), max_size=12))
def test_metadata_of_any_type_is_typed_or_refused(tmp_path, entries):
    """Any key with any value type: what the reader returns is typed, or it refuses."""
    kvs = [_entry(key, typed) for key, typed in entries]
    path = write(tmp_path / "typed.gguf", gguf(kvs))
    read_or_refuse(path, "gguf: typed metadata")


@FAST
@given(
    n_tensors=st.integers(0, 2**64 - 1),
    n_kv=st.integers(0, 2**64 - 1),
    claim=st.integers(0, 2**64 - 1),
    itype=st.sampled_from(sorted(TYPE_IDS.values()) + [13, 2**32 - 1]),
)
def test_lying_counts_and_lengths_are_refused_at_once(tmp_path, n_tensors, n_kv, claim, itype):
    """Counts in the header, an array's item count and a string's length, each as large as
    the format allows: refused before anything that size is read or allocated."""
    array = kv("big", ("raw", TYPE_IDS["arr"], struct.pack("<IQ", itype, claim)))
    string = struct.pack("<Q", claim) + b"x" * 16
    for name, data in (
        ("counts", gguf(n_tensors=n_tensors, n_kv=n_kv)),
        ("array", gguf([], n_kv=1, tail=array[: len(array)] + b"\0" * 64)),
        ("key", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string),
    ):
        read_or_refuse(write(tmp_path / f"{name}.gguf", data), f"gguf: lying {name}")


SPARSE = 512 << 20


@pytest.mark.parametrize(
    ("what", "entry"),
    [
        ("10^9 bytes", ("raw", TYPE_IDS["arr"], struct.pack("<IQ", TYPE_IDS["u8"], 10**9))),
        ("10^9 strings", ("raw", TYPE_IDS["arr"], struct.pack("<IQ", TYPE_IDS["str"], 10**9))),
        ("2^22+1 strings", ("raw", TYPE_IDS["arr"], struct.pack("<IQ", 8, (1 << 22) + 1))),
        ("a 400 MB string", ("raw", TYPE_IDS["str"], struct.pack("<Q", 400 << 20))),
    ],
)
def test_sparse_file_with_a_huge_claim_is_refused_fast(tmp_path, what, entry):
    """A sparse file makes "fits in the file" true for claims of any size: the ceilings
    must refuse them before the parser loops or allocates."""
    path = tmp_path / "sparse.gguf"
    with path.open("wb") as fh:
        fh.write(gguf([("tokenizer.ggml.merges", entry, None)]))
        fh.truncate(SPARSE)
    assert read_or_refuse(path, f"gguf: sparse {what}") is None


WRONG_TYPES = [
    ("alignment 0.5", with_override("general.alignment", "f32", 0.5), "general.alignment"),
    ("alignment 'abc'", with_override("general.alignment", "str", "abc"), "general.alignment"),
    ("alignment 3", with_override("general.alignment", "u32", 3), "general.alignment"),
    ("string context", with_override("llama.context_length", "str", "8192"), "context_length"),
    ("string heads", with_override("llama.attention.head_count", "str", "4"), "head_count"),
    (
        "array file_type",
        with_override("general.file_type", ("arr", "u32", [1, 2]), None),
        "file_type",
    ),
    ("u32 template", with_override("tokenizer.chat_template", "u32", 7), "chat_template"),
    ("int tokens", with_override("tokenizer.ggml.tokens", "u32", 7), "tokenizer.ggml.tokens"),
    ("bool blocks", with_override("llama.block_count", "bool", True), "block_count"),
]


@pytest.mark.parametrize(("what", "kvs", "key"), WRONG_TYPES, ids=[w[0] for w in WRONG_TYPES])
def test_metadata_of_the_wrong_type_is_named_in_one_line(tmp_path, what, kvs, key):
    path = write(tmp_path / "wrong.gguf", gguf(kvs))
    with bounded(f"gguf: {what}"), pytest.raises(ModelError, match=key.replace(".", r"\.")):
        read_gguf(path)


@pytest.mark.parametrize("command", ["show", "ask"])
def test_cli_refuses_a_wrong_typed_model_before_llama_cpp(tmp_path, command):
    """exit 3, one line naming the key; llama.cpp (which aborts on a non-u32 alignment) is
    never reached."""
    path = write(tmp_path / "wrong.gguf", gguf(with_override("general.alignment", "str", "x")))
    args = ["models", "show", str(path)] if command == "show" else ["ask", "-m", str(path), "hi"]
    result = run_limited(*args, case=f"cli: {command} wrong-typed GGUF")
    assert_one_line_error(result, 3, "general.alignment")


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    "args",
    [
        ("ask", "-m", "{fifo}", "hi"),
        ("models", "add", "{fifo}"),
        ("models", "show", "{fifo}"),
        ("tokenize", "-m", "{fifo}", "hi"),
    ],
    ids=["ask", "models add", "models show", "tokenize"],
)
def test_a_fifo_given_as_a_model_is_refused_without_blocking(fifo, args):
    result = run_limited(
        *(a.format(fifo=fifo) for a in args), timeout=30, case=f"cli: FIFO {args[0]}"
    )
    assert_one_line_error(result, 3, "FIFO")


TENSOR = st.tuples(
    st.text(max_size=8),
    st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 64), max_size=6),
    st.integers(0, 2**32 - 1) | st.integers(0, 40),
    st.integers(0, 2**64 - 1) | st.integers(0, 4096),
)


@FAST
@given(tensors=st.lists(TENSOR, max_size=4), entries=st.lists(st.tuples(KEYS, VALUES), max_size=4))
def test_any_tensor_table_is_read_or_refused_and_its_card_built(tmp_path, tensors, entries):
    """Shapes, types and offsets as large as the format allows, then what `models show` does
    with the result (the model card: parameters, KV-cache and RAM estimates)."""
    from chatterm.catalog import ModelEntry
    from chatterm.model_card import build_card

    table = b"".join(
        string_bytes(name)
        + struct.pack("<I", len(shape))
        + b"".join(struct.pack("<Q", d) for d in shape)
        + struct.pack("<IQ", ggml_type, offset)
        for name, shape, ggml_type, offset in tensors
    )
    kvs = [_entry(key, typed) for key, typed in entries]
    data = gguf(kvs, n_tensors=len(tensors), tail=table + b"\0" * 256)
    path = write(tmp_path / "tensors.gguf", data)
    info = read_or_refuse(path, "gguf: tensor table")
    if info is not None:
        with bounded("gguf: model card"):
            card = build_card(ModelEntry("t", str(path)), 4096)
        assert isinstance(card.ram_bytes, int) and isinstance(card.parameters, int)


def string_bytes(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw
