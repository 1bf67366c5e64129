"""One thread per loaded model for everything that runs llama.cpp's compute.

llama.cpp's CPU backend parallelises with OpenMP, and OpenMP keeps a team of helper threads
for every thread that has ever called ``llama_decode``. The chat app runs each reply in a
worker thread from a pool; once two pool threads had decoded, the process held two teams,
more threads than cores, and OpenMP switched to sleeping between its barriers: decoding fell
from ~70 to ~25 tok/s for the rest of the session. Running all compute on one thread keeps
one team whichever thread asks. It is shared by all loaded models (the compare screen loads
several), so there is one team per process.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class EitherSet:
    """Quacks like a ``threading.Event`` that is set when any of ``events`` is."""

    def __init__(self, *events: threading.Event | None) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class ComputeThread:
    """Runs calls and generators on a single long-lived thread."""

    def __init__(self, name: str = "chatterm-compute") -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._ident = self._pool.submit(threading.get_ident).result()

    def on_it(self) -> bool:
        return threading.get_ident() == self._ident

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the compute thread; the caller waits for the result."""
        if self.on_it():
            return fn(*args)
        return self._pool.submit(fn, *args).result()

    def stream(self, produce: Callable[[threading.Event], Iterator[T]]) -> Iterator[T]:
        """Iterate ``produce(stop)`` on the compute thread, handing each item to the caller.

        The producer runs ahead instead of waiting for the consumer between items. If the
        consumer stops early, ``stop`` is set (the producer should end at its next check)
        and this waits for the producer to finish, so a lock the caller holds covers it.
        """
        stop = threading.Event()
        if self.on_it():
            yield from produce(stop)
            return
        items: queue.SimpleQueue[Any] = queue.SimpleQueue()

        def run() -> None:
            try:
                for item in produce(stop):
                    items.put(item)
                    if stop.is_set():
                        break
            except BaseException as exc:  # handed to the consumer, raised there
                items.put(_Raised(exc))
            finally:
                items.put(_END)

        done = self._pool.submit(run)
        try:
            while True:
                item = items.get()
                if item is _END:
                    return
                if isinstance(item, _Raised):
                    raise item.exc
                yield item
        finally:
            stop.set()
            done.result()


_SHARED: ComputeThread | None = None
_SHARED_LOCK = threading.Lock()


def shared() -> ComputeThread:
    """The process's compute thread, started on first use."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = ComputeThread()
        return _SHARED
