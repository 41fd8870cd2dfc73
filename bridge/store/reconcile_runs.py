"""On-demand reconciliation runs and backfills: queued, leased by one replica, resumable."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.states import RunState
from bridge.errors import NotFound
from bridge.store.database import begin, connect
from bridge.store.models import RunRow


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: str
    connection: str | None
    module: str | None
    since: datetime | None
    until: datetime | None
    dry_run: bool
    state: RunState
    counts: dict[str, Any]
    position: dict[str, Any]
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _info(row: Any) -> RunInfo:
    values = {name: getattr(row, name) for name in RunInfo.__slots__}
    values["state"] = RunState(row.state)
    values["counts"] = dict(row.counts or {})
    values["position"] = dict(row.position or {})
    return RunInfo(**values)


async def create(engine: AsyncEngine, values: dict[str, Any]) -> RunInfo:
    async with begin(engine) as conn:
        await conn.execute(insert(RunRow), values)
    return await get(engine, values["id"])


async def get(engine: AsyncEngine, run_id: str) -> RunInfo:
    async with connect(engine) as conn:
        row = (await conn.execute(select(RunRow).where(RunRow.id == run_id))).first()
    if row is None:
        raise NotFound(f"no reconciliation run {run_id}")
    return _info(row)


async def list_recent(engine: AsyncEngine, limit: int = 50) -> list[RunInfo]:
    query = select(RunRow).order_by(RunRow.id.desc()).limit(limit)
    async with connect(engine) as conn:
        return [_info(row) for row in await conn.execute(query)]


async def claimable(engine: AsyncEngine, now: datetime) -> list[str]:
    """Runs waiting for a replica: queued, or running under a lease that expired (its
    replica died: the run resumes where it stood)."""
    query = (
        select(RunRow.id)
        .where(
            or_(
                RunRow.state == RunState.QUEUED,
                and_(RunRow.state == RunState.RUNNING, RunRow.lease_until < now),
            )
        )
        .order_by(RunRow.id)
    )
    async with connect(engine) as conn:
        return list((await conn.execute(query)).scalars())


async def claim(
    engine: AsyncEngine, run_id: str, owner: str, now: datetime, until: datetime
) -> bool:
    async with begin(engine) as conn:
        result = await conn.execute(
            update(RunRow)
            .where(
                RunRow.id == run_id,
                RunRow.state.in_([RunState.QUEUED, RunState.RUNNING]),
                or_(RunRow.lease_until.is_(None), RunRow.lease_until < now),
            )
            .values(state=RunState.RUNNING, lease_owner=owner, lease_until=until, started_at=now)
        )
    return bool(result.rowcount == 1)


async def progress(
    engine: AsyncEngine, run_id: str, owner: str, *, until: datetime, **values: Any
) -> None:
    """Save counts and position, and keep the lease."""
    async with begin(engine) as conn:
        await conn.execute(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.lease_owner == owner)
            .values(lease_until=until, **values)
        )


async def finish(engine: AsyncEngine, run_id: str, owner: str, **values: Any) -> None:
    async with begin(engine) as conn:
        await conn.execute(
            update(RunRow)
            .where(RunRow.id == run_id, RunRow.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, **values)
        )
