"""Delivery attempts: written by the relay with each batch's settlement, read per delivery."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    bindparam,
    insert,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bridge.domain.attempts import Attempt, AttemptOutcome
from bridge.store.database import begin, connect
from bridge.store.models import AttemptRow, DeliveryRow

# The columns of an attempt, with the type of the array each arrives in.
_PG_ARRAYS: tuple[tuple[str, Any], ...] = (
    ("delivery_id", BigInteger()), ("at", DateTime(timezone=True)), ("outcome", String()),
    ("latency_ms", Float()), ("status_code", Integer()), ("error", Text()),
    ("response", Text()), ("replica", String()),
)  # fmt: skip
# PostgreSQL: one array per column, unnested into rows, in one statement with eight
# parameters. An executemany of the same rows took 56 ms for 500 (asyncpg runs it as 500
# executions of a prepared statement), the relay's largest cost per batch; this ~31 ms,
# most of it the server's own work per row (the foreign key check, the index entries).
_PG_INSERT = text(
    f"INSERT INTO {AttemptRow.__tablename__} ({', '.join(n for n, _ in _PG_ARRAYS)}) "
    f"SELECT * FROM unnest({', '.join(f':{name}' for name, _ in _PG_ARRAYS)})"
).bindparams(*(bindparam(name, type_=ARRAY(kind)) for name, kind in _PG_ARRAYS))


async def record_attempts(conn: AsyncConnection, attempts: Sequence[Attempt]) -> None:
    """Insert `attempts` (one statement) in the caller's transaction."""
    if not attempts:
        return
    # Built by hand: `dataclasses.asdict` deep-copies every field, and this runs for every
    # event the relay delivers.
    if conn.dialect.name == "postgresql":
        await conn.execute(
            _PG_INSERT,
            {
                "delivery_id": [a.delivery_id for a in attempts],
                "at": [a.at for a in attempts],
                "outcome": [a.outcome.value for a in attempts],
                "latency_ms": [a.latency_ms for a in attempts],
                "status_code": [a.status_code for a in attempts],
                "error": [a.error for a in attempts],
                "response": [a.response for a in attempts],
                "replica": [a.replica for a in attempts],
            },
        )
        return
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
    """Each delivery's attempts, oldest first: its rows of `delivery_attempts`, then, for
    a row whose delivering try is recorded on the row itself (`publish_ms`, batch sinks
    since migration 0013), that try, made when it was delivered by its lease owner."""
    if not delivery_ids:
        return {}
    query = (
        select(*AttemptRow.__table__.c)
        .where(AttemptRow.delivery_id.in_(delivery_ids))
        .order_by(AttemptRow.delivery_id, AttemptRow.id)
    )
    on_rows = select(
        DeliveryRow.id, DeliveryRow.delivered_at, DeliveryRow.publish_ms, DeliveryRow.lease_owner
    ).where(DeliveryRow.id.in_(delivery_ids), DeliveryRow.publish_ms.is_not(None))
    found: dict[int, list[Attempt]] = {d: [] for d in delivery_ids}
    async with connect(engine) as conn:
        for row in (await conn.execute(query)).all():
            earlier = found[row.delivery_id]
            earlier.append(_attempt(row, len(earlier) + 1))
        for row in (await conn.execute(on_rows)).all():
            earlier = found[row.id]
            earlier.append(
                Attempt(
                    delivery_id=row.id, attempt=len(earlier) + 1, at=row.delivered_at,
                    outcome=AttemptOutcome.DELIVERED, latency_ms=row.publish_ms,
                    replica=row.lease_owner,
                )
            )  # fmt: skip
    return found
