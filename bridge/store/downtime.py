"""Bridge downtime: each replica's heartbeat, and the spans in which none was running.

While no replica runs, nothing is received, so every change in such a span reached nobody:
reconciliation attributes it to `gap`, not `missed`. A replica starting up after every
heartbeat went stale records the span from the newest heartbeat to now.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.database import begin, connect
from bridge.store.models import DowntimeRow, HeartbeatRow


async def beat(engine: AsyncEngine, replica: str, now: datetime) -> None:
    """Say this replica is running now."""
    async with begin(engine) as conn:
        result = await conn.execute(
            update(HeartbeatRow).where(HeartbeatRow.replica == replica).values(seen_at=now)
        )
        if result.rowcount == 0:
            await conn.execute(insert(HeartbeatRow), {"replica": replica, "seen_at": now})


async def record_if_down(
    engine: AsyncEngine, now: datetime, stale_after: timedelta
) -> tuple[datetime, datetime] | None:
    """At start-up: if every heartbeat is older than `stale_after`, the bridge was down
    from the newest heartbeat until now; record and return that span. None when another
    replica was running, or when there is no heartbeat yet (a new installation)."""
    async with begin(engine) as conn:
        newest = await conn.scalar(select(func.max(HeartbeatRow.seen_at)))
        if newest is None or now - newest <= stale_after:
            return None
        await conn.execute(
            insert(DowntimeRow), {"down_from": newest, "down_to": now, "recorded_at": now}
        )
    return newest, now


async def spans(engine: AsyncEngine, since: datetime) -> list[tuple[datetime, datetime]]:
    """Downtime spans that ended at or after `since`, oldest first."""
    query = (
        select(DowntimeRow.down_from, DowntimeRow.down_to)
        .where(DowntimeRow.down_to >= since)
        .order_by(DowntimeRow.down_from)
    )
    async with connect(engine) as conn:
        return [(row.down_from, row.down_to) for row in await conn.execute(query)]
