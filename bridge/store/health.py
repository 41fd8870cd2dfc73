"""Whether the database takes writes now, and if not, whether it is full.

A read (`SELECT 1`) passes on a database whose disk is full; what webhooks need is a
committed write. The check updates one row: the `pull` row of `sink_states` (the pull
sink is the database itself), so it leaves nothing behind and works on an empty outbox.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import BridgeError
from bridge.store.database import begin, ping
from bridge.store.models import SinkStateRow
from bridge.store.upsert import upsert

DatabaseState = Literal["ok", "unreachable", "full", "read_only"]
PROBE_ROW = "pull"
# PostgreSQL's "disk full" SQLSTATE (class 53, insufficient resources).
_PG_DISK_FULL = "53100"
# Below this much free space on its disk, a SQLite database that refuses writes is full.
_SQLITE_FULL_BELOW = 1024 * 1024


@dataclass(frozen=True, slots=True)
class WriteCheck:
    """The outcome of one write check: `state`, and what was seen, for people."""

    state: DatabaseState
    detail: str
    disk_free_bytes: int | None = None


async def check_write(
    engine: AsyncEngine, database_url: str, *, now: datetime, replica: str
) -> WriteCheck:
    """Read, then commit one small write; say which of them failed, and why."""
    free = sqlite_free_bytes(database_url)
    try:
        await ping(engine)
    except BridgeError as exc:
        return WriteCheck("unreachable", _why(exc), free)
    values = {"checked_at": now, "checked_by": replica[:64]}
    try:
        async with begin(engine) as conn:
            # One statement: checks made at once (the monitor, a status page, another
            # replica on a fresh database) never both insert the row.
            await upsert(conn, SinkStateRow, {"sink": PROBE_ROW, "disabled": False,
                                              "changed_at": now, **values}, ["sink"])  # fmt: skip
    except BridgeError as exc:
        full = _is_disk_full(exc) or (free is not None and free < _SQLITE_FULL_BELOW)
        if not full and not await _reachable(engine):
            # Lost between the read and the write (a connection cut mid-statement): an
            # outage, not a database that refuses writes.
            return WriteCheck("unreachable", _why(exc), free)
        return WriteCheck("full" if full else "read_only", _why(exc), free)
    return WriteCheck("ok", "ok", free)


async def _reachable(engine: AsyncEngine) -> bool:
    try:
        await ping(engine)
    except BridgeError:
        return False
    return True


def sqlite_free_bytes(database_url: str) -> int | None:
    """Free bytes on the disk of a SQLite database file; None for other databases."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite") or not url.database:
        return None
    if url.database == ":memory:":
        return None
    folder = os.path.dirname(os.path.abspath(url.database))
    try:
        stats = os.statvfs(folder)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def _causes(exc: BaseException) -> list[BaseException]:
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(found) < 8:
        found.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return found


def _is_disk_full(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if getattr(cause, "sqlite_errorname", None) == "SQLITE_FULL":
            return True
        if getattr(cause, "sqlstate", None) == _PG_DISK_FULL:
            return True
    return False


def _why(exc: BaseException) -> str:
    """The driver's own words when there are any (type and message: a check's statement
    quotes no request), else the bridge error's."""
    for cause in reversed(_causes(exc)):
        if isinstance(cause, sqlite3.Error | OSError) or type(cause).__module__.startswith(
            "asyncpg"
        ):
            return f"{type(cause).__name__}: {cause}"[:300]
    return exc.message if isinstance(exc, BridgeError) else type(exc).__name__
