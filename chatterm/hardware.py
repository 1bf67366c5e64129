"""Machine facts the engine needs: a good default thread count.

llama-cpp-python defaults to ``cpu_count() // 2``, which is one thread on a 2-core machine and
costs about 40% of decode speed; decode is memory-bound and scales with physical cores, so use
those, within the CPU affinity mask and any cgroup quota.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path


def _physical_cores() -> int | None:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    cores = set()
    physical = core = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            physical = value.strip()
        elif key == "core id":
            core = value.strip()
        elif not line.strip():
            if core is not None:
                cores.add((physical, core))
            physical = core = None
    if core is not None:
        cores.add((physical, core))
    return len(cores) or None


def _cgroup_quota() -> int | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.floor(int(quota) / int(period)))


def default_threads() -> int:
    """Physical cores available to this process (at least 1)."""
    logical = os.cpu_count() or 1
    with contextlib.suppress(AttributeError, OSError):
        logical = len(os.sched_getaffinity(0))
    candidates = [logical]
    physical = _physical_cores()
    if physical and physical < (os.cpu_count() or physical):
        # SMT: scale physical cores by the share of logical CPUs we may use.
        candidates.append(max(1, physical * logical // (os.cpu_count() or logical)))
    quota = _cgroup_quota()
    if quota:
        candidates.append(quota)
    return max(1, min(candidates))


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_memory() -> int | None:
    try:
        value = Path("/sys/fs/cgroup/memory.max").read_text().strip()
    except OSError:
        return None
    return int(value) if value.isdigit() else None


def _address_space_left() -> int | None:
    """What an address-space limit (``ulimit -v``) leaves, beyond what is already mapped."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    mapped = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                mapped = int(line.split()[1]) * 1024
    return max(0, soft - mapped)


def memory_limit() -> tuple[int, str] | None:
    """The most memory this process can use now, in bytes, and what sets it ("this machine's
    available memory", "the cgroup's memory limit", "the address-space limit (ulimit -v)");
    ``None`` when unknown. Available memory counts the page cache as free (the kernel drops
    it on demand), so a model file already cached is not counted twice."""
    found = []
    physical = _meminfo_available()
    if physical is None:
        with contextlib.suppress(AttributeError, ValueError, OSError):
            physical = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if physical:
        found.append((physical, "this machine's available memory"))
    cgroup = _cgroup_memory()
    if cgroup:
        found.append((cgroup, "the cgroup's memory limit"))
    address = _address_space_left()
    if address is not None:
        found.append((address, "the address-space limit (ulimit -v)"))
    return min(found) if found else None
