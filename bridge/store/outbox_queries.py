"""Operator views of the outbox: listing, reviving dead rows, replays, per-sink state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Select, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.delivery import DeliveryStatus, record_key
from bridge.domain.events import EventFilter
from bridge.store.database import begin, connect
from bridge.store.event_queries import clauses
from bridge.store.models import UNDELIVERED, DeliveryRow, EventRow, SinkStateRow
from bridge.store.outbox import delivery_row


@dataclass(frozen=True, slots=True)
class DeliveryInfo:
    id: int
    event_seq: int
    event_id: str
    sink: str
    record_key: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    lease_owner: str | None
    delivered_at: datetime | None
    created_at: datetime
    replay: bool


async def list_deliveries(
    engine: AsyncEngine,
    *,
    status: str | None = None,
    sink: str | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[DeliveryInfo]:
    """Newest first; `before_id` is the cursor."""
    query = select(*DeliveryRow.__table__.c, EventRow.id.label("event_id")).join(
        EventRow, EventRow.seq == DeliveryRow.event_seq
    )
    if status is not None:
        query = query.where(DeliveryRow.status == status)
    if sink is not None:
        query = query.where(DeliveryRow.sink == sink)
    if before_id is not None:
        query = query.where(DeliveryRow.id < before_id)
    async with connect(engine) as conn:
        rows = (await conn.execute(query.order_by(DeliveryRow.id.desc()).limit(limit))).all()
    return [DeliveryInfo(**{n: getattr(r, n) for n in DeliveryInfo.__slots__}) for r in rows]


async def retry_dead(
    engine: AsyncEngine, *, now: datetime, sink: str | None = None, ids: Sequence[int] = ()
) -> list[str]:
    """Dead rows (of `sink`, or with these `ids`) back to pending with a fresh budget;
    returns each retried row's sink."""
    query = update(DeliveryRow).where(DeliveryRow.status == DeliveryStatus.DEAD.value)
    if sink is not None:
        query = query.where(DeliveryRow.sink == sink)
    if ids:
        query = query.where(DeliveryRow.id.in_(ids))
    async with begin(engine) as conn:
        result = await conn.execute(
            query.values(
                status=DeliveryStatus.PENDING.value, attempts=0, next_attempt_at=now
            ).returning(DeliveryRow.sink)
        )
        return list(result.scalars().all())


async def enqueue_replay(
    engine: AsyncEngine,
    where: EventFilter,
    sinks: Sequence[str],
    *,
    now: datetime,
    after_seq: int = 0,
    limit: int = 1000,
    event_id: str | None = None,
) -> tuple[int, int | None]:
    """Queue replay rows for up to `limit` matching events after `after_seq`.

    Returns (events queued, last seq) so a bulk replay runs as short transactions.
    """
    query = select(EventRow.seq, EventRow.source, EventRow.module, EventRow.record_id).where(
        *clauses(where), EventRow.seq > after_seq
    )
    if event_id is not None:
        query = query.where(EventRow.id == event_id)
    async with begin(engine) as conn:
        rows = (await conn.execute(query.order_by(EventRow.seq).limit(limit))).all()
        if rows and sinks:
            await conn.execute(
                insert(DeliveryRow),
                [
                    delivery_row(r.seq, record_key(r.source, r.module, r.record_id), sink, now,
                                 replay=True)
                    for r in rows
                    for sink in sinks
                ],
            )  # fmt: skip
    return len(rows), (rows[-1].seq if rows else None)


async def count_events(engine: AsyncEngine, where: EventFilter) -> int:
    async with connect(engine) as conn:
        count = await conn.scalar(select(func.count()).select_from(EventRow).where(*clauses(where)))
    return int(count or 0)


@dataclass(frozen=True, slots=True)
class SinkCounts:
    pending: int = 0
    dead: int = 0
    oldest_pending: datetime | None = None
    replays_pending: int = 0


def sink_counts_query() -> Select[str, str, bool, int, datetime]:
    """Undelivered rows per sink, status and replay: their count and oldest creation."""
    return (
        select(DeliveryRow.sink, DeliveryRow.status, DeliveryRow.replay, func.count(),
               func.min(DeliveryRow.created_at))
        # The partial index of undelivered rows' own condition, the same text: only this
        # statement can use that index (migration 0010); PostgreSQL estimates how many
        # rows it holds from the statistics on the expression (migration 0012).
        .where(text(UNDELIVERED))
        .group_by(DeliveryRow.sink, DeliveryRow.status, DeliveryRow.replay)
    )  # fmt: skip


async def sink_counts(engine: AsyncEngine) -> dict[str, SinkCounts]:
    found: dict[str, SinkCounts] = {}
    async with connect(engine) as conn:
        for sink, status, replay, count, oldest in (await conn.execute(sink_counts_query())).all():
            c = found.get(sink, SinkCounts())
            if status == DeliveryStatus.PENDING.value:
                first = min(d for d in (c.oldest_pending, oldest) if d is not None)
                found[sink] = replace(
                    c,
                    pending=c.pending + count,
                    oldest_pending=first,
                    replays_pending=c.replays_pending + (count if replay else 0),
                )
            else:
                found[sink] = replace(c, dead=c.dead + count)
    return found


async def event_stats(engine: AsyncEngine) -> tuple[int, datetime | None, int | None]:
    """(event count, last received time, highest seq)."""
    async with connect(engine) as conn:
        row = (
            await conn.execute(
                select(func.count(), func.max(EventRow.received_at), func.max(EventRow.seq))
            )
        ).one()
    return int(row[0]), row[1], row[2]


async def set_sink_state(
    engine: AsyncEngine, sink: str, *, disabled: bool, reason: str | None, now: datetime
) -> None:
    async with begin(engine) as conn:
        changed = await conn.execute(
            update(SinkStateRow)
            .where(SinkStateRow.sink == sink)
            .values(disabled=disabled, reason=reason, changed_at=now)
        )
        if changed.rowcount == 0:
            await conn.execute(
                insert(SinkStateRow).values(
                    sink=sink, disabled=disabled, reason=reason, changed_at=now
                )
            )


async def disabled_sinks(engine: AsyncEngine) -> dict[str, str]:
    """Disabled sink name -> why."""
    async with connect(engine) as conn:
        rows = (
            await conn.execute(
                select(SinkStateRow.sink, SinkStateRow.reason).where(SinkStateRow.disabled)
            )
        ).all()
    return {sink: reason or "" for sink, reason in rows}


@dataclass(frozen=True, slots=True)
class SinkDown:
    """A push sink a relay found unreachable as a whole, as recorded for every process."""

    sink: str
    since: datetime
    reason: str
    checked_at: datetime
    checked_by: str | None


async def record_sink_down(
    engine: AsyncEngine, sink: str, *, reason: str, since: datetime, now: datetime,
    replica: str,
) -> None:  # fmt: skip
    """The sink is unreachable (still, or newly): keep the earliest `since` recorded."""
    values = {"down_reason": reason, "checked_at": now, "checked_by": replica[:64]}
    async with begin(engine) as conn:
        changed = await conn.execute(
            update(SinkStateRow)
            .where(SinkStateRow.sink == sink)
            .values(down_since=func.coalesce(SinkStateRow.down_since, since), **values)
        )
        if changed.rowcount == 0:
            await conn.execute(
                insert(SinkStateRow).values(
                    sink=sink, disabled=False, reason=None, changed_at=now, down_since=since,
                    **values,
                )
            )  # fmt: skip


async def record_sink_up(engine: AsyncEngine, sink: str) -> None:
    """The sink is reachable: clear what any relay recorded of an outage."""
    async with begin(engine) as conn:
        await conn.execute(
            update(SinkStateRow)
            .where(SinkStateRow.sink == sink, SinkStateRow.down_since.is_not(None))
            .values(down_since=None, down_reason=None, checked_at=None, checked_by=None)
        )


async def sinks_down(engine: AsyncEngine) -> dict[str, SinkDown]:
    """Sink name -> the outage a relay recorded and has not seen end."""
    query = select(
        SinkStateRow.sink, SinkStateRow.down_since, SinkStateRow.down_reason,
        SinkStateRow.checked_at, SinkStateRow.checked_by,
    ).where(SinkStateRow.down_since.is_not(None))  # fmt: skip
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return {
        r.sink: SinkDown(r.sink, r.down_since, r.down_reason or "", r.checked_at or r.down_since,
                         r.checked_by)
        for r in rows
    }  # fmt: skip
