"""The events part of the status overview, read in time independent of the table's size.

`count(*)` walks every row (or every entry of an index): 240-280 ms on SQLite at a million
events, most of `/admin/status`. Here the newest seq and received time come from their
indexes' ends, and the count is exact while there are few events; beyond that it is the
span of seqs still stored, which retention keeps close to the true count (it deletes the
oldest events, keeping those some sink has yet to deliver).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.database import connect
from bridge.store.models import EventRow

# Up to this many events the count is exact: counting them costs about a millisecond.
EXACT_UP_TO = 10_000


async def event_stats(engine: AsyncEngine) -> tuple[int, datetime | None, int | None]:
    """(event count, last received time, highest seq), as `outbox_queries.event_stats`
    gives them, with the count exact up to `EXACT_UP_TO` events and the seq span above."""
    first_rows = select(EventRow.seq).limit(EXACT_UP_TO + 1).subquery()
    query = select(
        select(func.count()).select_from(first_rows).scalar_subquery(),
        select(func.max(EventRow.received_at)).scalar_subquery(),
        select(func.min(EventRow.seq)).scalar_subquery(),
        select(func.max(EventRow.seq)).scalar_subquery(),
    )
    async with connect(engine) as conn:
        counted, last_at, first_seq, last_seq = (await conn.execute(query)).one()
    count = int(counted)
    if count > EXACT_UP_TO and first_seq is not None and last_seq is not None:
        count = max(count, int(last_seq) - int(first_seq) + 1)
    return count, last_at, last_seq
