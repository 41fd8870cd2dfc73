"""Looking up outbox rows: one by id, or every row of one event (per sink, replays included)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.database import connect
from bridge.store.models import DeliveryRow, EventRow
from bridge.store.outbox_queries import DeliveryInfo


async def deliveries_of_event(engine: AsyncEngine, event_seq: int) -> list[DeliveryInfo]:
    """Oldest first (the first delivery, then each replay), through the `event_seq` index."""
    query = (
        select(*DeliveryRow.__table__.c, EventRow.id.label("event_id"))
        .join(EventRow, EventRow.seq == DeliveryRow.event_seq)
        .where(DeliveryRow.event_seq == event_seq)
        .order_by(DeliveryRow.id)
    )
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [DeliveryInfo(**{n: getattr(r, n) for n in DeliveryInfo.__slots__}) for r in rows]


async def get_delivery(engine: AsyncEngine, delivery_id: int) -> DeliveryInfo | None:
    query = (
        select(*DeliveryRow.__table__.c, EventRow.id.label("event_id"))
        .join(EventRow, EventRow.seq == DeliveryRow.event_seq)
        .where(DeliveryRow.id == delivery_id)
    )
    async with connect(engine) as conn:
        row = (await conn.execute(query)).first()
    if row is None:
        return None
    return DeliveryInfo(**{n: getattr(row, n) for n in DeliveryInfo.__slots__})
