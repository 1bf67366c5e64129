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
