"""Envelopes as JSON bytes: the pull API's pages and the relay's messages.

The queries return each event's envelope as written by the database
(`events_envelope_sql`); the web layer joins a page's envelopes, and the relay publishes
them as they are (`messages`). Rows the database leaves to Python (a value the domain
does not know, a time in another layout) are read again whole and built by
`message_for` (`build_envelope`), which refuses what it cannot read, as every other read
does.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.domain.envelope import Message, message_for, type_of
from bridge.domain.events import EventFilter
from bridge.store.database import connect
from bridge.store.event_queries import equal_clauses, stored_event
from bridge.store.events_envelope_sql import envelope_column
from bridge.store.models import EventRow


def message_columns(dialect: str) -> tuple[Any, ...]:
    """What `messages` reads of each event, in this order (more columns may follow)."""
    return (
        EventRow.seq, EventRow.id, EventRow.product, EventRow.source, EventRow.module,
        EventRow.operation, EventRow.record_id, envelope_column(dialect),
    )  # fmt: skip


@cache
def _page_query(dialect: str, source: bool, module: bool, operation: bool) -> Select[Any]:
    """The page query of a subscription's filter shape, built once: building and keying a
    statement costs about as much as running it on a small page."""
    shape = {"source": source, "module": module, "operation": operation}
    values: dict[str, Any] = {name: bindparam(name) for name, given in shape.items() if given}
    columns: tuple[Any, ...] = (EventRow.seq, envelope_column(dialect).label("envelope"))
    query: Select[Any] = (
        select(*columns)
        .where(*equal_clauses(values, dialect), EventRow.seq > bindparam("after"))
        .order_by(EventRow.seq.asc())
        .limit(bindparam("limit"))
    )
    return query


@lru_cache(maxsize=64)  # a few filter shapes per engine's dialect
def _driver_statement(query: Select[Any], dialect: Dialect) -> tuple[str, tuple[str, ...], Any]:
    """The statement as the driver takes it: its text, its parameters' names in order and
    their defaults (built once per shape and dialect)."""
    compiled = query.compile(dialect=dialect)
    return compiled.string, tuple(compiled.positiontup or ()), compiled.params


async def _rows(conn: AsyncConnection, query: Select[Any], values: dict[str, Any]) -> list[Any]:
    """The page's rows straight from the driver: on SQLite in one hop to aiosqlite's thread
    (SQLAlchemy's cursor takes several: on two busy cores each costs a scheduling delay,
    more than the query); on PostgreSQL as asyncpg's records (SQLAlchemy's result rows
    cost a sixth of a page of 1,000). The columns need no conversion: an int and bytes."""
    sql, order, defaults = _driver_statement(query, conn.dialect)
    every = {**defaults, **values}
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    arguments = [every[name] for name in order]
    if conn.dialect.name == "sqlite":
        return list(await driver.execute_fetchall(sql, arguments))
    return list(await driver.fetch(sql, *arguments))


async def envelope_page(
    engine: AsyncEngine, where: EventFilter, *, after_seq: int, limit: int
) -> tuple[list[bytes], int | None]:
    """The envelopes (UTF-8 JSON) of up to `limit` events matching `where` (a pull
    subscription's filter: source, module, operation) after `after_seq`, oldest first,
    and the last one's seq (None when there are none)."""
    given = {"source": where.source, "module": where.module, "operation": where.operation}
    query = _page_query(engine.dialect.name, *(v is not None for v in given.values()))
    values = {**{k: v for k, v in given.items() if v is not None}, "after": after_seq,
              "limit": limit}  # fmt: skip
    async with connect(engine) as conn:
        texts = [(row[0], row[1]) for row in await _rows(conn, query, values)]
        built = await _built(conn, [seq for seq, text in texts if text is None])
    page = [text if text is not None else built[seq].body for seq, text in texts]
    return page, (texts[-1][0] if texts else None)


async def messages(conn: AsyncConnection, rows: Sequence[Any]) -> list[Message]:
    """The messages of events read as `message_columns`, in order."""
    built = await _built(conn, [row[0] for row in rows if row[7] is None])
    return [_message(row) if row[7] is not None else built[row[0]] for row in rows]


async def _built(conn: AsyncConnection, seqs: Sequence[int]) -> dict[int, Message]:
    """The messages of the events `seqs` (those the database left out), read whole and
    built in Python."""
    if not seqs:
        return {}
    found = await conn.execute(select(EventRow).where(EventRow.seq.in_(seqs)))
    return {row.seq: message_for(stored_event(row)) for row in found}


def _message(row: Any) -> Message:
    seq, event_id, product, source, module, operation, record_id, envelope = row[:8]
    kind = type_of(product, module, operation)
    return Message(event_id, seq, kind, source, module, operation, record_id, bytes(envelope))
