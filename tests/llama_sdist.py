"""llama.cpp's own files, from llama-cpp-python's source distribution, for tests.

The sdist of the installed llama-cpp-python version holds the llama.cpp it was built from:
real chat templates (``vendor/llama.cpp/models/templates/*.jinja``), vocab-only GGUFs
(``vendor/llama.cpp/models/ggml-vocab-*.gguf``) and the sources of ``llama-server`` and the RPC
worker. pip fetches it (from its cache after the first time); it is unpacked once per machine under
``~/.cache/chatterm-tests`` (``CHATTERM_TEST_CACHE`` overrides). Nothing from it is ever committed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path


def cache_root() -> Path:
    root = os.environ.get("CHATTERM_TEST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "chatterm-tests"


def llama_cpp_version() -> str:
    """The installed llama-cpp-python's version, read without importing it."""
    return version("llama-cpp-python")


def vendor_llama_cpp() -> Path:
    """The unpacked ``vendor/llama.cpp`` of the installed llama-cpp-python's sdist.

    Raises ``RuntimeError`` (with pip's own message) when pip cannot fetch the sdist.
    """
    ver = llama_cpp_version()
    target = cache_root() / f"llama_cpp_python-{ver}"
    vendor = target / "vendor" / "llama.cpp"
    if (vendor / "models" / "templates").is_dir():
        return vendor
    cache_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "--quiet",
                "--dest",
                tmp,
                f"llama-cpp-python=={ver}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        archives = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise RuntimeError(
                f"pip download llama-cpp-python=={ver} failed: {done.stderr[-2000:]}"
            )
        unpack = Path(tmp) / "unpacked"
        with tarfile.open(archives[0]) as tar:
            tar.extractall(unpack, filter="data")
        (top,) = list(unpack.iterdir())
        if not target.exists():
            try:
                os.rename(top, target)  # atomic: a parallel run may have won the race
            except OSError:
                if not vendor.is_dir():
                    raise
        shutil.rmtree(unpack, ignore_errors=True)
    return vendor


def chat_templates() -> list[Path]:
    """Every real chat template llama.cpp ships (``models/templates/*.jinja``), sorted."""
    return sorted((vendor_llama_cpp() / "models" / "templates").glob("*.jinja"))


def vocab_ggufs() -> list[Path]:
    """llama.cpp's vocab-only GGUFs (``models/ggml-vocab-*.gguf``), sorted."""
    return sorted((vendor_llama_cpp() / "models").glob("ggml-vocab-*.gguf"))
