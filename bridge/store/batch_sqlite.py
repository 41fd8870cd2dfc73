"""SQLite batch writes: one dedicated connection; statements on the loop, COMMIT on a thread.

The inserts of a batch run on the event-loop thread: they are quick in-memory B-tree work,
and running them on another thread made that thread and the loop pass the GIL back and
forth once per statement and per returned row, each time waiting for the busy loop to let
go. Only what waits on the disk runs on the dedicated thread: COMMIT (the WAL write and its
fsync), opening the connection, and a BEGIN that has to wait for another process's lock.
The connection is used by one batch at a time (the writer is the only caller).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from bridge.domain import jsonx
from bridge.store.batch import (
    EVENT_COLUMNS,
    JSON_COLUMNS,
    MODELS,
    REQUEST_COLUMNS,
    Inserted,
    TableRows,
)
from bridge.store.disk_thread import DiskThread
from bridge.store.errors import translate
from bridge.store.sqlite import Synchronous, begin_immediate, datetime_text, pragmas
from bridge.store.types import UTCDateTime

# SQLite caps bound parameters per statement (32766 since 3.32); stay well under it.
_MAX_PARAMETERS = 6000
_CACHED_STATEMENTS = 1024  # one prepared INSERT per table and row count: batches vary
_ID, _KEY = EVENT_COLUMNS.index("id"), EVENT_COLUMNS.index("dedup_key")


def _json_text(value: object) -> str:
    return jsonx.dumps(value).decode("utf-8")


# By exact type: the values rows hold (see batch.TableRows); anything else passes as is.
_CONVERT: dict[type, Callable[[Any], Any]] = {
    datetime: datetime_text,
    dict: _json_text,
    list: _json_text,
}


RowConverter = Callable[[tuple[Any, ...]], list[Any]]


def _by_column(columns: Sequence[str], converters: dict[str, Callable[[Any], Any]]) -> RowConverter:
    """A row converter for a fixed table shape: only the named columns are touched."""
    positions = [(i, converters[c]) for i, c in enumerate(columns) if c in converters]

    def convert(row: tuple[Any, ...]) -> list[Any]:
        values = list(row)
        for i, to_text in positions:
            values[i] = to_text(values[i])
        return values

    return convert


def _by_type(row: tuple[Any, ...]) -> list[Any]:
    """A row converter for any table (the outbox's rows): by each value's type."""
    get = _CONVERT.get
    return [v if (c := get(type(v))) is None else c(v) for v in row]


def _column_converters(table: str, columns: Sequence[str]) -> dict[str, Callable[[Any], Any]]:
    """By the model's column types: datetimes and JSON documents become SQLite text."""
    model_columns = MODELS[table].__table__.columns
    converters: dict[str, Callable[[Any], Any]] = {}
    for name in columns:
        column = model_columns[name]
        if isinstance(column.type, UTCDateTime):
            converters[name] = _optional(datetime_text) if column.nullable else datetime_text
        elif name in JSON_COLUMNS:
            converters[name] = _json_text
    return converters


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


# The ingest rows have fixed types (`store.batch.event_row`, `request_row`).
_EVENT_ROW = _by_column(EVENT_COLUMNS, _column_converters("events", EVENT_COLUMNS))
_REQUEST_ROW = _by_column(REQUEST_COLUMNS, _column_converters("inbound_requests", REQUEST_COLUMNS))


class SqliteBatchBackend:
    """One connection, set up like the engine's (`store.sqlite.pragmas`), but with its busy
    timeout at 0 while on the loop: a BEGIN that would wait is retried on the thread."""

    requests_with_events = False  # one statement per table is as cheap here

    def __init__(self, path: str, synchronous: Synchronous = "FULL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        # The thread that waits on the disk; it and the loop never use the connection at once.
        self._thread = DiskThread("sqlite-writer")

    async def begin(self) -> _SqliteTransaction:
        conn = self._conn
        if conn is None:
            conn = await self._thread.run(self._connect)
        try:
            conn.execute("BEGIN IMMEDIATE")  # busy_timeout 0: never blocks the loop
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                self._reset()
                raise _translated(exc) from exc
            await self._thread.run(self._begin_waiting)
        return _SqliteTransaction(self, conn)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._path,
                isolation_level=None,
                timeout=0,
                check_same_thread=False,
                cached_statements=_CACHED_STATEMENTS,
            )
            for statement in pragmas(self._synchronous):
                conn.execute(statement)
            conn.execute("PRAGMA busy_timeout=0")
        except sqlite3.Error as exc:
            raise _translated(exc) from exc
        self._conn = conn
        return conn

    def _begin_waiting(self) -> None:
        """BEGIN IMMEDIATE, waiting for another connection's write lock (on the thread)."""
        assert self._conn is not None
        try:
            begin_immediate(self._conn)
        except sqlite3.Error as exc:
            self._rollback()
            raise _translated(exc) from exc

    def _commit(self) -> None:
        assert self._conn is not None
        try:
            self._conn.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            raise _translated(exc) from exc

    def _rollback(self) -> None:
        if self._conn is not None:
            try:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                self._reset()

    def _reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    async def close(self) -> None:
        await self._thread.run(self._reset)
        self._thread.stop()


class _SqliteTransaction:
    """A batch's transaction: statements on the loop, COMMIT on the disk thread."""

    def __init__(self, backend: SqliteBatchBackend, conn: sqlite3.Connection) -> None:
        self._backend = backend
        self._conn = conn

    async def insert_events(
        self, events: list[tuple[Any, ...]], requests: list[tuple[Any, ...]] | None
    ) -> Inserted:
        try:
            return _insert_events(self._conn, events)
        except sqlite3.Error as exc:
            raise _translated(exc) from exc

    async def finish(
        self, requests: list[tuple[Any, ...]], extra: list[TableRows], prune_keep: int | None
    ) -> None:
        try:
            _insert(self._conn, "inbound_requests", REQUEST_COLUMNS, requests, _REQUEST_ROW)
            for rows in extra:
                _insert(self._conn, rows.table, rows.columns, rows.rows, _by_type)
            if prune_keep is not None:
                _prune(self._conn, prune_keep)
        except sqlite3.Error as exc:
            raise _translated(exc) from exc

    async def commit(self, *, more_waiting: bool) -> None:
        await self._backend._thread.run(self._backend._commit)

    async def rollback(self) -> None:
        self._backend._rollback()


def _translated(exc: BaseException) -> BaseException:
    """What to raise for a driver error (`store.errors` decides): itself, if a bug."""
    return translate(exc) or exc


def _insert_events(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> Inserted:
    """Insert new events (ON CONFLICT DO NOTHING); {dedup_key: (id, seq)} of those inserted.

    No RETURNING: each returned row would cost a step and a tuple; `lastrowid` tells all.
    """
    inserted: Inserted = {}
    step = _MAX_PARAMETERS // len(EVENT_COLUMNS)
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        cursor = conn.execute(
            _values_sql("events", EVENT_COLUMNS, len(chunk), "ON CONFLICT (dedup_key) DO NOTHING"),
            [value for row in chunk for value in _EVENT_ROW(row)],
        )
        if cursor.rowcount == len(chunk) and cursor.lastrowid:
            # All new (the usual case). Under the write lock, AUTOINCREMENT numbers the rows
            # of one INSERT one after another, in VALUES order, ending at lastrowid.
            first = cursor.lastrowid - len(chunk) + 1
            for offset, row in enumerate(chunk):
                inserted[row[_KEY]] = (row[_ID], first + offset)
        elif cursor.rowcount > 0:
            # Some were duplicates: the ids chosen for this batch tell which rows are new.
            ids = [row[_ID] for row in chunk]
            found = conn.execute(
                f"SELECT dedup_key, id, seq FROM events WHERE id IN ({','.join('?' * len(ids))})",
                ids,
            )
            for key, event_id, seq in found:
                inserted[key] = (event_id, seq)
    return inserted


def _insert(
    conn: sqlite3.Connection,
    table: str,
    columns: tuple[str, ...],
    rows: list[tuple[Any, ...]],
    convert: RowConverter,
) -> None:
    step = _MAX_PARAMETERS // len(columns)
    for start in range(0, len(rows), step):
        chunk = rows[start : start + step]
        conn.execute(
            _values_sql(table, columns, len(chunk)),
            [value for row in chunk for value in convert(row)],
        )


@functools.lru_cache(maxsize=_CACHED_STATEMENTS)
def _values_sql(table: str, columns: tuple[str, ...], count: int, suffix: str = "") -> str:
    """`INSERT INTO table (columns) VALUES (?, …), … suffix` for `count` rows."""
    one = "(" + ",".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {','.join([one] * count)} {suffix}"


def _prune(conn: sqlite3.Connection, keep: int) -> None:
    conn.execute(
        "DELETE FROM inbound_requests WHERE status = 'rejected' AND id <= ("
        "SELECT id FROM inbound_requests WHERE status = 'rejected' "
        "ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (keep,),
    )
