"""SIGTERM and SIGHUP handled like Ctrl-C.

A terminal closing (SIGHUP), ``kill``, ``timeout`` or a service manager (SIGTERM) would
otherwise end chatterm without a word and lose the last second of a streamed answer. Instead the
signal raises :class:`Terminated`, a ``KeyboardInterrupt``, in the main thread: every place
that keeps and saves a partial answer on Ctrl-C does the same here, and the process then exits
with the conventional code 128 + the signal's number (143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterable, Iterator
from typing import Any

from chatterm.errors import EXIT_INTERRUPTED

HANDLED = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM or SIGHUP."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def exit_code(exc: BaseException) -> int:
    """The exit code for an interruption: 128 + signal for :class:`Terminated`, else 130."""
    return exc.exit_code if isinstance(exc, Terminated) else EXIT_INTERRUPTED


def describe(exc: BaseException) -> str:
    return f"stopped by {exc.name}" if isinstance(exc, Terminated) else "interrupted"


_pending: list[int] = []


def _raise(signum: int, frame: Any) -> None:
    _pending.append(signum)
    raise Terminated(signum)


def check() -> None:
    """Raise :class:`Terminated` again if a signal arrived while Python code called from C
    was running (a ctypes callback swallows the exception with "Exception ignored")."""
    if _pending:
        raise Terminated(_pending[-1])


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block (main thread only), SIGTERM and SIGHUP raise :class:`Terminated`.

    Use it around the part whose work a signal must not lose (streaming an answer), not
    around a model load: there llama.cpp calls back into Python, where an exception raised by
    a signal handler is swallowed."""
    _pending.clear()
    previous = {}
    try:
        for sig in HANDLED:
            previous[sig] = signal.signal(sig, _raise)
    except ValueError:  # not the main thread: leave the defaults
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def guarded(events: Iterable[Any]) -> Iterator[Any]:
    """``events`` with SIGTERM and SIGHUP raising :class:`Terminated` (in the consumer) until
    the iteration ends; a signal swallowed by a callback is raised at the next event."""
    with terminate_as_interrupt():
        for event in events:
            check()
            yield event
        check()
