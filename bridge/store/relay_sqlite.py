"""The relay's frequent write transactions on SQLite (a claim's lease, a batch's
settlement), each run whole, BEGIN to COMMIT, on a thread and a connection of their own.

Through the async engine, every statement of a transaction is a hop to the driver's
thread and back to the event loop, and SQLite's single write lock is held across those
hops. With the relay inside `serve`, the loop is busy answering webhooks, so the relay's
next step waited in the loop's queue while it held the lock, and the ingest writer (and
every webhook of its batch) waited for the relay: at 2,000 webhooks/s a claim's
transaction took 9 ms at the median and 133 ms at p99 (waiting for the lock included).
Here the lock is held for the statements' own work (a lease ~0.3 ms at the median, a
settlement ~0.5 ms), whatever the loop is doing; the thread waits for it, never the loop.

The statements are the outbox's own (`store.outbox`), compiled once for SQLite; values go
to the driver as SQLAlchemy would write them (`sqlite.datetime_text`).
"""

from __future__ import annotations

import enum
import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Executable, Select, bindparam, func, literal_column, select
from sqlalchemy.dialects.sqlite import pysqlite

from bridge.domain.attempts import Attempt
from bridge.store.disk_thread import DiskThread
from bridge.store.errors import translate
from bridge.store.models import AttemptRow
from bridge.store.outbox import Failure, delivered_update, failed_update, lease_rows
from bridge.store.sqlite import datetime_text, pragmas

T = TypeVar("T")
# A statement as SQLite text, the order of its parameters, and the values it holds itself.
_Fixed = tuple[str, tuple[str, ...], dict[str, Any]]

_DIALECT = pysqlite.dialect()
_ATTEMPT_COLUMNS = ("delivery_id", "at", "outcome", "latency_ms", "status_code", "error",
                    "response", "replica")  # fmt: skip


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return datetime_text(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value


@cache
def _lease() -> _Fixed:
    return _fixed(lease_rows())


@cache
def _delivered() -> _Fixed:
    """`delivered_update` for ids given as one JSON array (one statement for any count)."""
    ids: Select[Any] = select(literal_column("value")).select_from(func.json_each(bindparam("ids")))
    return _fixed(delivered_update(ids, datetime.min))


@cache
def _attempt_insert() -> str:
    columns = ", ".join(_ATTEMPT_COLUMNS)
    marks = ", ".join("?" * len(_ATTEMPT_COLUMNS))
    return f"INSERT INTO {AttemptRow.__tablename__} ({columns}) VALUES ({marks})"


def _fixed(statement: Executable) -> _Fixed:
    """SQLite text, parameter order and the statement's own values of a statement whose
    parameters are all named: compiled once, values merged per execution."""
    compiled = statement.compile(dialect=_DIALECT)  # type: ignore[attr-defined]
    names = tuple(compiled.positiontup or ())
    own = {name: compiled.binds[name].value for name in names if not compiled.binds[name].required}
    return str(compiled), names, own


def _params(fixed: _Fixed, values: Mapping[str, Any]) -> list[Any]:
    _, names, own = fixed
    return [_value(values[name] if name in values else own[name]) for name in names]


def _run_statement(conn: sqlite3.Connection, statement: Executable) -> None:
    """A statement compiled now, with the values it holds (rare: failed rows)."""
    fixed = _fixed(statement)
    conn.execute(fixed[0], _params(fixed, {}))


class SqliteRelayWrites:
    """`outbox.RelayWrites` on SQLite: one connection (commits without fsync, like the
    relay's engine: `database.create_relay_engine`), used on one thread."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._thread = DiskThread("sqlite-relay")

    async def lease(self, values: dict[str, Any]) -> Sequence[tuple[int, int, int]]:
        fixed = _lease()
        params = _params(fixed, values)
        rows: list[tuple[int, int, int]] = await self._thread.run(
            lambda: self._transaction(lambda conn: conn.execute(fixed[0], params).fetchall())
        )
        return rows

    async def settle(
        self,
        delivered: Sequence[int],
        failures: Sequence[Failure],
        attempts: Sequence[Attempt],
        now: datetime,
        publish_ms: float | None,
    ) -> None:
        mark = _delivered()
        mark_params = _params(
            mark,
            {"ids": json.dumps(list(delivered)), "delivered_at": now, "publish_ms": publish_ms},
        )
        rows = [
            (a.delivery_id, datetime_text(a.at), a.outcome.value, a.latency_ms, a.status_code,
             a.error, a.response, a.replica)
            for a in attempts
        ]  # fmt: skip

        def work(conn: sqlite3.Connection) -> None:
            if delivered:
                conn.execute(mark[0], mark_params)
            for failure in failures:
                _run_statement(conn, failed_update(failure))
            if rows:
                conn.executemany(_attempt_insert(), rows)

        await self._thread.run(lambda: self._transaction(work))

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """On the thread: BEGIN IMMEDIATE (waiting for the lock), `work`, COMMIT."""
        try:
            conn = self._conn or self._connect()
            conn.execute("BEGIN IMMEDIATE")  # waits in SQLite's busy handler (see _connect)
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result
        except sqlite3.Error as exc:
            self._reset()  # the next transaction starts on a fresh connection
            raise (translate(exc) or exc) from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, timeout=0, check_same_thread=False)
        for statement in pragmas("NORMAL"):
            conn.execute(statement)
        self._conn = conn
        return conn

    def _reset(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    async def close(self) -> None:
        await self._thread.run(self._reset)
        self._thread.stop()
