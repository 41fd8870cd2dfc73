"""Managed CRM channels: create, lease, record renewal outcomes, and gaps.

Leases decide which replica works on a channel (style.md §5): a claim is one conditional
UPDATE that succeeds on exactly one replica, and also re-checks the reason for the work
(still due; not confirmed since our listing), so a replica acting on a stale read loses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.credentials import ChannelToken
from bridge.domain.states import ChannelStatus
from bridge.store.channels import tokens_from_json, tokens_to_json
from bridge.store.database import begin, connect
from bridge.store.models import ChannelRow, GapRow


@dataclass(frozen=True, slots=True)
class ManagedChannel:
    """A managed channel row; `token_encrypted` is still ciphertext."""

    channel_id: str
    connection: str
    source: str
    events: tuple[str, ...]
    notify_url: str
    token_encrypted: str
    tokens: tuple[ChannelToken, ...]
    options: dict[str, Any]
    expires_at: datetime | None
    status: ChannelStatus
    renewals: int
    last_renewed_at: datetime | None
    verified_at: datetime | None
    next_renewal_at: datetime | None
    failures: int
    last_error: str | None
    created_at: datetime
    down_since: datetime | None = None  # not live at Zoho since then, not repaired yet


@dataclass(frozen=True, slots=True)
class Gap:
    channel_id: str
    connection: str | None
    events: tuple[str, ...]
    gap_from: datetime
    gap_to: datetime
    reason: str
    recorded_at: datetime
    covered_at: datetime | None = None  # reconciliation polled the whole span


def _managed(row: Any) -> ManagedChannel:
    return ManagedChannel(
        channel_id=row.channel_id,
        connection=row.connection or "",
        source=row.source,
        events=tuple(row.events),
        notify_url=row.notify_url or "",
        token_encrypted=row.token_encrypted or "",
        tokens=tokens_from_json(row.tokens),
        options=dict(row.options or {}),
        expires_at=row.expires_at,
        status=ChannelStatus(row.status),
        renewals=row.renewals,
        last_renewed_at=row.last_renewed_at,
        verified_at=row.verified_at,
        next_renewal_at=row.next_renewal_at,
        failures=row.failures,
        last_error=row.last_error,
        created_at=row.created_at,
        down_since=row.down_since,
    )


async def insert_managed(engine: AsyncEngine, values: dict[str, Any]) -> None:
    async with begin(engine) as conn:
        await conn.execute(insert(ChannelRow), {"managed": True, **values})


async def remove(engine: AsyncEngine, channel_id: str) -> None:
    async with begin(engine) as conn:
        await conn.execute(delete(ChannelRow).where(ChannelRow.channel_id == channel_id))


async def get_managed(engine: AsyncEngine, channel_id: str) -> ManagedChannel | None:
    async with connect(engine) as conn:
        row = (
            await conn.execute(
                select(ChannelRow).where(
                    ChannelRow.channel_id == channel_id, ChannelRow.managed.is_(True)
                )
            )
        ).first()
    return _managed(row) if row is not None else None


async def list_managed(engine: AsyncEngine, *, live_only: bool = True) -> list[ManagedChannel]:
    query = select(ChannelRow).where(ChannelRow.managed.is_(True)).order_by(ChannelRow.id)
    if live_only:
        query = query.where(ChannelRow.status != ChannelStatus.DISABLED)
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [_managed(row) for row in rows]


async def claim(
    engine: AsyncEngine,
    channel_id: str,
    owner: str,
    now: datetime,
    until: datetime,
    *,
    due: bool = False,
    confirmed_before: datetime | None = None,
) -> bool:
    """Take the channel's lease if it is free (or expired). `due`: only if its renewal is
    still due; `confirmed_before`: only if nobody confirmed it live since that time."""
    conditions = [
        ChannelRow.channel_id == channel_id,
        ChannelRow.status != ChannelStatus.DISABLED,
        or_(ChannelRow.lease_until.is_(None), ChannelRow.lease_until < now),
    ]
    if due:
        conditions.append(
            or_(ChannelRow.next_renewal_at.is_(None), ChannelRow.next_renewal_at <= now)
        )
    if confirmed_before is not None:
        conditions.append(
            or_(ChannelRow.verified_at.is_(None), ChannelRow.verified_at < confirmed_before)
        )
    async with begin(engine) as conn:
        result = await conn.execute(
            update(ChannelRow).where(and_(*conditions)).values(lease_owner=owner, lease_until=until)
        )
    return bool(result.rowcount == 1)


async def finish(engine: AsyncEngine, channel_id: str, owner: str, **values: Any) -> None:
    """Write the outcome and give the lease back (only if we still hold it)."""
    if "tokens" in values:
        values["tokens"] = tokens_to_json(list(values["tokens"]))
    async with begin(engine) as conn:
        await conn.execute(
            update(ChannelRow)
            .where(ChannelRow.channel_id == channel_id, ChannelRow.lease_owner == owner)
            .values(**values, lease_owner=None, lease_until=None)
        )


async def update_channel(engine: AsyncEngine, channel_id: str, **values: Any) -> None:
    if "tokens" in values:
        values["tokens"] = tokens_to_json(list(values["tokens"]))
    async with begin(engine) as conn:
        await conn.execute(
            update(ChannelRow).where(ChannelRow.channel_id == channel_id).values(**values)
        )


async def confirm(engine: AsyncEngine, channel_id: str, at: datetime) -> None:
    """Zoho listed the channel as configured at `at`: move `verified_at` forward only."""
    async with begin(engine) as conn:
        await conn.execute(
            update(ChannelRow)
            .where(
                ChannelRow.channel_id == channel_id,
                or_(ChannelRow.verified_at.is_(None), ChannelRow.verified_at < at),
            )
            .values(verified_at=at)
        )


async def record_gap(engine: AsyncEngine, gap: Gap) -> None:
    async with begin(engine) as conn:
        await conn.execute(
            insert(GapRow),
            {
                "channel_id": gap.channel_id,
                "connection": gap.connection,
                "events": list(gap.events),
                "gap_from": gap.gap_from,
                "gap_to": gap.gap_to,
                "reason": gap.reason,
                "recorded_at": gap.recorded_at,
            },
        )


async def list_gaps(
    engine: AsyncEngine, channel_id: str | None = None, *, connection: str | None = None
) -> list[Gap]:
    query = select(GapRow).order_by(GapRow.id)
    if channel_id is not None:
        query = query.where(GapRow.channel_id == channel_id)
    if connection is not None:
        query = query.where(GapRow.connection == connection)
    async with connect(engine) as conn:
        rows = (await conn.execute(query)).all()
    return [
        Gap(r.channel_id, r.connection, tuple(r.events), r.gap_from, r.gap_to, r.reason,
            r.recorded_at, r.covered_at)
        for r in rows
    ]  # fmt: skip


async def mark_down(engine: AsyncEngine, channel_id: str, since: datetime) -> None:
    """The channel is known not live at Zoho since `since` (kept if already earlier)."""
    async with begin(engine) as conn:
        await conn.execute(
            update(ChannelRow)
            .where(
                ChannelRow.channel_id == channel_id,
                or_(ChannelRow.down_since.is_(None), ChannelRow.down_since > since),
            )
            .values(down_since=since)
        )


async def cover_gaps(engine: AsyncEngine, connection: str, until: datetime, at: datetime) -> int:
    """Gaps of `connection` ending before `until` that reconciliation has now polled."""
    async with begin(engine) as conn:
        result = await conn.execute(
            update(GapRow)
            .where(GapRow.connection == connection, GapRow.covered_at.is_(None),
                   GapRow.gap_to <= until)
            .values(covered_at=at)
        )  # fmt: skip
    return int(result.rowcount or 0)
