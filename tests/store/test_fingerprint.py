"""The cheap model-file fingerprint recorded with each reply."""

from __future__ import annotations

import shutil

from chatterm.store import model_fingerprint


def test_same_bytes_give_the_same_fingerprint_anywhere(tmp_path, starter_path):
    copy = tmp_path / "copy.gguf"
    shutil.copyfile(starter_path, copy)
    assert model_fingerprint(copy) == model_fingerprint(starter_path)
    assert model_fingerprint(copy).startswith("sample-sha256:")


def test_changed_tail_or_size_changes_it(tmp_path):
    data = bytearray(b"a" * (5 << 20))
    first = tmp_path / "first.gguf"
    first.write_bytes(bytes(data))
    before = model_fingerprint(first)
    data[-1:] = b"b"
    changed = tmp_path / "changed.gguf"
    changed.write_bytes(bytes(data))
    longer = tmp_path / "longer.gguf"
    longer.write_bytes(bytes(data) + b"a")
    assert len({before, model_fingerprint(changed), model_fingerprint(longer)}) == 3


def test_small_and_missing_files(tmp_path):
    small = tmp_path / "small.gguf"
    small.write_bytes(b"GGUF")
    assert model_fingerprint(small)
    assert model_fingerprint(tmp_path / "missing.gguf") is None
