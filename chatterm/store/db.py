"""The SQLite connection: WAL, foreign keys, a busy timeout and short write transactions.

Why these settings (measured, see FACTS.md): WAL with ``synchronous=NORMAL`` keeps every
committed row through ``kill -9`` at 0.03 ms a commit; every write starts with ``BEGIN
IMMEDIATE``, because a deferred transaction that reads and then writes can fail at once with
"database is locked" when a second process writes, while an immediate one waits for the busy
timeout. No transaction is ever held across model generation.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from chatterm.errors import StoreError, StoreLockedError

BUSY_TIMEOUT_S = 10.0


def now() -> datetime:
    return datetime.now(timezone.utc)


def timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with microseconds: sorts as text in the order it happened."""
    return (moment or now()).astimezone(timezone.utc).isoformat(timespec="microseconds")


def parse_timestamp(text: str | None) -> datetime:
    if not text:
        return datetime.fromtimestamp(0, timezone.utc)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def describe(exc: sqlite3.Error, path: Path) -> StoreError:
    """A one-line :class:`StoreError` naming the file, for any sqlite3 failure."""
    message = str(exc)
    lowered = message.lower()
    if "not a database" in lowered or "malformed" in lowered or "encrypted" in lowered:
        return StoreError(
            f"{path}: not a usable chatterm history database ({message}); it was left untouched "
            "- move it aside to start a new history"
        )
    if "locked" in lowered or "busy" in lowered:
        return StoreLockedError(
            f"{path}: the history database stayed locked by another process; try again"
        )
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(f"{path}: the history database is read-only ({message})")
    if "unable to open" in lowered:
        return StoreError(f"{path}: cannot open the history database ({message})")
    return StoreError(f"{path}: history database error: {message}")


def connect(path: Path) -> sqlite3.Connection:
    """Open the database at ``path`` (created if missing) with our pragmas.

    A file that is not an SQLite database fails on the first statement; it is reported with its
    path and never recreated or deleted: it may be the user's only copy of their history.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{path.parent}: cannot create the data directory ({exc})") from None
    try:
        # autocommit mode (isolation_level=None): transactions are explicit, see `transaction`.
        conn = sqlite3.connect(
            str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise describe(exc, path) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")  # the first read: garbage fails here
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.Error as exc:
        conn.close()
        raise describe(exc, path) from None
    conn.row_factory = sqlite3.Row
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One short write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any
    exception, including a ``KeyboardInterrupt`` that lands between two statements."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
