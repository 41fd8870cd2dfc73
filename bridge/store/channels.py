"""CRM channels: import, token rotation, read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.credentials import ChannelToken
from bridge.domain.states import ChannelStatus
from bridge.errors import NotFound
from bridge.store.database import begin, connect
from bridge.store.models import ChannelRow


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    channel_id: str
    source: str
    events: tuple[str, ...]
    managed: bool
    tokens: tuple[ChannelToken, ...]
    notify_url: str | None
    expires_at: datetime | None
    status: ChannelStatus
    created_at: datetime
    updated_at: datetime


def tokens_to_json(tokens: list[ChannelToken]) -> list[dict[str, Any]]:
    return [
        {
            "sha256": token.sha256,
            "valid_until": token.valid_until.isoformat() if token.valid_until else None,
        }
        for token in tokens
    ]


def tokens_from_json(raw: list[dict[str, Any]]) -> tuple[ChannelToken, ...]:
    return tuple(
        ChannelToken(
            sha256=item["sha256"],
            valid_until=datetime.fromisoformat(item["valid_until"])
            if item.get("valid_until")
            else None,
        )
        for item in raw
    )


def _info(row: Any) -> ChannelInfo:
    return ChannelInfo(
        channel_id=row.channel_id,
        source=row.source,
        events=tuple(row.events),
        managed=row.managed,
        tokens=tokens_from_json(row.tokens),
        notify_url=row.notify_url,
        expires_at=row.expires_at,
        status=ChannelStatus(row.status),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def import_channel(
    engine: AsyncEngine,
    *,
    channel_id: str,
    token: ChannelToken,
    events: list[str],
    source: str,
    now: datetime,
) -> ChannelInfo:
    """Record a channel created outside the bridge; it is only verified, never renewed."""
    values = {
        "channel_id": channel_id,
        "source": source,
        "events": events,
        "managed": False,
        "tokens": tokens_to_json([token]),
        "notify_url": None,
        "expires_at": None,
        "status": ChannelStatus.ACTIVE,
        "created_at": now,
        "updated_at": now,
    }
    async with begin(engine, conflict=f"channel {channel_id} is already known") as conn:
        await conn.execute(insert(ChannelRow), values)
    found = await get_channel(engine, channel_id)
    assert found is not None
    return found


async def replace_tokens(
    engine: AsyncEngine, channel_id: str, tokens: list[ChannelToken], now: datetime
) -> ChannelInfo:
    async with begin(engine) as conn:
        result = await conn.execute(
            update(ChannelRow)
            .where(ChannelRow.channel_id == channel_id)
            .values(tokens=tokens_to_json(tokens), updated_at=now)
        )
        if result.rowcount == 0:
            raise NotFound(f"no channel {channel_id}")
    found = await get_channel(engine, channel_id)
    assert found is not None
    return found


async def get_channel(engine: AsyncEngine, channel_id: str) -> ChannelInfo | None:
    async with connect(engine) as conn:
        row = (
            await conn.execute(select(ChannelRow).where(ChannelRow.channel_id == channel_id))
        ).first()
    return _info(row) if row is not None else None


async def list_channels(engine: AsyncEngine) -> list[ChannelInfo]:
    async with connect(engine) as conn:
        rows = (await conn.execute(select(ChannelRow).order_by(ChannelRow.id))).all()
    return [_info(row) for row in rows]
