"""One place that turns domain errors into a one-line message on stderr and an exit code."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from chatterm.errors import EXIT_FAILURE, ChattermError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int) -> typer.Exit:
    print(f"chatterm: error: {message}", file=sys.stderr)
    return typer.Exit(code)


def handle_errors(func: F) -> F:
    """Wrap a command: ``ChattermError`` → its message and exit code; Ctrl-C → exit 130,
    SIGTERM/SIGHUP → 143/129 (see :mod:`chatterm.cli.signals`); a file-system failure (a
    read-only home, a full disk) → one line naming the file, exit 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ChattermError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt as exc:
            from chatterm.cli import signals

            print(file=sys.stderr)
            raise typer.Exit(signals.exit_code(exc)) from None
        except BrokenPipeError:
            # The reader went away (`chatterm ask … | head`): not an error worth a traceback.
            sys.stderr.close()
            raise typer.Exit(0) from None
        except OSError as exc:
            from chatterm.safe_files import describe_os_error

            raise fail(describe_os_error(exc), EXIT_FAILURE) from None

    return wrapper  # type: ignore[return-value]
