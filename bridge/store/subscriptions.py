"""Pull subscriptions: create, read, delete, move the cursor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import NotFound
from bridge.store.database import alone, begin, connect
from bridge.store.models import EventRow, SubscriptionRow


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    name: str
    token_hash: str
    source: str | None
    module: str | None
    operation: str | None
    acked_seq: int
    created_at: datetime
    updated_at: datetime


def _info(row: Any) -> SubscriptionInfo:
    return SubscriptionInfo(**{n: getattr(row, n) for n in SubscriptionInfo.__slots__})


async def create(
    engine: AsyncEngine,
    *,
    name: str,
    token_hash: str,
    source: str | None,
    module: str | None,
    operation: str | None,
    acked_seq: int,
    now: datetime,
) -> SubscriptionInfo:
    values = {
        "name": name, "token_hash": token_hash, "source": source, "module": module,
        "operation": operation, "acked_seq": acked_seq, "created_at": now, "updated_at": now,
    }  # fmt: skip
    async with begin(engine, conflict=f"a subscription named {name!r} already exists") as conn:
        await conn.execute(insert(SubscriptionRow).values(**values))
    return SubscriptionInfo(**values)  # type: ignore[arg-type]


async def get(engine: AsyncEngine, name: str) -> SubscriptionInfo | None:
    async with connect(engine) as conn:
        row = (
            await conn.execute(select(SubscriptionRow).where(SubscriptionRow.name == name))
        ).first()
    return _info(row) if row is not None else None


async def list_all(engine: AsyncEngine) -> list[SubscriptionInfo]:
    async with connect(engine) as conn:
        rows = (await conn.execute(select(SubscriptionRow).order_by(SubscriptionRow.name))).all()
    return [_info(r) for r in rows]


async def remove(engine: AsyncEngine, name: str) -> None:
    async with begin(engine) as conn:
        result = await conn.execute(delete(SubscriptionRow).where(SubscriptionRow.name == name))
    if result.rowcount == 0:
        raise NotFound(f"no subscription named {name!r}")


async def set_cursor(
    engine: AsyncEngine, name: str, seq: int, now: datetime, *, forward_only: bool
) -> int:
    """Store `seq` as acknowledged; returns the stored position.

    Acks only move forward (a late ack from a slow consumer must not rewind it); a rewind
    by the operator may move it anywhere. An ack that moves the cursor is one statement
    (committed on its own: `database.alone`); a late or repeated one reads the position.
    """
    query = update(SubscriptionRow).where(SubscriptionRow.name == name)
    if forward_only:
        query = query.where(SubscriptionRow.acked_seq < seq)
    query = query.values(acked_seq=seq, updated_at=now).returning(SubscriptionRow.acked_seq)
    async with alone(engine) as conn:
        stored = await conn.scalar(query)
        if stored is None:
            stored = await conn.scalar(
                select(SubscriptionRow.acked_seq).where(SubscriptionRow.name == name)
            )
    if stored is None:
        raise NotFound(f"no subscription named {name!r}")
    return int(stored)


async def lowest_acked(engine: AsyncEngine) -> list[int]:
    """The lowest acked seq as a one-item list, or [] when there is no subscription."""
    async with connect(engine) as conn:
        low = await conn.scalar(select(func.min(SubscriptionRow.acked_seq)))
    return [] if low is None else [int(low)]


async def latest_seq(engine: AsyncEngine) -> int:
    """The newest event's seq (0 with none): where a new subscription starts, and the
    furthest a cursor may be set (beyond it, events yet to come would be skipped)."""
    async with connect(engine) as conn:
        return int(await conn.scalar(select(func.max(EventRow.seq))) or 0)
