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
    url: str, *, sqlite_synchronous: Synchronous = "FULL", pool_size: int = 10
) -> AsyncEngine:
    """An async engine for `url`, with SQLite set up for concurrent readers and one writer."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _setup_sqlite(engine, sqlite_synchronous)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=10,
        connect_args={"timeout": 5, "command_timeout": 30},
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
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads, with driver errors translated."""
    async with translated(), engine.connect() as conn:
        yield conn


async def ping(engine: AsyncEngine) -> None:
    async with connect(engine) as conn:
        await conn.execute(text("SELECT 1"))
