"""PostgreSQL batch writes: a dedicated asyncpg connection, few round trips per batch.

A batch's events and request rows go in one statement (`unnest` arrays, a data-modifying
CTE). The request rows are written as they will be if every event is new; the few whose
delivery turned out to be a duplicate are corrected in one more statement.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from bridge.domain import jsonx
from bridge.errors import StoreUnavailable
from bridge.store.batch import EVENT_COLUMNS, REQUEST_COLUMNS, Batch, TableRows

# One constant key for pg_advisory_xact_lock: event inserts from every replica take turns,
# so `seq` order is commit order and a consumer reading "after seq N" never skips a row
# that commits later with a smaller number.
SEQ_LOCK_KEY = 0x7A6F686F

_BEGIN_LOCKED = f"BEGIN; SELECT pg_advisory_xact_lock({SEQ_LOCK_KEY})"
_EVENT_TYPES = (
    "text", "text", "text", "text", "text", "text", "timestamptz", "timestamptz", "text",
    "text", "text", "text",
)  # fmt: skip
_REQUEST_TYPES = (
    "text", "timestamptz", "text", "text", "text", "text", "text", "text", "bytea", "int",
    "bool", "text", "text", "int", "text", "text", "int",
)  # fmt: skip
_JSONB = {"data", "headers"}


def _insert_unnest(table: str, columns: tuple[str, ...], types: tuple[str, ...], first: int) -> str:
    """INSERT of the rows whose columns are parameters $first, $first+1, … (one array each),
    in array order."""
    arrays = ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(types))
    values = ", ".join(f"{c}::jsonb" if c in _JSONB else c for c in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS t({', '.join(columns)}, n) ORDER BY n"
    )


_EVENTS = (
    _insert_unnest("events", EVENT_COLUMNS, _EVENT_TYPES, 1)
    + " ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, id, seq"
)
_REQUEST_SQL = _insert_unnest("inbound_requests", REQUEST_COLUMNS, _REQUEST_TYPES, 1)
_EVENTS_AND_REQUESTS_SQL = (
    f"WITH ev AS ({_EVENTS}), "
    f"rq AS ({_insert_unnest('inbound_requests', REQUEST_COLUMNS, _REQUEST_TYPES, 13)}) "
    "SELECT dedup_key, id, seq FROM ev"
)
_CORRECT_SQL = (
    "UPDATE inbound_requests AS r SET status = c.status, event_count = c.event_count "
    "FROM unnest($1::text[], $2::text[], $3::int[]) AS c(id, status, event_count) "
    "WHERE r.id = c.id"
)
_ID, _STATUS, _COUNT = (REQUEST_COLUMNS.index(c) for c in ("id", "status", "event_count"))
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

    async def write(self, batch: Batch) -> None:
        try:
            conn = await self._connect()
            if not self._begun:
                await conn.execute(_BEGIN_LOCKED)
            self._begun = False
            try:
                await self._write(conn, batch)
            except BaseException:
                if not conn.is_closed() and conn.is_in_transaction():
                    await conn.execute("ROLLBACK")
                raise
            if batch.more_waiting():
                # If the COMMIT fails, the BEGIN after it does not run: nothing is left open.
                await conn.execute(f"COMMIT; {_BEGIN_LOCKED}")
                self._begun = True
            else:
                await conn.execute("COMMIT")
        except _UNAVAILABLE as exc:
            await self._reset()
            raise StoreUnavailable() from exc

    async def _write(self, conn: asyncpg.Connection, batch: Batch) -> None:
        expected = batch.expected_requests()
        events = _columns(batch.events, EVENT_COLUMNS)
        requests = _columns(expected, REQUEST_COLUMNS)
        rows: list[Any] = []
        if batch.events and expected:
            rows = await conn.fetch(_EVENTS_AND_REQUESTS_SQL, *events, *requests)
        elif batch.events:
            rows = await conn.fetch(_EVENTS, *events)
        elif expected:
            await conn.execute(_REQUEST_SQL, *requests)
        more = batch.follow_up({key: (event_id, seq) for key, event_id, seq in rows})
        corrections = [
            (row[_ID], row[_STATUS], row[_COUNT])
            for row, guess in zip(more.requests, expected, strict=True)
            if (row[_STATUS], row[_COUNT]) != (guess[_STATUS], guess[_COUNT])
        ]
        if corrections:  # deliveries that were duplicates after all
            await conn.execute(_CORRECT_SQL, *(list(c) for c in zip(*corrections, strict=True)))
        for table_rows in more.extra:
            await _insert(conn, table_rows)
        if batch.prune_rejected_keep is not None:
            await conn.execute(_PRUNE_SQL, batch.prune_rejected_keep)

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


def _columns(rows: list[tuple[Any, ...]], columns: tuple[str, ...]) -> list[list[Any]]:
    """Rows → one array per column, as `unnest` takes them (JSON columns as text)."""
    arrays = [list(values) for values in zip(*rows, strict=True)] or [[] for _ in columns]
    for i, name in enumerate(columns):
        if name in _JSONB:
            arrays[i] = [pg_value(value) for value in arrays[i]]
    return arrays


async def _insert(conn: asyncpg.Connection, rows: TableRows) -> None:
    if rows.rows:
        placeholders = ", ".join(f"${i + 1}" for i in range(len(rows.columns)))
        sql = f"INSERT INTO {rows.table} ({', '.join(rows.columns)}) VALUES ({placeholders})"
        await conn.executemany(sql, [tuple(pg_value(v) for v in row) for row in rows.rows])
