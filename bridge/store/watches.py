"""Reconciliation watches: create, read, change, lease, and record what each run did.

A run is claimed with one conditional UPDATE (the lease), so across replicas one watch runs
in one place at a time; a crashed holder's lease expires. A run's events, its cursor and its
day's counts are written in one transaction by `store.reconcile_writes`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.events import Product
from bridge.domain.states import WatchStatus
from bridge.errors import NotFound
from bridge.store.database import begin, connect
from bridge.store.models import WatchDayRow, WatchRow

DAY_COUNTERS = (
    "runs", "failed_runs", "calls", "credits", "versions", "missed", "gap", "not_subscribed",
    "delivery_failed",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class WatchInfo:
    """A stored watch: what it polls, its cursor, schedule and last outcome."""

    id: int
    connection: str
    product: Product
    module: str
    status: WatchStatus
    automatic: bool
    interval_seconds: int | None
    strategy: str | None
    strategy_reason: str | None
    options: dict[str, Any]
    start_at: datetime
    watermark: datetime | None
    ids_at_watermark: tuple[str, ...]
    pending: tuple[dict[str, Any], ...]
    deletes_watermark: datetime | None
    deletes_ids: tuple[str, ...]
    deletes_checked_at: datetime | None
    swept_at: datetime | None
    next_run_at: datetime
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_success_at: datetime | None
    last_zoho_date: datetime | None
    failures: int
    last_error: str | None
    deferred_until: datetime | None
    deferred_reason: str | None
    lease_owner: str | None
    lease_until: datetime | None
    created_at: datetime
    updated_at: datetime


def _info(row: Any) -> WatchInfo:
    values = {name: getattr(row, name) for name in WatchInfo.__slots__}
    values["product"] = Product(row.product)
    values["status"] = WatchStatus(row.status)
    values["options"] = dict(row.options or {})
    values["ids_at_watermark"] = tuple(row.ids_at_watermark or ())
    values["pending"] = tuple(row.pending or ())
    values["deletes_ids"] = tuple(row.deletes_ids or ())
    return WatchInfo(**values)


async def create(engine: AsyncEngine, values: dict[str, Any]) -> WatchInfo:
    """Insert a watch; a (connection, product, module) already watched is a Conflict."""
    taken = f"{values['connection']} already has a {values['product']} watch on {values['module']}"
    async with begin(engine, conflict=taken) as conn:
        result = await conn.execute(insert(WatchRow).returning(WatchRow.id), values)
        watch_id = int(result.scalar_one())
    return await get(engine, watch_id)


async def get(engine: AsyncEngine, watch_id: int) -> WatchInfo:
    async with connect(engine) as conn:
        row = (await conn.execute(select(WatchRow).where(WatchRow.id == watch_id))).first()
    if row is None:
        raise NotFound(f"no watch {watch_id}")
    return _info(row)


async def find(
    engine: AsyncEngine, connection: str, product: Product, module: str
) -> WatchInfo | None:
    query = select(WatchRow).where(
        WatchRow.connection == connection, WatchRow.product == product, WatchRow.module == module
    )
    async with connect(engine) as conn:
        row = (await conn.execute(query)).first()
    return _info(row) if row is not None else None


async def list_all(
    engine: AsyncEngine,
    *,
    connection: str | None = None,
    module: str | None = None,
    include_removed: bool = False,
) -> list[WatchInfo]:
    query = select(WatchRow).order_by(WatchRow.connection, WatchRow.product, WatchRow.module)
    if connection is not None:
        query = query.where(WatchRow.connection == connection)
    if module is not None:
        query = query.where(WatchRow.module == module)
    if not include_removed:
        query = query.where(WatchRow.status != WatchStatus.REMOVED)
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [_info(row) for row in rows]


async def change(engine: AsyncEngine, watch_id: int, **values: Any) -> WatchInfo:
    async with begin(engine) as conn:
        result = await conn.execute(
            update(WatchRow).where(WatchRow.id == watch_id).values(**values)
        )
    if result.rowcount == 0:
        raise NotFound(f"no watch {watch_id}")
    return await get(engine, watch_id)


async def remove(engine: AsyncEngine, watch_id: int) -> None:
    async with begin(engine) as conn:
        result = await conn.execute(delete(WatchRow).where(WatchRow.id == watch_id))
    if result.rowcount == 0:
        raise NotFound(f"no watch {watch_id}")


async def claim(
    engine: AsyncEngine, watch_id: int, owner: str, now: datetime, until: datetime, *,
    due: bool,
) -> bool:  # fmt: skip
    """Take the watch's lease if it is free (or expired) and it is active; with `due`, only
    if its run is still due (another replica may have just run it)."""
    conditions = [
        WatchRow.id == watch_id,
        WatchRow.status == WatchStatus.ACTIVE,
        or_(WatchRow.lease_until.is_(None), WatchRow.lease_until < now),
    ]
    if due:
        conditions.append(WatchRow.next_run_at <= now)
    async with begin(engine) as conn:
        result = await conn.execute(
            update(WatchRow)
            .where(and_(*conditions))
            .values(lease_owner=owner, lease_until=until, last_started_at=now)
        )
    return bool(result.rowcount == 1)


async def extend(engine: AsyncEngine, watch_id: int, owner: str, until: datetime) -> bool:
    """Keep holding the lease through a long run; False if it was lost."""
    async with begin(engine) as conn:
        result = await conn.execute(
            update(WatchRow)
            .where(WatchRow.id == watch_id, WatchRow.lease_owner == owner)
            .values(lease_until=until)
        )
    return bool(result.rowcount == 1)


async def release(engine: AsyncEngine, watch_id: int, owner: str, **values: Any) -> None:
    """Write a run's outcome (without events) and give the lease back, if still held."""
    async with begin(engine) as conn:
        await conn.execute(
            update(WatchRow)
            .where(WatchRow.id == watch_id, WatchRow.lease_owner == owner)
            .values(**values, lease_owner=None, lease_until=None)
        )


async def bring_forward(engine: AsyncEngine, watch_ids: list[int], at: datetime) -> int:
    """Make the watches due at `at` if they were due later (a signal); how many moved."""
    if not watch_ids:
        return 0
    async with begin(engine) as conn:
        result = await conn.execute(
            update(WatchRow)
            .where(WatchRow.id.in_(watch_ids), WatchRow.next_run_at > at)
            .values(next_run_at=at)
        )
    return int(result.rowcount or 0)


async def day_counts(
    engine: AsyncEngine, *, since_day: str, watch_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """Per watch and day from `since_day` (YYYY-MM-DD) on: every counter."""
    query = select(WatchDayRow).where(WatchDayRow.day >= since_day).order_by(WatchDayRow.day)
    if watch_ids is not None:
        query = query.where(WatchDayRow.watch_id.in_(watch_ids))
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [
        {"watch_id": r.watch_id, "day": r.day, **{c: getattr(r, c) for c in DAY_COUNTERS}}
        for r in rows
    ]
