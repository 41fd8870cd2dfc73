"""Publish rates that running relays report, so that every process's status shows them.

Each relay writes its own rows (one per push sink) every few seconds and deletes them when
it stops; a row not refreshed for a while belongs to a relay that died, and is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.store.database import begin, connect
from bridge.store.models import RelayRateRow
from bridge.store.upsert import upsert


@dataclass(frozen=True, slots=True)
class SinkRate:
    """A sink's publish rate summed over the relays that reported it recently."""

    per_second: float
    relays: int


async def report(
    engine: AsyncEngine, relay: str, rates: Mapping[str, float], now: datetime
) -> None:
    """Record what `relay` confirmed per sink, in events per second."""
    async with begin(engine) as conn:
        for sink, per_second in rates.items():
            values = {"relay": relay[:64], "sink": sink, "per_second": per_second,
                      "reported_at": now}  # fmt: skip
            await upsert(conn, RelayRateRow, values, ["relay", "sink"])


async def forget(engine: AsyncEngine, relay: str) -> None:
    """The relay stopped: its rates no longer count."""
    async with begin(engine) as conn:
        await conn.execute(delete(RelayRateRow).where(RelayRateRow.relay == relay[:64]))


async def recent(
    engine: AsyncEngine, since: datetime, *, besides: str | None = None
) -> dict[str, SinkRate]:
    """Sink -> its rate over the relays that reported at or after `since` (leaving out
    the relay named `besides`, whose own rate the caller holds first hand)."""
    query = (
        select(RelayRateRow.sink, func.sum(RelayRateRow.per_second), func.count())
        .where(RelayRateRow.reported_at >= since)
        .group_by(RelayRateRow.sink)
    )
    if besides is not None:
        query = query.where(RelayRateRow.relay != besides[:64])
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return {sink: SinkRate(float(total or 0.0), int(count)) for sink, total, count in rows}
