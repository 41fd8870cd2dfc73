"""What a database driver error means, decided in one place.

The SQLAlchemy engine (`database.begin`/`connect`) and both batch writers (`batch_sqlite`,
`batch_postgres`) ask `classify`; nothing else in the bridge looks at a driver exception.
- `unavailable`: the database cannot be reached, is not answering, is locked, full or out
  of resources. Webhooks answer 503, so Zoho retries, and status reports it.
- `conflict`: a unique constraint refused the row (a name already taken).
- `bug`: anything else — a query the database refused. It is raised as it is, loudly.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from sqlalchemy import exc as sa

from bridge.errors import BridgeError, Conflict, StoreUnavailable

ErrorKind = Literal["unavailable", "conflict", "bug"]

# asyncpg's classes by name, so that this module does not import asyncpg (SQLite-only
# processes never load it): connection failures, operator intervention (shutdown,
# cancelled by admin), insufficient resources (disk full, out of memory, too many
# connections).
# A statement SQLite refused as written: a bug of ours, not an outage.
_SQLITE_BUGS = (
    sqlite3.ProgrammingError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    sqlite3.NotSupportedError,
)
_PG_UNAVAILABLE_BASES = frozenset(
    {
        "PostgresConnectionError",
        "OperatorInterventionError",
        "InsufficientResourcesError",
        "InterfaceError",
    }
)
_PG_CONFLICT_BASES = frozenset({"IntegrityConstraintViolationError"})


def _pg_kind(exc: BaseException) -> ErrorKind | None:
    """The kind of an asyncpg exception, by its class and bases; None if not asyncpg's."""
    if not type(exc).__module__.startswith("asyncpg"):
        return None
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _PG_UNAVAILABLE_BASES:
        return "unavailable"
    if names & _PG_CONFLICT_BASES:
        return "conflict"
    return "bug"


def classify(exc: BaseException) -> ErrorKind:
    """What `exc`, raised by SQLAlchemy, sqlite3 or asyncpg, means for the caller."""
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return "unavailable"
    if isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.TimeoutError)):
        return "unavailable"
    if isinstance(exc, sa.IntegrityError):
        return "conflict"
    if isinstance(exc, sa.DBAPIError) and exc.orig is not None:
        return classify(exc.orig)
    if isinstance(exc, sqlite3.IntegrityError):
        return "conflict"
    if isinstance(exc, _SQLITE_BUGS):
        return "bug"
    # sqlite3: "locked", "disk I/O error", "database or disk is full", "unable to open",
    # "file is not a database", "disk image is malformed": the store cannot be used.
    if isinstance(exc, sqlite3.Error):
        return "unavailable"
    if isinstance(exc, (ConnectionError, OSError, TimeoutError)):
        return "unavailable"
    return _pg_kind(exc) or "bug"


def translate(exc: BaseException, *, conflict: str | None = None) -> BridgeError | None:
    """The `BridgeError` to raise instead of `exc`, or None to raise `exc` itself (a bug).
    A conflict becomes `Conflict(conflict)` when a message is given, else it is a bug."""
    if isinstance(exc, BridgeError):
        return exc
    kind = classify(exc)
    if kind == "unavailable":
        return StoreUnavailable()
    if kind == "conflict" and conflict is not None:
        return Conflict(conflict)
    return None


@asynccontextmanager
async def translated(*, conflict: str | None = None) -> AsyncIterator[None]:
    """Driver errors raised inside become `StoreUnavailable` (or `Conflict(conflict)`)."""
    try:
        yield
    except Exception as exc:
        replacement = translate(exc, conflict=conflict)
        if replacement is None or replacement is exc:
            raise
        raise replacement from exc
