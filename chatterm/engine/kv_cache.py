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

Nothing here follows a link or opens a non-regular file: below the cache directory only real
directories are entered and only regular files are read, written or deleted (checked with
``lstat``, and read through ``O_NOFOLLOW | O_NONBLOCK``), so a planted symlink cannot lead the
sweep or a save out of the cache and a planted FIFO cannot block. Each index entry records the
full identity and a digest of its state file keyed by it, checked before the state is loaded:
a state copied from another model's directory, or a state file swapped under an index entry,
is refused (llama.cpp itself would load another model's state and compute garbage).

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
import stat
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = 2  # 2: index entries hold the identity and a digest of the state file
MAX_META_BYTES = 64 << 20  # an index entry holds at most n_ctx token ids
DIGEST_SAMPLE = 1 << 20
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
    """A short stable name for everything a saved state depends on (the directory name)."""
    return full_identity(identity)[:24]


def full_identity(identity: Mapping[str, Any]) -> str:
    """The full hash of a state's identity, recorded in each index entry."""
    blob = json.dumps({"format": FORMAT, **identity}, sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=32).hexdigest()


def state_digest(fd: int, identity: str) -> str:
    """A digest of a state file (its size, first and last MiB) keyed by ``identity``: binds
    the file to the index entry and the model it was saved for, in milliseconds even for a
    gigabyte-sized state."""
    size = os.fstat(fd).st_size
    digest = hashlib.blake2b(f"{identity}:{size}:".encode(), digest_size=16)
    digest.update(os.pread(fd, DIGEST_SAMPLE, 0))
    if size > DIGEST_SAMPLE:
        digest.update(os.pread(fd, DIGEST_SAMPLE, max(DIGEST_SAMPLE, size - DIGEST_SAMPLE)))
    return digest.hexdigest()


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _is_own_dir(path: Path) -> bool:
    """A real directory (not a link to one) owned by this user."""
    st = _lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode) and st.st_uid == _uid()


def _is_own_file(path: Path) -> bool:
    st = _lstat(path)
    return st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == _uid()


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else 0


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

    def _folder(self, key: str, *, create: bool = False) -> Path | None:
        """The identity directory, only when it is a real directory of ours inside a real
        cache directory (a planted symlink there would lead saves and deletes elsewhere)."""
        folder = self._dir(key)
        if create:
            with contextlib.suppress(OSError):
                self.directory.mkdir(parents=True, exist_ok=True)
                folder.mkdir(mode=0o700, exist_ok=True)
        return folder if _is_own_dir(folder) else None

    def entries(self, key: str) -> list[CacheEntry]:
        """The readable entries saved under identity ``key``; broken index files are removed."""
        folder = self._folder(key)
        if folder is None:
            return []
        try:
            metas = [p for p in folder.iterdir() if p.suffix == META_SUFFIX]
        except OSError:
            return []
        found = []
        for meta in metas:
            state = meta.with_suffix(STATE_SUFFIX)
            try:
                st = os.lstat(meta)
                state_st = os.lstat(state)
                if not (stat.S_ISREG(st.st_mode) and stat.S_ISREG(state_st.st_mode)):
                    raise OSError("not a regular file")
                size = state_st.st_size
                stamp = (st.st_mtime_ns, st.st_size)
                cached = self._parsed.get(meta)
                if cached is not None and cached[0] == stamp:
                    recorded, tokens = cached[1], cached[2]
                else:
                    recorded, tokens = self._read_meta(meta)
                    self._parsed[meta] = (stamp, recorded, tokens)
                ok = recorded == size
            except (OSError, ValueError, KeyError, TypeError):
                ok = False
            if not ok:
                self._remove(state, meta)
                continue
            found.append(CacheEntry(state, meta, tokens, size))
        return found

    def _read_meta(self, meta: Path) -> tuple[int, tuple[int, ...]]:
        """An index entry's recorded state size and tokens (size -1: not usable)."""
        from chatterm.safe_files import read_bytes

        data = json.loads(read_bytes(meta, MAX_META_BYTES, follow_links=False))
        tokens = tuple(int(t) for t in data["tokens"])
        usable = data.get("format") == FORMAT and tokens and isinstance(data.get("digest"), str)
        size = data["size"] if usable and isinstance(data["size"], int) else -1
        return size, tokens

    def _recorded(self, meta: Path) -> dict[str, Any]:
        from chatterm.safe_files import read_bytes

        data = json.loads(read_bytes(meta, MAX_META_BYTES, follow_links=False))
        return data if isinstance(data, dict) else {}

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

    def load(
        self, ctx: Any, entry: CacheEntry, capacity: int, identity: str = ""
    ) -> list[int] | None:
        """Restore ``entry`` into the llama context ``ctx`` (a ``llama_context_p``).

        ``identity`` is :func:`full_identity` of the loading model; an entry recorded for
        another identity, or whose state file does not match its recorded digest, is refused.
        Returns the token ids whose KV cells are now in the context, or ``None`` when the file
        could not be loaded (another model's, truncated, corrupt, from another build); the
        entry is then deleted and the caller must treat the context's memory as empty.
        """
        import llama_cpp

        from chatterm.safe_files import open_regular

        out = (llama_cpp.llama_token * capacity)()
        count = ctypes.c_size_t(0)
        ok = False
        try:
            recorded = self._recorded(entry.meta_path)
            fd = open_regular(entry.state_path, follow_links=False)
            try:
                ok = (
                    os.fstat(fd).st_size == entry.size
                    and recorded.get("identity") == identity
                    and recorded.get("digest") == state_digest(fd, identity)
                )
                if ok:
                    # Through the open descriptor where the system allows: the file checked
                    # is the file loaded, even if the name is swapped meanwhile.
                    proc = f"/proc/self/fd/{fd}"
                    source = proc if os.path.exists(proc) else str(entry.state_path)
                    ok = bool(
                        llama_cpp.llama_state_load_file(
                            ctx, os.fsencode(source), out, capacity, ctypes.byref(count)
                        )
                    )
            finally:
                os.close(fd)
        except (OSError, ValueError):
            ok = False
        loaded = list(out[: count.value]) if ok else []
        if not ok or tuple(loaded) != entry.tokens:
            self._remove(entry.state_path, entry.meta_path)
            return None
        self._touch(entry.state_path)
        return loaded

    def save(
        self, ctx: Any, key: str, tokens: Sequence[int], identity: str = ""
    ) -> CacheEntry | None:
        """Save the context's state, whose KV cells hold ``tokens``, then drop entries it makes
        redundant (those whose tokens are a prefix of ``tokens``) and evict down to the cap.
        ``identity`` (:func:`full_identity`) is recorded with a digest of the state, for
        :meth:`load` to check. Returns the new entry, or ``None`` when it was not worth saving
        or could not be."""
        import llama_cpp

        from chatterm.safe_files import open_regular

        tokens = tuple(int(t) for t in tokens)
        if len(tokens) < self.min_tokens or self.max_bytes <= 0:
            return None
        folder = self._folder(key, create=True)
        if folder is None:
            return None  # not a directory of ours (a planted link): never write through it
        name = tokens_key(tokens)
        state = folder / (name + STATE_SUFFIX)
        meta = folder / (name + META_SUFFIX)
        if _is_own_file(state) and _is_own_file(meta):
            self._touch(state)
            return None
        if llama_cpp.llama_state_get_size(ctx) > self.max_bytes:
            return None  # would be evicted at once
        tmp = f".{name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        tmp_state, tmp_meta = folder / (tmp + STATE_SUFFIX), folder / (tmp + META_SUFFIX)
        try:
            buf = (llama_cpp.llama_token * len(tokens))(*tokens)
            if not llama_cpp.llama_state_save_file(ctx, os.fsencode(tmp_state), buf, len(tokens)):
                raise OSError("llama_state_save_file failed")
            fd = open_regular(tmp_state, follow_links=False)
            try:
                size = os.fstat(fd).st_size
                digest = state_digest(fd, identity)
            finally:
                os.close(fd)
            record = {
                "format": FORMAT,
                "size": size,
                "identity": identity,
                "digest": digest,
                "tokens": list(tokens),
            }
            with open(tmp_meta, "x", encoding="utf-8") as fh:  # O_EXCL: never through a link
                json.dump(record, fh)
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
        """Every regular file of ours one level down in real directories of ours; links and
        anything else are neither followed nor counted."""
        found = []
        try:
            folders = [p for p in self.directory.iterdir() if _is_own_dir(p)]
        except OSError:
            return []
        for folder in folders:
            try:
                for path in folder.iterdir():
                    st = _lstat(path)
                    if st is not None and stat.S_ISREG(st.st_mode) and st.st_uid == _uid():
                        found.append((path, st.st_size, st.st_mtime))
            except OSError:
                continue
        return found

    @staticmethod
    def _touch(path: Path) -> None:
        with contextlib.suppress(OSError, NotImplementedError):
            os.utime(path, follow_symlinks=False)

    def _remove(self, *paths: Path) -> None:
        """Delete regular files of ours inside a real directory of ours; nothing else."""
        for path in paths:
            self._parsed.pop(path, None)
            if _is_own_file(path) and _is_own_dir(path.parent):
                with contextlib.suppress(OSError):
                    path.unlink()
