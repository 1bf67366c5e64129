#!/usr/bin/env python3
"""Build llama.cpp's ``llama-server`` and RPC worker (``ggml-rpc-server``) once per machine, for
the tests that drive chatterm against the real server and a model split over RPC workers.

The sources are the ``vendor/llama.cpp`` inside the installed llama-cpp-python's sdist (fetched
through pip by ``tests/llama_sdist.py``), so the server runs the same llama.cpp as chatterm's
local engine. CPU only, Release, static (the binaries need nothing from the build tree), no web
UI and no downloads: ``-DGGML_RPC=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_UI=OFF
-DLLAMA_USE_PREBUILT_UI=OFF``.

The binaries land in ``<cache>/llama-server-<version>/bin`` (``<cache>`` is
``~/.cache/chatterm-tests``, or ``$CHATTERM_TEST_CACHE``); a second run finds them and returns at
once, and concurrent runs wait for the first one (a lock file). Nothing is built in the
repository and nothing built is ever committed.

    python scripts/build_llama_server.py            # prints the bin directory
    python scripts/build_llama_server.py --json     # {"bin", "llama_server", "rpc_server", …}
    CHATTERM_BUILD_JOBS=2 nice -n 10 python scripts/build_llama_server.py

Exit codes: 0 built or already there; 1 the build failed (the last lines of its log say why).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.llama_sdist import cache_root, llama_cpp_version, vendor_llama_cpp  # noqa: E402

TARGETS = ("llama-server", "ggml-rpc-server")
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_RPC=ON",
    "-DLLAMA_CURL=OFF",
    "-DGGML_CUDA=OFF",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # else the web UI is downloaded from Hugging Face
    "-DLLAMA_OPENSSL=OFF",
)


class BuildError(RuntimeError):
    """The build failed; the message ends with the last lines of its log."""


def install_dir() -> Path:
    return cache_root() / f"llama-server-{llama_cpp_version()}"


def installed() -> dict[str, str] | None:
    """The record of a finished build (paths, seconds it took), or ``None``."""
    record = install_dir() / "build.json"
    try:
        data = json.loads(record.read_text())
    except (OSError, ValueError):
        return None
    if all(Path(data.get(k, "")).is_file() for k in ("llama_server", "rpc_server")):
        return data
    return None


def ensure_built(jobs: int | None = None, log: Path | None = None) -> dict[str, str]:
    """Build once (or wait for a concurrent build) and return the record of the binaries:
    ``{"bin", "llama_server", "rpc_server", "version", "build_seconds", "jobs"}``.

    Raises :class:`BuildError` when cmake is missing or the build fails.
    """
    found = installed()
    if found:
        return found
    target = install_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second caller waits here for the first build
        found = installed()
        if found:
            return found
        return _build(target, jobs or int(os.environ.get("CHATTERM_BUILD_JOBS") or 0) or None, log)


def _build(target: Path, jobs: int | None, log: Path | None) -> dict[str, str]:
    # the system's, else the one the test extra installs beside this Python (pip's scripts
    # directory is not on PATH everywhere)
    cmake = shutil.which("cmake") or shutil.which("cmake", path=sysconfig.get_path("scripts"))
    if cmake is None:
        raise BuildError("cmake is not installed; it builds llama-server for the remote tests")
    source = vendor_llama_cpp()
    build = target.parent / f"{target.name}.build"
    shutil.rmtree(build, ignore_errors=True)
    log = log or target.parent / f"{target.name}.log"
    jobs = jobs or os.cpu_count() or 1
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    started = time.monotonic()
    with log.open("w") as out:
        for step in (
            [cmake, "-S", str(source), "-B", str(build), *generator, *CMAKE_OPTIONS],
            [cmake, "--build", str(build), "--target", *TARGETS, "-j", str(jobs)],
        ):
            out.write(f"$ {' '.join(step)}\n")
            out.flush()
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT)
            if done.returncode != 0:
                tail = log.read_text(errors="replace").splitlines()[-30:]
                raise BuildError(f"{step[1:3]} failed (log: {log}):\n" + "\n".join(tail))
    seconds = time.monotonic() - started
    bin_dir = target / "bin"
    shutil.rmtree(target, ignore_errors=True)
    bin_dir.mkdir(parents=True)
    for name in TARGETS:
        built = next((p for p in build.rglob(name) if p.is_file() and os.access(p, os.X_OK)), None)
        if built is None:
            raise BuildError(f"the build produced no {name} (log: {log})")
        shutil.copy2(built, bin_dir / name)
    shutil.rmtree(build, ignore_errors=True)
    record = {
        "bin": str(bin_dir),
        "llama_server": str(bin_dir / "llama-server"),
        "rpc_server": str(bin_dir / "ggml-rpc-server"),
        "version": llama_cpp_version(),
        "source": str(source),
        "build_seconds": f"{seconds:.0f}",
        "jobs": str(jobs),
    }
    (target / "build.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the build record as JSON")
    parser.add_argument("-j", "--jobs", type=int, help="parallel compile jobs (default: cores)")
    args = parser.parse_args()
    try:
        record = ensure_built(args.jobs)
    except (BuildError, RuntimeError) as exc:
        print(f"build_llama_server: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(record) if args.json else record["bin"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
