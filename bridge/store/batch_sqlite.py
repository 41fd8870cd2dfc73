"""SQLite batch writes: a dedicated sqlite3 connection on one dedicated thread.

One `to_thread` hop per batch; SQLite releases the GIL while it works and fsyncs, so the
event loop keeps answering HTTP meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bridge.domain import jsonx
from bridge.errors import StoreUnavailable
from bridge.store.batch import EVENT_COLUMNS, REQUEST_COLUMNS, FollowUpFn

# SQLite caps bound parameters per statement (32766 since 3.32); stay well under it.
_MAX_ROWS_PER_INSERT = 500


def sqlite_value(value: Any) -> Any:
    """Python value → what SQLAlchemy would have stored (its DATETIME text, JSON text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, (dict, list)):
        return jsonx.dumps(value).decode("utf-8")
    if isinstance(value, bool):
        return int(value)
    return value


class SqliteBatchBackend:
    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self._path = path
        self._synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        # One thread owns the connection for its whole life.
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA busy_timeout=30000")
            self._conn = conn
        return self._conn

    def _write(
        self, events: list[tuple[Any, ...]], follow_up: FollowUpFn, prune: int | None
    ) -> None:
        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            self._reset()
            raise StoreUnavailable() from exc
        try:
            more = follow_up(self._insert_events(conn, events))
            _insert(conn, "inbound_requests", REQUEST_COLUMNS, more.requests)
            for rows in more.extra:
                _insert(conn, rows.table, rows.columns, rows.rows)
            if prune is not None:
                _prune(conn, prune)
            conn.execute("COMMIT")
        except BaseException as exc:
            self._rollback()
            if isinstance(exc, sqlite3.OperationalError):
                raise StoreUnavailable() from exc
            raise

    def _insert_events(
        self, conn: sqlite3.Connection, rows: list[tuple[Any, ...]]
    ) -> dict[str, tuple[str, int]]:
        inserted: dict[str, tuple[str, int]] = {}
        if not rows:
            return inserted
        one = "(" + ",".join("?" * len(EVENT_COLUMNS)) + ")"
        for start in range(0, len(rows), _MAX_ROWS_PER_INSERT):
            chunk = rows[start : start + _MAX_ROWS_PER_INSERT]
            sql = (
                f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES "
                f"{','.join([one] * len(chunk))} "
                "ON CONFLICT (dedup_key) DO NOTHING RETURNING dedup_key, id, seq"
            )
            params = [sqlite_value(v) for row in chunk for v in row]
            for key, event_id, seq in conn.execute(sql, params).fetchall():
                inserted[key] = (event_id, seq)
        return inserted

    def _rollback(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                self._reset()

    def _reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    async def write(
        self, events: list[tuple[Any, ...]], follow_up: FollowUpFn, prune: int | None
    ) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._write, events, follow_up, prune)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self._reset)
        self._thread.shutdown(wait=True)


def _insert(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]
) -> None:
    if rows:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({','.join('?' * len(columns))})"
        conn.executemany(sql, [tuple(sqlite_value(v) for v in row) for row in rows])


def _prune(conn: sqlite3.Connection, keep: int) -> None:
    conn.execute(
        "DELETE FROM inbound_requests WHERE status = 'rejected' AND id <= ("
        "SELECT id FROM inbound_requests WHERE status = 'rejected' "
        "ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (keep,),
    )
