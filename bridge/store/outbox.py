"""The transactional outbox: queueing rows with the event, claiming them, settling them.

Rows are written by `OutboxHook` inside the transaction that inserts the events, so an
event is stored if and only if its deliveries are queued. Relays claim rows with a lease;
on PostgreSQL `FOR UPDATE SKIP LOCKED` lets several replicas claim side by side without
ever taking the same row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.delivery import DeadLetter, DeliveryStatus, Retry, record_key
from bridge.domain.events import Event, StoredEvent
from bridge.store.batch import TableRows
from bridge.store.database import begin, connect
from bridge.store.event_queries import stored_event
from bridge.store.models import DeliveryRow, EventRow

PENDING = DeliveryStatus.PENDING.value
MAX_ERROR = 1000  # characters of an error message kept on the row


@dataclass(frozen=True)
class OutboxHook:
    """The writer's in-transaction hook: one pending row per new event per push sink."""

    sinks: tuple[str, ...]

    def __call__(self, inserted: Sequence[Event]) -> list[TableRows]:
        if not self.sinks or not inserted:
            return []
        rows = [
            delivery_row(e.seq, record_key(e.source, e.module, e.record_id), sink, _when(e))
            for e in inserted  # sorted by seq: row ids follow seq, which ordering relies on
            for sink in self.sinks
        ]  # fmt: skip
        columns = tuple(rows[0])
        return [TableRows("deliveries", columns, [tuple(r[c] for c in columns) for r in rows])]


def _when(event: Event) -> datetime:
    assert event.received_at is not None  # set when the event was queued
    return event.received_at


def delivery_row(
    seq: int, key: str, sink: str, now: datetime, *, replay: bool = False
) -> dict[str, Any]:
    return {
        "event_seq": seq,
        "sink": sink,
        "record_key": key,
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "replay": replay,
    }


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row this relay holds the lease on, with the event to publish."""

    delivery_id: int
    attempts: int
    event: StoredEvent


async def claim(
    engine: AsyncEngine, sink: str, owner: str, *, now: datetime, lease: timedelta, limit: int
) -> list[Claimed]:
    """Lease up to `limit` due rows of `sink`, oldest first, at most one per record.

    A row is skipped while an earlier row of the same record is still pending for this sink
    (waiting to retry, or leased by any relay): that keeps each record's events in order,
    while a failing record holds back only its own later events.
    """
    free = or_(DeliveryRow.lease_until.is_(None), DeliveryRow.lease_until <= now)
    # Each record's lane head is its oldest pending row (waiting to retry, or leased, count).
    # One window pass over the pending rows, with no join: a join here was planned as a
    # nested loop on stale statistics and went quadratic in the backlog.
    lanes = (
        select(
            DeliveryRow.id,
            DeliveryRow.next_attempt_at,
            DeliveryRow.lease_until,
            func.row_number()
            .over(partition_by=DeliveryRow.record_key, order_by=DeliveryRow.id)
            .label("place"),
        )
        .where(DeliveryRow.sink == sink, DeliveryRow.status == PENDING)
        .subquery()
    )
    heads = (
        select(lanes.c.id)
        .where(
            lanes.c.place == 1,
            lanes.c.next_attempt_at <= now,
            or_(lanes.c.lease_until.is_(None), lanes.c.lease_until <= now),
        )
        .order_by(lanes.c.id)
        .limit(limit)
    )
    async with connect(engine) as conn:
        candidates = (await conn.execute(heads)).scalars().all()
    if not candidates:
        return []
    # The lease is taken in a second, short transaction that checks again that each row is
    # still pending and free. SKIP LOCKED (PostgreSQL) passes over rows another relay is
    # leasing this instant; SQLite ignores it, its single writer lock serialises the UPDATE.
    still_free = (
        select(DeliveryRow.id)
        .where(DeliveryRow.id.in_(candidates), DeliveryRow.status == PENDING, free)
        .with_for_update(skip_locked=True)
    )
    async with begin(engine) as conn:
        ids = (
            (
                await conn.execute(
                    update(DeliveryRow)
                    .where(DeliveryRow.id.in_(still_free))
                    .values(lease_owner=owner, lease_until=now + lease)
                    .returning(DeliveryRow.id)
                )
            )
            .scalars()
            .all()
        )
        if not ids:
            return []
        rows = (
            await conn.execute(
                select(
                    DeliveryRow.id.label("delivery_id"), DeliveryRow.attempts, *EventRow.__table__.c
                )
                .join(EventRow, EventRow.seq == DeliveryRow.event_seq)
                .where(DeliveryRow.id.in_(ids))
                .order_by(DeliveryRow.id)
            )
        ).all()
    return [Claimed(r.delivery_id, r.attempts, stored_event(r)) for r in rows]


async def mark_delivered(engine: AsyncEngine, ids: Sequence[int], now: datetime) -> None:
    if not ids:
        return
    async with begin(engine) as conn:
        await conn.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id.in_(ids), DeliveryRow.status == PENDING)
            .values(
                status=DeliveryStatus.DELIVERED.value,
                delivered_at=now,
                attempts=DeliveryRow.attempts + 1,
                # lease_owner stays: it tells which replica delivered the row.
                lease_until=None,
            )
        )


@dataclass(frozen=True, slots=True)
class Failure:
    delivery_id: int
    attempts: int  # counting the attempt that just failed
    outcome: Retry | DeadLetter
    error: str


async def mark_failed(engine: AsyncEngine, failures: Sequence[Failure]) -> None:
    if not failures:
        return
    async with begin(engine) as conn:
        for failure in failures:
            values: dict[str, Any] = {
                "attempts": failure.attempts,
                "last_error": failure.error[:MAX_ERROR],
                "lease_owner": None,
                "lease_until": None,
            }
            if isinstance(failure.outcome, Retry):
                values["next_attempt_at"] = failure.outcome.at
            else:
                values["status"] = DeliveryStatus.DEAD.value
            await conn.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == failure.delivery_id, DeliveryRow.status == PENDING)
                .values(**values)
            )


async def release(engine: AsyncEngine, ids: Sequence[int], error: str) -> None:
    """Hand leased rows back untried: their sink could not be reached at all. Attempts and
    the next attempt time stay as they were, so an outage spends no retry budget and
    leaves no backoff behind; `last_error` says why they are still pending."""
    if not ids:
        return
    async with begin(engine) as conn:
        await conn.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id.in_(ids), DeliveryRow.status == PENDING)
            .values(last_error=error[:MAX_ERROR], lease_owner=None, lease_until=None)
        )
