"""How many of this process's cores other programs are using right now, so the engine can step
down to fewer llama.cpp threads while a neighbour is busy and back up when it stops.

llama.cpp's threads meet at a barrier after every operation of the graph (hundreds per token),
and with OpenMP they spin there. When another program keeps one of two cores busy, one of our
two threads keeps losing its core and the other spins waiting for it: measured on a 2-core VM
with a busy neighbour, 2 threads decoded SmolLM2 at 1-5 tok/s where 1 thread gave 20-24.
On an idle machine 2 threads are the fastest. So the engine asks this module every half second.

Linux only (``/proc/stat``); elsewhere :meth:`CpuShare.others` returns ``None`` and the engine
keeps its thread count.
"""

from __future__ import annotations

import contextlib
import math
import os
import time

CHECK_INTERVAL_S = 0.5
"""How often the token loop re-reads the machine's load: a few reads of /proc a second cost
nothing, and a neighbour that starts is noticed within this time."""


def _allowed_cpus() -> set[int] | None:
    with contextlib.suppress(AttributeError, OSError):
        return set(os.sched_getaffinity(0))
    return None


def _busy_seconds(cpus: set[int] | None) -> float | None:
    """CPU time spent busy (not idle or waiting for I/O) since boot, over ``cpus`` (all when
    ``None``), in seconds."""
    try:
        with open("/proc/stat", "rb") as f:
            lines = f.read().split(b"\n")
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    for line in lines:
        if not line.startswith(b"cpu") or line.startswith(b"cpu "):
            continue
        name, *fields = line.split()
        try:
            cpu = int(name[3:])
            values = [int(v) for v in fields[:8]]
        except ValueError:
            continue
        if cpus is not None and cpu not in cpus:
            continue
        user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
        busy += user + nice + system + irq + softirq + steal
    return busy / ticks


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


class CpuShare:
    """Samples the machine's busy time over the CPUs this process may use, minus its own."""

    def __init__(self) -> None:
        self.cpus = _allowed_cpus()
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float] | None:
        busy = _busy_seconds(self.cpus)
        if busy is None:
            return None
        return time.monotonic(), busy, _own_seconds()

    def others(self) -> float | None:
        """Cores kept busy by other processes since the previous call (or since creation),
        e.g. ``1.0`` for one program spinning; ``None`` when it cannot be known."""
        now = self._sample()
        last, self._last = self._last, now
        if now is None or last is None or now[0] - last[0] < 0.05:
            return None
        wall = now[0] - last[0]
        return max(0.0, ((now[1] - last[1]) - (now[2] - last[2])) / wall)


def threads_for(wanted: int, cores: int, others: float | None) -> int:
    """Threads to run with: ``wanted`` on an idle machine, fewer when other programs keep some
    of the ``cores`` busy (one thread fewer per busy core, rounded to the nearest), at least 1.

    >>> threads_for(2, 2, 0.1), threads_for(2, 2, 1.0), threads_for(8, 16, 3.0)
    (2, 1, 8)
    """
    if others is None:
        return wanted
    free = math.floor(cores - others + 0.5)
    return max(1, min(wanted, free))
