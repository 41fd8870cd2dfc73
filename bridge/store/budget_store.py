"""`BudgetStore` on the database: sliding-window spending and concurrency slots.

Every change to a key happens in one transaction holding that key's row in `budget_keys`
(`SELECT … FOR UPDATE` on PostgreSQL), so replicas sharing the database count against
one window and two of them can never both take the last request of a minute (zoho.md §6).
SQLite serves one process: an asyncio lock per key does the same job there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.store.database import begin, connect
from bridge.store.models import BudgetKeyRow, BudgetSlotRow, BudgetSpendRow
from bridge.store.upsert import upsert
from bridge.zoho.ports import Reservation


class DbBudgetStore:
    """A `BudgetStore` in the `budget_keys`, `budget_spend` and `budget_slots` tables."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        # Also on PostgreSQL: callers in one process queue here instead of holding
        # pooled connections while they wait for the row lock.
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @asynccontextmanager
    async def _locked(self, key: str) -> AsyncIterator[AsyncConnection]:
        async with self._locks[key], begin(self._engine) as conn:
            if self._postgres:
                await upsert(conn, BudgetKeyRow, {"key": key}, ["key"], update=False)
                await conn.execute(
                    select(BudgetKeyRow.key).where(BudgetKeyRow.key == key).with_for_update()
                )
            yield conn

    async def reserve(
        self, key: str, cost: int, limit: int, window: float, now: float
    ) -> Reservation:
        async with self._locked(key) as conn:
            # Spending older than the window never counts again for this key.
            await conn.execute(
                delete(BudgetSpendRow).where(
                    BudgetSpendRow.key == key, BudgetSpendRow.at <= now - window
                )
            )
            rows = (
                await conn.execute(
                    select(BudgetSpendRow.at, BudgetSpendRow.cost)
                    .where(BudgetSpendRow.key == key, BudgetSpendRow.at > now - window)
                    .order_by(BudgetSpendRow.at)
                )
            ).all()
            used = sum(int(r.cost) for r in rows)
            if used + cost > limit:
                return Reservation(False, _free_in(rows, used + cost - limit, window, now), used)
            await conn.execute(insert(BudgetSpendRow), {"key": key, "at": now, "cost": cost})
            return Reservation(True, 0.0, used + cost)

    async def used(self, key: str, window: float, now: float) -> int:
        async with connect(self._engine) as conn:
            total = await conn.scalar(
                select(func.coalesce(func.sum(BudgetSpendRow.cost), 0)).where(
                    BudgetSpendRow.key == key, BudgetSpendRow.at > now - window
                )
            )
        return int(total or 0)

    async def acquire(self, key: str, limit: int, lease: float, now: float) -> str | None:
        async with self._locked(key) as conn:
            await conn.execute(
                delete(BudgetSlotRow).where(
                    BudgetSlotRow.key == key, BudgetSlotRow.lease_until <= now
                )
            )
            taken = await conn.scalar(
                select(func.count()).select_from(BudgetSlotRow).where(BudgetSlotRow.key == key)
            )
            if int(taken or 0) >= limit:
                return None
            slot = uuid.uuid4().hex
            await conn.execute(
                insert(BudgetSlotRow), {"slot": slot, "key": key, "lease_until": now + lease}
            )
            return slot

    async def release(self, key: str, slot: str) -> None:
        async with begin(self._engine) as conn:
            await conn.execute(delete(BudgetSlotRow).where(BudgetSlotRow.slot == slot))


def _free_in(rows: Sequence[Any], excess: int, window: float, now: float) -> float:
    """Seconds until enough old spending leaves the window for the excess to fit."""
    for row in rows:
        excess -= int(row.cost)
        if excess <= 0:
            return max(0.0, float(row.at) + window - now)
    return window
