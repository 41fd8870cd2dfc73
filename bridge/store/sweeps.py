"""The Books deletion sweep's memory: every record id the last complete sweeps listed, its
last known modified time, and how many complete sweeps in a row missed it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.database import begin, connect
from bridge.store.models import SweepRecordRow

Known = dict[str, tuple[datetime | None, int]]  # record id → (modified at, misses)


async def load(engine: AsyncEngine, watch_id: int) -> Known:
    query = select(SweepRecordRow).where(SweepRecordRow.watch_id == watch_id)
    async with connect(engine) as conn:
        return {r.record_id: (r.modified_at, r.misses) for r in await conn.execute(query)}


async def replace(engine: AsyncEngine, watch_id: int, known: Known) -> None:
    """The ids known after a complete sweep (deleted ones no longer among them)."""
    rows = [
        {"watch_id": watch_id, "record_id": record_id, "modified_at": modified, "misses": misses}
        for record_id, (modified, misses) in known.items()
    ]
    async with begin(engine) as conn:
        await conn.execute(delete(SweepRecordRow).where(SweepRecordRow.watch_id == watch_id))
        for start in range(0, len(rows), 500):
            await conn.execute(insert(SweepRecordRow), rows[start : start + 500])
