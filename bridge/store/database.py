"""The engine, its SQLite pragmas, and the translation of driver errors at the boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bridge.errors import StoreUnavailable

# Errors that mean "the database cannot be reached or is not answering", as opposed to a
# bug in a query: these become StoreUnavailable, and webhooks answer 503 so Zoho retries.
_UNAVAILABLE = (OperationalError, InterfaceError, ConnectionError, OSError, TimeoutError)


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, _UNAVAILABLE):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def create_engine(
    url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10
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


def _setup_sqlite(engine: AsyncEngine, synchronous: str) -> None:
    assert synchronous in {"FULL", "NORMAL"}

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers run while the writer commits; FULL fsyncs every commit, so a
        # 2xx survives power loss, not only a crash of the process.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Turn "database unreachable" driver errors into StoreUnavailable."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise StoreUnavailable() from exc
        raise


@asynccontextmanager
async def begin(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction, committed on success, with driver errors translated."""
    async with translate_errors(), engine.begin() as conn:
        yield conn


@asynccontextmanager
async def connect(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads, with driver errors translated."""
    async with translate_errors(), engine.connect() as conn:
        yield conn


async def ping(engine: AsyncEngine) -> None:
    async with connect(engine) as conn:
        await conn.execute(text("SELECT 1"))
