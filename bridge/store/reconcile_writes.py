"""What reconciliation reads from and writes to the event store.

`known_events` gives the matcher the stored events of the records a run polled. `commit_run`
writes a run's reconciled events, their outbox rows, the watch's new cursor and the day's
counts in ONE transaction (reconciliation.md a.2 #4: a crash never splits the cursor from
the events it covers). On PostgreSQL the transaction takes the writer's sequence lock first,
so `seq` order stays commit order for consumers reading "after seq N".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.domain.events import Event, Operation, Origin, Product
from bridge.store.batch import EVENT_COLUMNS, event_row
from bridge.store.batch_postgres import SEQ_LOCK_KEY
from bridge.store.database import begin, connect
from bridge.store.models import DeliveryRow, EventRow, WatchDayRow, WatchRow
from bridge.store.outbox import OutboxHook
from bridge.store.watches import DAY_COUNTERS

# Bound parameters per statement stay well under SQLite's and asyncpg's limits.
_CHUNK = 400


@dataclass(frozen=True, slots=True)
class KnownRow:
    """A stored event of a polled record, as the matcher needs it."""

    record_id: str
    operation: Operation
    occurred_at: datetime
    origin: Origin


async def known_events(
    engine: AsyncEngine,
    *,
    product: Product,
    module: str,
    sources: Sequence[str],
    record_ids: Iterable[str],
) -> dict[str, list[KnownRow]]:
    """The stored events of these records (of these sources), by record id."""
    ids = sorted(set(record_ids))
    found: dict[str, list[KnownRow]] = {}
    if not ids or not sources:
        return found
    async with connect(engine) as conn:
        for start in range(0, len(ids), _CHUNK):
            query = select(
                EventRow.record_id, EventRow.operation, EventRow.occurred_at, EventRow.origin
            ).where(
                EventRow.source.in_(list(sources)),
                EventRow.module == module,
                EventRow.record_id.in_(ids[start : start + _CHUNK]),
                EventRow.product == product,
            )
            for row in await conn.execute(query):
                found.setdefault(row.record_id, []).append(
                    KnownRow(row.record_id, Operation(row.operation), row.occurred_at,
                             Origin(row.origin))
                )  # fmt: skip
    return found


async def operations_delivered(
    engine: AsyncEngine, *, sources: Sequence[str], module: str
) -> frozenset[Operation]:
    """Which operations webhooks of these sources ever delivered for `module` (a Books
    rule exists for the entity: its changes are subscribed)."""
    if not sources:
        return frozenset()
    query = (
        select(EventRow.operation)
        .where(
            EventRow.source.in_(list(sources)),
            EventRow.module == module,
            EventRow.origin == Origin.WEBHOOK,
        )
        .distinct()
    )
    async with connect(engine) as conn:
        return frozenset(Operation(op) for op in (await conn.execute(query)).scalars())


async def webhook_versions(
    engine: AsyncEngine, *, sources: Sequence[str], module: str, since: datetime, until: datetime
) -> list[tuple[str, datetime]]:
    """(record id, time) of the non-delete webhook events of these sources for `module`
    whose time is in [since, until]: the versions a listing of that span must return."""
    if not sources or until < since:
        return []
    query = select(EventRow.record_id, EventRow.occurred_at).where(
        EventRow.source.in_(list(sources)),
        EventRow.module == module,
        EventRow.origin == Origin.WEBHOOK,
        EventRow.operation != Operation.DELETED,
        EventRow.occurred_at >= since,
        EventRow.occurred_at <= until,
    )
    async with connect(engine) as conn:
        return [(row.record_id, row.occurred_at) for row in await conn.execute(query)]


async def _insert_events(conn: AsyncConnection, events: Sequence[Event]) -> list[Event]:
    """Insert (ON CONFLICT DO NOTHING); the events that were new, with their `seq`."""
    by_key = {e.dedup_key: e for e in events}
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    new: list[Event] = []
    rows = [dict(zip(EVENT_COLUMNS, event_row(e), strict=True)) for e in by_key.values()]
    for start in range(0, len(rows), _CHUNK // len(EVENT_COLUMNS) or 1):
        chunk = rows[start : start + (_CHUNK // len(EVENT_COLUMNS) or 1)]
        statement = (
            dialect.insert(EventRow)
            .values(chunk)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(EventRow.seq, EventRow.dedup_key)
        )
        for seq, key in await conn.execute(statement):
            event = by_key[key]
            event.seq = int(seq)
            new.append(event)
    new.sort(key=lambda e: e.seq)
    return new


async def _count_day(
    conn: AsyncConnection, watch_id: int, day: str, counts: dict[str, int]
) -> None:
    """Add `counts` to the watch's row for `day` (created at zero first)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    await conn.execute(
        dialect.insert(WatchDayRow)
        .values(watch_id=watch_id, day=day, **dict.fromkeys(DAY_COUNTERS, 0))
        .on_conflict_do_nothing(index_elements=["watch_id", "day"])
    )
    changes = {name: getattr(WatchDayRow, name) + n for name, n in counts.items() if n}
    if changes:
        await conn.execute(
            update(WatchDayRow)
            .where(WatchDayRow.watch_id == watch_id, WatchDayRow.day == day)
            .values(**changes)
        )


async def commit_run(
    engine: AsyncEngine,
    *,
    events: Sequence[Event],
    push_sinks: tuple[str, ...],
    watch_id: int | None,
    owner: str | None,
    watch_values: dict[str, Any],
    day: str,
    counts: dict[str, int],
) -> list[Event]:
    """Store a run's events and outbox rows, update its watch (releasing the lease when
    `owner` is given) and add to the day's counts, in one transaction. Returns the events
    that were new; a version already stored (a re-read, or a webhook that came late) is
    skipped by its unique dedup key. The new events are counted by cause (`miss_cause`)."""
    async with begin(engine) as conn:
        if conn.dialect.name == "postgresql" and events:
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({SEQ_LOCK_KEY})"))
        new = await _insert_events(conn, events) if events else []
        for table_rows in OutboxHook(push_sinks)(new):
            await conn.execute(
                insert(DeliveryRow),
                [dict(zip(table_rows.columns, row, strict=True)) for row in table_rows.rows],
            )
        if watch_id is not None:
            query = update(WatchRow).where(WatchRow.id == watch_id)
            values = dict(watch_values)
            if owner is not None:
                query = query.where(WatchRow.lease_owner == owner)
                values.update(lease_owner=None, lease_until=None)
            if values:
                await conn.execute(query.values(**values))
            counts = dict(counts)
            for event in new:
                if event.miss_cause is not None:
                    counts[event.miss_cause] = counts.get(event.miss_cause, 0) + 1
            await _count_day(conn, watch_id, day, counts)
    return new
