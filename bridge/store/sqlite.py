"""One SQLite connection setup, shared by the SQLAlchemy engine and the batch writer."""

from __future__ import annotations

import functools
import sqlite3
import time
from datetime import UTC, datetime
from typing import Literal

Synchronous = Literal["FULL", "NORMAL"]
BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for another connection's write lock
_BUSY_RETRY = 0.0005  # seconds between two tries of a BEGIN that found the lock taken


def pragmas(synchronous: Synchronous) -> tuple[str, ...]:
    """The statements every connection runs once opened.

    WAL lets readers run while the writer commits; FULL fsyncs every commit, so a 2xx
    survives power loss, not only a crash of the process; foreign keys are enforced on
    every connection alike (the outbox refers to events).
    """
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    return (
        "PRAGMA journal_mode=WAL",
        f"PRAGMA synchronous={synchronous}",
        f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}",
        "PRAGMA foreign_keys=ON",
    )


def begin_immediate(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE on a connection whose busy timeout is 0, waiting up to
    `BUSY_TIMEOUT_MS` for another connection's write lock. Blocks: run it on a thread.

    Tried again every `_BUSY_RETRY` seconds rather than through SQLite's busy handler,
    whose sleeps grow 1, 2, 5, 10, 15, 20, 25 ms...: a lock held 9 ms (a relay's claim or
    settlement) cost the ingest writer 18, and every webhook of its batch waited for it.
    The retries cost little: each is one failed lock attempt, on that thread.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(_BUSY_RETRY)


@functools.lru_cache(maxsize=4096)  # a delivery's received_at is in several rows
def datetime_text(value: datetime) -> str:
    """A datetime as SQLAlchemy stores it in SQLite (`types.UTCDateTime`): naive UTC text,
    always with microseconds. For statements run on the driver itself."""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return utc.isoformat(" ", "microseconds")[:26]  # without the "+00:00"
