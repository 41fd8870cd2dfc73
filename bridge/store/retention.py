"""Deleting old events with their outbox rows, in short batches."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, exists, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.delivery import DeliveryStatus
from bridge.store.database import begin
from bridge.store.models import AttemptRow, DeliveryRow, EventRow


async def purge_batch(
    engine: AsyncEngine, *, cutoff: datetime, ceiling: int | None, limit: int
) -> int:
    """Delete up to `limit` events received before `cutoff` (and at or below seq `ceiling`)
    that no sink still has to deliver; returns how many.

    Each batch is its own short transaction, so ingest and the relay never wait long.
    """
    undelivered = exists().where(
        DeliveryRow.event_seq == EventRow.seq, DeliveryRow.status == DeliveryStatus.PENDING.value
    )
    query = select(EventRow.seq).where(EventRow.received_at < cutoff, ~undelivered)
    if ceiling is not None:
        query = query.where(EventRow.seq <= ceiling)
    async with begin(engine) as conn:
        seqs = (await conn.execute(query.order_by(EventRow.seq).limit(limit))).scalars().all()
        if seqs:
            # Delivered and dead rows go with their event, and their attempts with them
            # (the foreign keys require it).
            of_events = select(DeliveryRow.id).where(DeliveryRow.event_seq.in_(seqs))
            await conn.execute(delete(AttemptRow).where(AttemptRow.delivery_id.in_(of_events)))
            await conn.execute(delete(DeliveryRow).where(DeliveryRow.event_seq.in_(seqs)))
            await conn.execute(delete(EventRow).where(EventRow.seq.in_(seqs)))
    return len(seqs)
