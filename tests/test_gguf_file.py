"""The bounded GGUF reader: real files, truncated files, crafted headers."""

from __future__ import annotations

import struct

import pytest

from chatterm.errors import ModelError
from chatterm.gguf_file import read_gguf, shard_paths


def test_reads_starter_model_metadata(starter_path):
    info = read_gguf(starter_path)
    assert info.architecture == "llama"
    assert info.quantization == "Q4_1"
    assert info.context_length == 8192
    assert info.block_count == 30
    assert info.vocab_size == 49152
    assert "<|im_start|>" in info.chat_template
    assert 100e6 < info.parameter_count < 200e6
    assert info.kv_cache_bytes(2048) > 0


def test_truncated_file_is_rejected(starter_path, tmp_path):
    cut = tmp_path / "cut.gguf"
    data = starter_path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated"):
        read_gguf(cut)


def test_header_only_file_is_rejected(starter_path, tmp_path):
    cut = tmp_path / "head.gguf"
    cut.write_bytes(starter_path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="truncated"):
        read_gguf(cut)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"hello world, not a model at all", "magic"),
        (b"GGUF" + struct.pack("<IQQ", 99, 0, 0), "version 99"),
        (b"GGUF" + struct.pack("<IQQ", 3, 10**12, 10**12), "implausible"),
        # one metadata key whose string length points far past the end of the file
        (b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 10**9), "truncated"),
    ],
)
def test_crafted_headers_fail_fast(tmp_path, payload, reason):
    path = tmp_path / "bad.gguf"
    path.write_bytes(payload)
    with pytest.raises(ModelError, match=reason):
        read_gguf(path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        read_gguf(tmp_path / "nope.gguf")


def test_shard_paths_lists_every_shard(tmp_path):
    first = tmp_path / "m-00001-of-00003.gguf"
    assert [p.name for p in shard_paths(first)] == [
        "m-00001-of-00003.gguf",
        "m-00002-of-00003.gguf",
        "m-00003-of-00003.gguf",
    ]
    assert shard_paths(tmp_path / "single.gguf") == [tmp_path / "single.gguf"]
