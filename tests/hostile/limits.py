"""Every hostile case runs under a memory cap and a time limit, and is measured.

A CLI case is a real ``python -m chatterm`` subprocess whose address space is capped with
``RLIMIT_AS`` (set in the child before exec) and which is killed, with its process group, past
its time limit: a regression that allocates without bound fails with a clear error or a
``MemoryError`` instead of swapping the machine, and one that hangs fails instead of stalling
CI. Cheap cases whose code path is the same in-process run in the test process itself inside
:func:`bounded`, which caps the address space the same way (restored afterwards) and arms
``faulthandler`` to end the run with a traceback if a case hangs.

Each case's wall time and peak memory are recorded; the session summary prints the count and
the worst of each (see ``conftest.py``).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import REPO

CLI_MEMORY = 1536 << 20
"""Address space for one ``chatterm`` process: the starter model answers within ~700 MiB."""
CLI_TIMEOUT = 90.0
CASE_MEMORY = 768 << 20
"""Extra address space an in-process case may map beyond what the test process already has."""
CASE_TIMEOUT = 60.0

EXIT_CODES = {0, 1, 2, 3, 4, 130, 129, 143}
"""The documented exit codes (README "Exit codes"; 129/143 for SIGHUP/SIGTERM)."""


@dataclass
class Record:
    case: str
    seconds: float
    peak_bytes: int


RECORDS: list[Record] = []


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_bytes: int

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("chatterm: error:")]


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def bounded(
    case: str, *, memory: int = CASE_MEMORY, timeout: float = CASE_TIMEOUT
) -> Iterator[None]:
    """Run an in-process case with ``memory`` more bytes of address space than the process
    maps now and a hard time limit; record its time and the growth of the process's peak
    RSS."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_size() + memory
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    faulthandler.dump_traceback_later(timeout, exit=True)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        faulthandler.cancel_dump_traceback_later()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        RECORDS.append(Record(case, time.perf_counter() - start, max(after - before, 0)))


def run_limited(
    *args: str,
    input: bytes | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = CLI_TIMEOUT,
    memory: int = CLI_MEMORY,
    case: str | None = None,
    signal_after: tuple[int, int] | None = None,
    max_file_bytes: int | None = None,
) -> Result:
    """Run ``python -m chatterm ARGS`` under ``memory`` bytes of address space, killed past
    ``timeout`` seconds. ``signal_after=(n, signum)`` sends ``signum`` once ``n`` bytes have
    appeared on stdout; ``max_file_bytes`` caps every file it writes (a full disk, and a
    read-only home where permissions cannot, as for root). Returns exit status, output, wall
    time and the child's peak RSS."""

    def limit() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if max_file_bytes is not None:  # Python ignores SIGXFSZ: writes fail with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    data = input.encode() if isinstance(input, str) else (input or b"")
    with tempfile.TemporaryFile() as stdin:
        stdin.write(data)
        stdin.seek(0)
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "chatterm", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=REPO,
            preexec_fn=limit,
        )
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def drain(stream: Any, into: list[bytes]) -> None:
        for block in iter(lambda: stream.read1(65536), b""):
            into.append(block)

    readers = [
        threading.Thread(target=drain, args=(proc.stdout, chunks["out"]), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, chunks["err"]), daemon=True),
    ]
    for reader in readers:
        reader.start()
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout, kill)
    timer.start()
    if signal_after is not None:
        shown, signum = signal_after
        while proc.poll() is None and not killed.is_set():
            if len(b"".join(chunks["out"])) >= shown:
                os.kill(proc.pid, signum)
                break
            time.sleep(0.02)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    for reader in readers:
        reader.join(10)
    stdout = b"".join(chunks["out"]).decode("utf-8", "replace")
    stderr = b"".join(chunks["err"]).decode("utf-8", "replace")
    peak = usage.ru_maxrss * 1024
    RECORDS.append(Record(case or " ".join(args)[:80], seconds, peak))
    if killed.is_set():
        raise AssertionError(
            f"chatterm {' '.join(args)[:80]} ran past {timeout:g} s: {stderr[-500:]}"
        )
    return Result(proc.returncode, stdout, stderr, seconds, peak)


def assert_one_line_error(result: Result, code: int, *needles: str) -> str:
    """The case ended in exactly one ``chatterm: error:`` line, exit ``code``, no traceback;
    return the line (checked to contain each of ``needles``, case-insensitively)."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert len(result.errors) == 1, result.stderr[-2000:]
    line = result.errors[0]
    for needle in needles:
        assert needle.lower() in line.lower(), line
    return line


def assert_clean(result: Result) -> None:
    """No traceback, a documented exit code, and any error said in one line."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode in EXIT_CODES, (result.returncode, result.stderr[-2000:])
    if result.returncode not in (0, 129, 130, 143):
        assert len(result.errors) == 1, result.stderr[-2000:]
