"""The engine, and transactions and connections whose driver errors are translated at the
boundary (`store.errors` decides what each means)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bridge.store.errors import translated
from bridge.store.sqlite import Synchronous, pragmas


def create_engine(
    url: str,
    *,
    sqlite_synchronous: Synchronous = "FULL",
    pool_size: int = 10,
    pg_settings: dict[str, str] | None = None,
    autocommit: bool = False,
    pre_ping: bool = True,
) -> AsyncEngine:
    """An async engine for `url`, with SQLite set up for concurrent readers and one writer;
    `pg_settings` are set on every PostgreSQL connection; `autocommit` (PostgreSQL only:
    `create_read_engine`) runs each statement on its own; `pre_ping` (PostgreSQL) checks a
    pooled connection before lending it (three round trips outside autocommit)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _setup_sqlite(engine, sqlite_synchronous)
        return engine
    connect_args: dict[str, Any] = {"timeout": 5, "command_timeout": 30}
    if pg_settings:
        connect_args["server_settings"] = pg_settings
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        pool_timeout=10,
        connect_args=connect_args,
        **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}),
    )


# The relay's PostgreSQL sessions. Commits that need not wait for the disk (see below).
# Plans made for each execution, with the outbox's size as it is then: asyncpg prepares
# each statement once per connection, and PostgreSQL's generic plan, chosen while the
# outbox was nearly empty (a relay's first claims), found a lane's oldest row by walking
# the whole primary key (a claim ran for 18 s and more at 45k pending rows). No sequential
# scans: the relay's statements find rows by key or by a bounded index walk, and a
# planner that believes the outbox small took one to mark 100 rows (8-10 ms at 30k rows,
# growing with it). No JIT: compiling cost more than a claim itself.
RELAY_PG_SETTINGS = {
    "synchronous_commit": "off",
    "plan_cache_mode": "force_custom_plan",
    "enable_seqscan": "off",
    "jit": "off",
}


def create_read_engine(url: str, engine: AsyncEngine, *, pool_size: int = 5) -> AsyncEngine:
    """The engine of the pull API's reads, each one statement: on PostgreSQL an engine of
    its own in autocommit, on SQLite `engine` itself.

    A read through the main engine took four round trips for its one statement: the
    pool's liveness check is BEGIN, an empty query and ROLLBACK (SQLAlchemy checks inside
    a transaction, for pgbouncer's transaction mode), then BEGIN on the first statement
    and ROLLBACK when the connection goes back. In autocommit the check is the empty query
    alone and the statement goes without BEGIN or ROLLBACK: two round trips. Never for
    writes: nothing here makes several statements one transaction."""
    if url.startswith("sqlite"):
        return engine
    return create_engine(url, pool_size=pool_size, autocommit=True)


def create_relay_engine(url: str, *, pool_size: int = 4) -> AsyncEngine:
    """The outbox relay's own engine. Its commits return before they are on disk (SQLite
    `synchronous=NORMAL` in WAL mode, PostgreSQL `synchronous_commit=off`): the relay's
    leases and settlements may be lost in a power cut (or a crash of PostgreSQL) without
    harm, since a lost one only means an event is sent again, which at-least-once allows.
    That saves an fsync per commit, which on SQLite the ingest writer would wait for under
    the same write lock. Atomicity and order are kept: any later durable commit makes the
    earlier ones durable too.

    No check of a pooled connection before each use (pre-ping: BEGIN, an empty query and
    ROLLBACK, three round trips before each of the relay's one-statement transactions):
    after PostgreSQL restarts, the relay's next statement fails, the pool drops its
    connections, and the statement made again (a settlement at once, a claim in the
    relay's next turn) runs on a new one."""
    return create_engine(
        url,
        sqlite_synchronous="NORMAL",
        pool_size=pool_size,
        pg_settings=RELAY_PG_SETTINGS,
        pre_ping=False,
    )


def _setup_sqlite(engine: AsyncEngine, synchronous: Synchronous) -> None:
    statements = pragmas(synchronous)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()


@asynccontextmanager
async def begin(
    engine: AsyncEngine, *, conflict: str | None = None
) -> AsyncIterator[AsyncConnection]:
    """A transaction, committed on success, with driver errors translated (a unique
    constraint refusing a row becomes `Conflict(conflict)` when a message is given)."""
    async with translated(conflict=conflict), engine.begin() as conn:
        yield conn


@asynccontextmanager
async def alone(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection whose statements each commit on their own, for work that is one
    statement: on PostgreSQL without BEGIN and COMMIT (two round trips fewer); elsewhere a
    transaction committed on success, as `begin`."""
    if engine.dialect.name != "postgresql":
        async with begin(engine) as conn:
            yield conn
        return
    async with translated(), engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads, with driver errors translated."""
    async with translated(), engine.connect() as conn:
        yield conn


async def ping(engine: AsyncEngine) -> None:
    async with connect(engine) as conn:
        await conn.execute(text("SELECT 1"))
