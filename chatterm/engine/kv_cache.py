"""Saved KV states of conversations, so a reopened chat does not re-prefill its history.

Prefilling a 1,500-token history takes ~10 s on two cores; loading its saved KV state takes tens
of milliseconds. After a reply the engine saves the context's state (llama.cpp's
``llama_state_save_file``: the KV cells in use plus the token ids) and a small JSON index entry
beside it holding those token ids. A fresh process whose prompt starts with a saved state's
tokens loads the entry with the longest common prefix and only evaluates the rest.

Layout: ``<kv dir>/<identity>/<token hash>.kv`` with ``<token hash>.json`` beside it. The
identity hashes everything a state depends on (model file, library version, context size, KV
types, flash attention, GPU layers), because ``llama_state_load_file`` accepts some mismatched
states and then computes garbage. Each entry is written to a temporary name and renamed, so a
crash never leaves a half-written entry under a real name and processes never see each other's
partial files. Use is recorded in the state file's mtime; the whole directory is kept under a
size cap by deleting the least recently used entries. A file that fails to load is deleted and
the prompt is prefilled as if nothing had been cached.

We avoid llama-cpp-python's ``save_state()`` pickles and ``LlamaDiskCache``: they carry ~100 MB
of unused logits per state.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import hashlib
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 1
STATE_SUFFIX = ".kv"
META_SUFFIX = ".json"
# Temporary files older than this were left by a killed process.
STALE_TMP_S = 3600.0


@dataclass(frozen=True)
class CacheEntry:
    """One saved state: its files, the token ids its KV cells hold, and its size in bytes."""

    state_path: Path
    meta_path: Path
    tokens: tuple[int, ...]
    size: int


def identity_key(identity: Mapping[str, Any]) -> str:
    """A short stable name for everything a saved state depends on."""
    blob = json.dumps({"format": FORMAT, **identity}, sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=12).hexdigest()


def tokens_key(tokens: Sequence[int]) -> str:
    return hashlib.blake2b(array.array("i", tokens).tobytes(), digest_size=16).hexdigest()


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class KVStateCache:
    """A directory of saved KV states with a size cap and least-recently-used eviction.

    ``min_tokens``: states shorter than this are neither saved nor loaded (prefilling them is
    about as fast as reading a file). ``min_gain``: a saved state is loaded only when it covers
    this many more prompt tokens than the KV cache already in memory.
    """

    def __init__(
        self,
        directory: str | Path,
        max_bytes: int,
        *,
        min_tokens: int = 256,
        min_gain: int = 32,
    ) -> None:
        self.directory = Path(directory)
        self.max_bytes = int(max_bytes)
        self.min_tokens = min_tokens
        self.min_gain = min_gain
        # Parsed index files by path, valid while their (mtime, size) stays the same: an
        # entry's files never change once written (its name is the hash of its tokens), so a
        # long chat looks up its states with a few stat() calls per turn instead of re-reading
        # every JSON file.
        self._parsed: dict[Path, tuple[tuple[int, int], int, tuple[int, ...]]] = {}

    # -- index ---------------------------------------------------------------------------

    def _dir(self, key: str) -> Path:
        return self.directory / key

    def entries(self, key: str) -> list[CacheEntry]:
        """The readable entries saved under identity ``key``; broken index files are removed."""
        folder = self._dir(key)
        try:
            metas = [p for p in folder.iterdir() if p.suffix == META_SUFFIX]
        except OSError:
            return []
        found = []
        for meta in metas:
            state = meta.with_suffix(STATE_SUFFIX)
            try:
                st = meta.stat()
                size = state.stat().st_size
                stamp = (st.st_mtime_ns, st.st_size)
                cached = self._parsed.get(meta)
                if cached is not None and cached[0] == stamp:
                    recorded, tokens = cached[1], cached[2]
                else:
                    data = json.loads(meta.read_text(encoding="utf-8"))
                    tokens = tuple(int(t) for t in data["tokens"])
                    recorded = data["size"] if data.get("format") == FORMAT and tokens else -1
                    self._parsed[meta] = (stamp, recorded, tokens)
                ok = recorded == size
            except (OSError, ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                self._remove(state, meta)
                continue
            found.append(CacheEntry(state, meta, tokens, size))
        return found

    def best_match(self, key: str, tokens: Sequence[int]) -> tuple[CacheEntry, int] | None:
        """The entry sharing the longest prefix with ``tokens``, and that prefix's length."""
        best: tuple[CacheEntry, int] | None = None
        for entry in self.entries(key):
            n = common_prefix(entry.tokens, tokens)
            if n and (best is None or n > best[1] or (n == best[1] and entry.size < best[0].size)):
                best = (entry, n)
        return best

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self._all_files())

    # -- state files ---------------------------------------------------------------------

    def load(self, ctx: Any, entry: CacheEntry, capacity: int) -> list[int] | None:
        """Restore ``entry`` into the llama context ``ctx`` (a ``llama_context_p``).

        Returns the token ids whose KV cells are now in the context, or ``None`` when the file
        could not be loaded (truncated, corrupt, from another build); the entry is then deleted
        and the caller must treat the context's memory as empty.
        """
        import llama_cpp

        out = (llama_cpp.llama_token * capacity)()
        count = ctypes.c_size_t(0)
        try:
            ok = entry.state_path.stat().st_size == entry.size and llama_cpp.llama_state_load_file(
                ctx, os.fsencode(entry.state_path), out, capacity, ctypes.byref(count)
            )
        except OSError:
            ok = False
        loaded = list(out[: count.value]) if ok else []
        if not ok or tuple(loaded) != entry.tokens:
            self._remove(entry.state_path, entry.meta_path)
            return None
        self._touch(entry.state_path)
        return loaded

    def save(self, ctx: Any, key: str, tokens: Sequence[int]) -> CacheEntry | None:
        """Save the context's state, whose KV cells hold ``tokens``, then drop entries it makes
        redundant (those whose tokens are a prefix of ``tokens``) and evict down to the cap.
        Returns the new entry, or ``None`` when it was not worth saving or could not be."""
        import llama_cpp

        tokens = tuple(int(t) for t in tokens)
        if len(tokens) < self.min_tokens or self.max_bytes <= 0:
            return None
        folder = self._dir(key)
        name = tokens_key(tokens)
        state = folder / (name + STATE_SUFFIX)
        meta = folder / (name + META_SUFFIX)
        if state.exists() and meta.exists():
            self._touch(state)
            return None
        if llama_cpp.llama_state_get_size(ctx) > self.max_bytes:
            return None  # would be evicted at once
        tmp = f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        tmp_state, tmp_meta = folder / (tmp + STATE_SUFFIX), folder / (tmp + META_SUFFIX)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            buf = (llama_cpp.llama_token * len(tokens))(*tokens)
            if not llama_cpp.llama_state_save_file(ctx, os.fsencode(tmp_state), buf, len(tokens)):
                raise OSError("llama_state_save_file failed")
            size = tmp_state.stat().st_size
            tmp_meta.write_text(
                json.dumps({"format": FORMAT, "size": size, "tokens": list(tokens)}),
                encoding="utf-8",
            )
            os.replace(tmp_state, state)
            os.replace(tmp_meta, meta)
        except OSError:
            self._remove(tmp_state, tmp_meta)
            return None
        entry = CacheEntry(state, meta, tokens, size)
        for other in self.entries(key):
            if other.state_path != state and tokens[: len(other.tokens)] == other.tokens:
                self._remove(other.state_path, other.meta_path)
        self.evict()
        return entry if state.exists() else None

    def evict(self) -> None:
        """Delete least recently used entries until the directory fits the cap, and sweep
        temporary files left by killed processes."""
        files = self._all_files()
        now = time.time()
        total = 0
        for path, size, mtime in files:
            if path.name.startswith(".") and now - mtime > STALE_TMP_S:
                self._remove(path)
            else:
                total += size
        states = sorted((f for f in files if f[0].suffix == STATE_SUFFIX), key=lambda f: f[2])
        for path, size, _ in states:
            if total <= self.max_bytes:
                break
            if path.name.startswith("."):
                continue  # another process is writing it
            self._remove(path, path.with_suffix(META_SUFFIX))
            total -= size

    # -- helpers -------------------------------------------------------------------------

    def _all_files(self) -> list[tuple[Path, int, float]]:
        found = []
        try:
            folders = [p for p in self.directory.iterdir() if p.is_dir()]
        except OSError:
            return []
        for folder in folders:
            try:
                for path in folder.iterdir():
                    with contextlib.suppress(OSError):
                        st = path.stat()
                        found.append((path, st.st_size, st.st_mtime))
            except OSError:
                continue
        return found

    @staticmethod
    def _touch(path: Path) -> None:
        with contextlib.suppress(OSError):
            os.utime(path)

    def _remove(self, *paths: Path) -> None:
        for path in paths:
            self._parsed.pop(path, None)
            with contextlib.suppress(OSError):
                path.unlink()
