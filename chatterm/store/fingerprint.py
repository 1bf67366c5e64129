"""A fast fingerprint of a model file, recorded with every reply.

A full SHA-256 of a multi-gigabyte GGUF takes seconds (≈0.5–1 GB/s), too slow to pay on every
``chatterm ask``. The fingerprint hashes the size, the first MiB (GGUF header, metadata,
architecture and quantisation) and the last MiB (tensor data, which differs between quantisations
and fine-tunes): 7 ms against 267 ms for a full SHA-256 of the 98 MB starter model, and the gap
grows with the file. It names file content, not the file: unlike the mtime it
survives a copy or a re-download of the same bytes. It is prefixed ``sample-sha256:`` so nobody
mistakes it for the file's real SHA-256 (the catalog keeps that for downloaded models).
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

CHUNK = 1 << 20
PREFIX = "sample-sha256:"


def model_fingerprint(path: str | os.PathLike[str]) -> str | None:
    """The fingerprint of the file at ``path``, or ``None`` when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return _fingerprint(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _fingerprint(path: str, size: int, mtime_ns: int) -> str | None:
    # size and mtime are part of the cache key only, so an edited file is hashed again.
    digest = hashlib.sha256(str(size).encode() + b"\0")
    from chatterm.safe_files import open_regular

    try:
        with os.fdopen(open_regular(path), "rb") as handle:
            digest.update(handle.read(CHUNK))
            if size > 2 * CHUNK:
                handle.seek(size - CHUNK)
                digest.update(handle.read(CHUNK))
            elif size > CHUNK:
                digest.update(handle.read())
    except OSError:
        return None
    return PREFIX + digest.hexdigest()
