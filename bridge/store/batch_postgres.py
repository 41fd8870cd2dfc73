"""PostgreSQL batch writes: a dedicated asyncpg connection, events in one `unnest` insert."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from bridge.domain import jsonx
from bridge.errors import StoreUnavailable
from bridge.store.batch import EVENT_COLUMNS, REQUEST_COLUMNS, FollowUpFn, TableRows

# One constant key for pg_advisory_xact_lock: event inserts from every replica take turns,
# so `seq` order is commit order and a consumer reading "after seq N" never skips a row
# that commits later with a smaller number.
SEQ_LOCK_KEY = 0x7A6F686F

_BEGIN_LOCKED = f"BEGIN; SELECT pg_advisory_xact_lock({SEQ_LOCK_KEY})"
_EVENT_TYPES = (
    "text", "text", "text", "text", "text", "text", "timestamptz", "timestamptz", "text",
    "text", "text", "text",
)  # fmt: skip
_EVENT_SQL = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"SELECT {', '.join(c + '::jsonb' if c == 'data' else c for c in EVENT_COLUMNS)} "
    f"FROM unnest({', '.join(f'${i + 1}::{t}[]' for i, t in enumerate(_EVENT_TYPES))}) "
    f"WITH ORDINALITY AS t({', '.join(EVENT_COLUMNS)}, n) ORDER BY n "
    "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, id, seq"
)
_REQUEST_SQL = (
    f"INSERT INTO inbound_requests ({', '.join(REQUEST_COLUMNS)}) VALUES "
    f"({', '.join(f'${i + 1}' for i in range(len(REQUEST_COLUMNS)))})"
)
_PRUNE_SQL = (
    "DELETE FROM inbound_requests WHERE status = 'rejected' AND id <= ("
    "SELECT id FROM inbound_requests WHERE status = 'rejected' "
    "ORDER BY id DESC LIMIT 1 OFFSET $1)"
)
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def pg_value(value: Any) -> Any:
    # asyncpg takes json/jsonb as text.
    return jsonx.dumps(value).decode("utf-8") if isinstance(value, (dict, list)) else value


class PostgresBatchBackend:
    """One connection; a transaction per batch, holding the sequence lock.

    Under load the next batch is already queued when one commits: then `COMMIT` and the
    next `BEGIN` with its lock travel in one round trip, and the next batch finds its
    transaction open (round trips, not CPU, bound a batch here).
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._begun = False  # a transaction holding the lock is open for the next batch

    async def _connect(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn, timeout=5, command_timeout=30)
            self._begun = False
        return self._conn

    async def write(
        self,
        events: list[tuple[Any, ...]],
        follow_up: FollowUpFn,
        prune: int | None,
        more_waiting: Callable[[], bool] = lambda: False,
    ) -> None:
        try:
            conn = await self._connect()
            if not self._begun:
                await conn.execute(_BEGIN_LOCKED)
            self._begun = False
            try:
                inserted: dict[str, tuple[str, int]] = {}
                if events:
                    columns = [
                        [pg_value(row[i]) for row in events] for i in range(len(EVENT_COLUMNS))
                    ]
                    for key, event_id, seq in await conn.fetch(_EVENT_SQL, *columns):
                        inserted[key] = (event_id, seq)
                more = follow_up(inserted)
                if more.requests:
                    await conn.executemany(
                        _REQUEST_SQL, [tuple(pg_value(v) for v in r) for r in more.requests]
                    )
                for rows in more.extra:
                    await _insert(conn, rows)
                if prune is not None:
                    await conn.execute(_PRUNE_SQL, prune)
            except BaseException:
                if not conn.is_closed() and conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                raise
            if more_waiting():
                # If the COMMIT fails, the BEGIN after it does not run: nothing is left open.
                await conn.execute(f"COMMIT; {_BEGIN_LOCKED}")
                self._begun = True
            else:
                await conn.execute("COMMIT")
        except _UNAVAILABLE as exc:
            await self._reset()
            raise StoreUnavailable() from exc

    async def _reset(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._begun = False
            conn.terminate()

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if self._begun and not conn.is_closed():
                await conn.execute("ROLLBACK")  # the empty transaction begun for a next batch
            self._begun = False
            await conn.close(timeout=5)


async def _insert(conn: asyncpg.Connection, rows: TableRows) -> None:
    if rows.rows:
        placeholders = ", ".join(f"${i + 1}" for i in range(len(rows.columns)))
        sql = f"INSERT INTO {rows.table} ({', '.join(rows.columns)}) VALUES ({placeholders})"
        await conn.executemany(sql, [tuple(pg_value(v) for v in row) for row in rows.rows])
