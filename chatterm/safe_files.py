"""Opening and writing files that may not be what their name says.

A model path, a KV state or a config file can be a FIFO (``open`` then blocks forever), a
device, a directory or a link planted to lead chatterm out of its own directories. Every
untrusted file is opened here: without blocking (``O_NONBLOCK``), and kept only when ``fstat``
on the open descriptor says it is a regular file, so there is no window between the check and
the open. Every file chatterm writes goes through :func:`write_atomic`, whose failure (a
read-only home, a full disk) is one :class:`FileWriteError` line naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from chatterm.errors import ChattermError

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class NotRegularFileError(OSError):
    """The path names a FIFO, socket, device or directory, not a regular file."""


class FileWriteError(ChattermError):
    """A file chatterm had to write could not be written (exit 1: outside the user's input)."""


def kind_of(mode: int) -> str:
    """A few words for what a non-regular file is (for error messages)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def open_regular(path: str | os.PathLike[str], *, follow_links: bool = True) -> int:
    """Open ``path`` for reading and return the descriptor, refusing anything but a regular
    file without ever blocking. ``follow_links=False`` also refuses a symbolic link as the last
    component (for files inside chatterm's own directories).

    Raises :class:`NotRegularFileError` (an ``OSError``) for a FIFO, device, socket, directory
    or refused link, and ``OSError`` for the usual reasons (missing, no permission)."""
    flags = os.O_RDONLY | _CLOEXEC | _NONBLOCK | (0 if follow_links else _NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_links:
            raise NotRegularFileError(errno.ELOOP, "a symbolic link", str(path)) from None
        if exc.errno == errno.ENXIO:  # a socket, or a FIFO opened for writing
            raise NotRegularFileError(errno.ENXIO, "not a regular file", str(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(errno.EINVAL, kind_of(mode), str(path))
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bytes(path: str | os.PathLike[str], limit: int, *, follow_links: bool = True) -> bytes:
    """The contents of the regular file ``path``; ``OSError`` (``EFBIG``) when it holds more
    than ``limit`` bytes, checked before anything is read."""
    fd = open_regular(path, follow_links=follow_links)
    with os.fdopen(fd, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew meanwhile
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes", str(path))
    return data


def describe_os_error(exc: OSError) -> str:
    """``PATH: reason`` for an ``OSError``, on one line."""
    reason = exc.strerror or str(exc)
    where = exc.filename if exc.filename is not None else ""
    return f"{where}: {reason}" if where else reason


def write_atomic(path: Path, text: str, *, what: str = "file") -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory, renamed into
    place, so a crash never leaves half a file. Raises :class:`FileWriteError` naming the file
    when the directory cannot be created or written (read-only home, disk full)."""
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise FileWriteError(f"cannot write the {what} {path}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
