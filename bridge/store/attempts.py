"""Delivery attempts: written by the relay with each batch's settlement, read per delivery."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.domain.attempts import Attempt, AttemptOutcome
from bridge.store.database import begin, connect
from bridge.store.models import AttemptRow


async def record_attempts(conn: AsyncConnection, attempts: Sequence[Attempt]) -> None:
    """Insert `attempts` (one statement) in the caller's transaction."""
    if attempts:
        # Built by hand: `dataclasses.asdict` deep-copies every field, and this runs for
        # every event the relay delivers.
        rows = [
            {"delivery_id": a.delivery_id, "at": a.at, "outcome": a.outcome,
             "latency_ms": a.latency_ms, "status_code": a.status_code, "error": a.error,
             "response": a.response, "replica": a.replica}
            for a in attempts
        ]  # fmt: skip
        await conn.execute(insert(AttemptRow), rows)


async def add_attempts(engine: AsyncEngine, attempts: Sequence[Attempt]) -> None:
    if attempts:
        async with begin(engine) as conn:
            await record_attempts(conn, attempts)


def _attempt(row: Any, number: int) -> Attempt:
    return Attempt(
        delivery_id=row.delivery_id, attempt=number, at=row.at,
        outcome=AttemptOutcome(row.outcome), latency_ms=row.latency_ms,
        status_code=row.status_code, error=row.error, response=row.response, replica=row.replica,
    )  # fmt: skip


async def attempts_of(engine: AsyncEngine, delivery_ids: Sequence[int]) -> dict[int, list[Attempt]]:
    """Each delivery's attempts, oldest first."""
    if not delivery_ids:
        return {}
    query = (
        select(*AttemptRow.__table__.c)
        .where(AttemptRow.delivery_id.in_(delivery_ids))
        .order_by(AttemptRow.delivery_id, AttemptRow.id)
    )
    found: dict[int, list[Attempt]] = {d: [] for d in delivery_ids}
    async with connect(engine) as conn:
        for row in (await conn.execute(query)).all():
            earlier = found[row.delivery_id]
            earlier.append(_attempt(row, len(earlier) + 1))
    return found
