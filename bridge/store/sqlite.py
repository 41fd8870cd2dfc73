"""One SQLite connection setup, shared by the SQLAlchemy engine and the batch writer."""

from __future__ import annotations

from typing import Literal

Synchronous = Literal["FULL", "NORMAL"]
BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for another connection's write lock


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
