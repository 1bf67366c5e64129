"""The one-line summaries ``chatterm models`` lists, cached by file.

Reading a file's metadata takes ~0.4 s (it walks the whole vocabulary), so summaries are
cached in ``cache_dir()/model-info.json``, keyed by path, size and modification time. This
module knows files and their GGUF headers only: the catalog writes to it after adding a model,
and :mod:`chatterm.model_card` reads it for listings.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatterm import paths

if TYPE_CHECKING:
    from chatterm.gguf_file import GGUFInfo


def _cache_path() -> Path:
    return paths.cache_dir() / "model-info.json"


def key(path: Path) -> str | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def load_cache() -> dict[str, Any]:
    try:
        from chatterm.safe_files import read_bytes

        data = json.loads(read_bytes(_cache_path(), 64 << 20))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def save_cache(data: dict[str, Any]) -> None:
    """Best effort and atomic: a cache that cannot be written only costs time."""
    target = _cache_path()
    with contextlib.suppress(OSError):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".model-info.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, target)


def summarize(infos: list[GGUFInfo]) -> dict[str, Any]:
    head = infos[0]
    return {
        "architecture": head.architecture,
        "parameters": sum(i.parameter_count for i in infos),
        "context_length": head.context_length,
        "quantization": head.quantization,
    }


def remember_summary(files: Sequence[Path], infos: list[GGUFInfo]) -> None:
    """Cache what was just read (after a pull or add) so the next listing is instant;
    ``files``: the model's files, first shard first."""
    found = key(files[0])
    if found is None:
        return
    data = load_cache()
    data[found] = summarize(infos)
    save_cache(data)
