"""PostgreSQL batch writes: a dedicated asyncpg connection, few round trips per batch.

A batch's events and request rows go in one statement (`unnest` arrays, a data-modifying
CTE), its outbox rows in one more. The request rows are written as they will be if every
event is new; the few whose delivery turned out to be a duplicate are corrected in one
more statement.
"""

from __future__ import annotations

import functools
from typing import Any

import asyncpg
from sqlalchemy import JSON, BigInteger, Boolean, Integer, LargeBinary, String

from bridge.domain import jsonx
from bridge.errors import StoreUnavailable
from bridge.store.batch import (
    EVENT_COLUMNS,
    JSON_COLUMNS,
    MODELS,
    REQUEST_COLUMNS,
    Inserted,
    TableRows,
)
from bridge.store.errors import translate
from bridge.store.types import UTCDateTime

# One constant key for pg_advisory_xact_lock: event inserts from every replica take turns,
# so `seq` order is commit order and a consumer reading "after seq N" never skips a row
# that commits later with a smaller number.
SEQ_LOCK_KEY = 0x7A6F686F

_BEGIN_LOCKED = f"BEGIN; SELECT pg_advisory_xact_lock({SEQ_LOCK_KEY})"


def _array_type(table: str, name: str) -> str:
    """The PostgreSQL type of `unnest`'s array for a column, from the model's column type.
    Strings go as `text` (a cast to `varchar(n)` would silently truncate), JSON as text
    cast to jsonb in the SELECT."""
    column_type = MODELS[table].__table__.columns[name].type
    if isinstance(column_type, (String, JSON)):
        return "text"
    if isinstance(column_type, UTCDateTime):
        return "timestamptz"
    if isinstance(column_type, LargeBinary):
        return "bytea"
    if isinstance(column_type, Boolean):
        return "bool"
    if isinstance(column_type, BigInteger):
        return "bigint"
    if isinstance(column_type, Integer):
        return "int"
    raise TypeError(f"no array type for {table}.{name} ({column_type!r})")


@functools.cache  # `_insert` asks for the outbox rows' statement at each batch
def _insert_unnest(table: str, columns: tuple[str, ...], first: int) -> str:
    """INSERT of the rows whose columns are parameters $first, $first+1, … (one array each),
    in array order."""
    arrays = ", ".join(f"${first + i}::{_array_type(table, c)}[]" for i, c in enumerate(columns))
    values = ", ".join(f"{c}::jsonb" if c in JSON_COLUMNS else c for c in columns)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} "
        f"FROM unnest({arrays}) WITH ORDINALITY AS t({', '.join(columns)}, n) ORDER BY n"
    )


_EVENTS = (
    _insert_unnest("events", EVENT_COLUMNS, 1)
    + " ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, id, seq"
)
_REQUEST_SQL = _insert_unnest("inbound_requests", REQUEST_COLUMNS, 1)
_EVENTS_AND_REQUESTS_SQL = (
    f"WITH ev AS ({_EVENTS}), "
    f"rq AS ({_insert_unnest('inbound_requests', REQUEST_COLUMNS, len(EVENT_COLUMNS) + 1)}) "
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


def pg_value(value: Any) -> Any:
    # asyncpg takes json/jsonb as text.
    return jsonx.dumps(value).decode("utf-8") if isinstance(value, (dict, list)) else value


class PostgresBatchBackend:
    """One connection; a transaction per batch, holding the sequence lock.

    Under load the next batch is already queued when one commits: then `COMMIT` and the
    next `BEGIN` with its lock travel in one round trip, and the next batch finds its
    transaction open (round trips, not CPU, bound a batch here).
    """

    requests_with_events = True  # events and request rows in one statement

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._begun = False  # a transaction holding the lock is open for the next batch

    async def begin(self) -> _PostgresTransaction:
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await asyncpg.connect(self._dsn, timeout=5, command_timeout=30)
                self._begun = False
            if not self._begun:
                await self._conn.execute(_BEGIN_LOCKED)
            self._begun = False
        except Exception as exc:
            raise await self._translated(exc) from exc
        return _PostgresTransaction(self, self._conn)

    async def _translated(self, exc: BaseException) -> BaseException:
        """What to raise for a driver error (`store.errors` decides); an unavailable
        database also drops the connection, so the next batch connects afresh."""
        replacement = translate(exc)
        if isinstance(replacement, StoreUnavailable):
            await self._reset()
        return replacement or exc

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


class _PostgresTransaction:
    """A batch's transaction: events and expected request rows in one statement, then
    corrections, outbox rows and the commit."""

    def __init__(self, backend: PostgresBatchBackend, conn: asyncpg.Connection) -> None:
        self._backend = backend
        self._conn = conn
        self._expected: list[tuple[Any, ...]] = []

    async def insert_events(
        self, events: list[tuple[Any, ...]], requests: list[tuple[Any, ...]] | None
    ) -> Inserted:
        self._expected = requests or []
        rows: list[Any] = []
        try:
            event_arrays = _columns(events, EVENT_COLUMNS)
            request_arrays = _columns(self._expected, REQUEST_COLUMNS)
            if events and self._expected:
                rows = await self._conn.fetch(
                    _EVENTS_AND_REQUESTS_SQL, *event_arrays, *request_arrays
                )
            elif events:
                rows = await self._conn.fetch(_EVENTS, *event_arrays)
            elif self._expected:
                await self._conn.execute(_REQUEST_SQL, *request_arrays)
        except Exception as exc:
            raise await self._backend._translated(exc) from exc
        return {key: (event_id, seq) for key, event_id, seq in rows}

    async def finish(
        self, requests: list[tuple[Any, ...]], extra: list[TableRows], prune_keep: int | None
    ) -> None:
        try:
            missing = requests[len(self._expected) :]
            if missing:
                await self._conn.execute(_REQUEST_SQL, *_columns(missing, REQUEST_COLUMNS))
            corrections = [
                (row[_ID], row[_STATUS], row[_COUNT])
                for row, guess in zip(requests, self._expected, strict=False)
                if (row[_STATUS], row[_COUNT]) != (guess[_STATUS], guess[_COUNT])
            ]
            if corrections:  # deliveries that were duplicates after all
                await self._conn.execute(
                    _CORRECT_SQL, *(list(c) for c in zip(*corrections, strict=True))
                )
            for table_rows in extra:
                await _insert(self._conn, table_rows)
            if prune_keep is not None:
                await self._conn.execute(_PRUNE_SQL, prune_keep)
        except Exception as exc:
            raise await self._backend._translated(exc) from exc

    async def commit(self, *, more_waiting: bool) -> None:
        try:
            if more_waiting:
                # If the COMMIT fails, the BEGIN after it does not run: nothing is left open.
                await self._conn.execute(f"COMMIT; {_BEGIN_LOCKED}")
                self._backend._begun = True
            else:
                await self._conn.execute("COMMIT")
        except Exception as exc:
            raise await self._backend._translated(exc) from exc

    async def rollback(self) -> None:
        conn = self._conn
        try:
            if not conn.is_closed() and conn.is_in_transaction():
                await conn.execute("ROLLBACK")
        except Exception:
            # A connection that cannot roll back is not used again; the error that led
            # here is the one the writer reports.
            await self._backend._reset()


def _columns(rows: list[tuple[Any, ...]], columns: tuple[str, ...]) -> list[list[Any]]:
    """Rows → one array per column, as `unnest` takes them (JSON columns as text)."""
    arrays = [list(values) for values in zip(*rows, strict=True)] or [[] for _ in columns]
    for i, name in enumerate(columns):
        if name in JSON_COLUMNS:
            arrays[i] = [pg_value(value) for value in arrays[i]]
    return arrays


async def _insert(conn: asyncpg.Connection, rows: TableRows) -> None:
    """One statement for all the rows, as for the events (`executemany` ran the INSERT
    once per row in the backend)."""
    if rows.rows:
        await conn.execute(
            _insert_unnest(rows.table, rows.columns, 1), *_columns(rows.rows, rows.columns)
        )
