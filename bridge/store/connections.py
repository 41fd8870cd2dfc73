"""Zoho connections: create, read, change status, remove. Secrets stay encrypted here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.states import ChannelStatus, ConnectionStatus
from bridge.errors import Conflict, NotFound
from bridge.store.database import begin, connect
from bridge.store.models import ChannelRow, ConnectionRow, SourceRow, TokenRow


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """A stored connection; the two secrets are still ciphertext."""

    name: str
    dc: str
    client_id: str
    client_secret_encrypted: str
    refresh_token_encrypted: str
    organization_id: str | None
    accounts_url: str | None
    api_domain: str | None
    limits: dict[str, Any]
    status: ConnectionStatus
    last_error: str | None
    created_at: datetime
    updated_at: datetime


def _info(row: Any) -> ConnectionInfo:
    return ConnectionInfo(
        name=row.name,
        dc=row.dc,
        client_id=row.client_id,
        client_secret_encrypted=row.client_secret_encrypted,
        refresh_token_encrypted=row.refresh_token_encrypted,
        organization_id=row.organization_id,
        accounts_url=row.accounts_url,
        api_domain=row.api_domain,
        limits=dict(row.limits),
        status=ConnectionStatus(row.status),
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def create_connection(engine: AsyncEngine, values: dict[str, Any]) -> ConnectionInfo:
    taken = f"a connection named {values['name']!r} already exists"
    async with begin(engine, conflict=taken) as conn:
        await conn.execute(insert(ConnectionRow), values)
    found = await get_connection(engine, values["name"])
    assert found is not None
    return found


async def get_connection(engine: AsyncEngine, name: str) -> ConnectionInfo | None:
    async with connect(engine) as conn:
        row = (await conn.execute(select(ConnectionRow).where(ConnectionRow.name == name))).first()
    return _info(row) if row is not None else None


async def list_connections(engine: AsyncEngine) -> list[ConnectionInfo]:
    async with connect(engine) as conn:
        rows = (await conn.execute(select(ConnectionRow).order_by(ConnectionRow.name))).all()
    return [_info(row) for row in rows]


async def update_connection(
    engine: AsyncEngine, name: str, now: datetime, **changes: Any
) -> ConnectionInfo:
    async with begin(engine) as conn:
        result = await conn.execute(
            update(ConnectionRow)
            .where(ConnectionRow.name == name)
            .values(**changes, updated_at=now)
        )
        if result.rowcount == 0:
            raise NotFound(f"no connection named {name!r}")
    found = await get_connection(engine, name)
    assert found is not None
    return found


async def delete_connection(engine: AsyncEngine, name: str) -> None:
    async with begin(engine) as conn:
        in_use = await conn.scalar(
            select(
                exists().where(
                    ChannelRow.connection == name, ChannelRow.status != ChannelStatus.DISABLED
                )
            )
        )
        if in_use:
            raise Conflict(f"connection {name!r} still has live channels; disable them first")
        result = await conn.execute(delete(ConnectionRow).where(ConnectionRow.name == name))
        if result.rowcount == 0:
            raise NotFound(f"no connection named {name!r}")
        await conn.execute(delete(TokenRow).where(TokenRow.connection == name))


async def any_encrypted_secret(engine: AsyncEngine) -> str | None:
    """One stored ciphertext, if any: enough to prove BRIDGE_SECRET_KEY opens them."""
    async with connect(engine) as conn:
        found = await conn.scalar(select(ConnectionRow.client_secret_encrypted).limit(1))
        if found is None:
            found = await conn.scalar(
                select(ChannelRow.token_encrypted)
                .where(ChannelRow.token_encrypted.is_not(None))
                .limit(1)
            )
        if found is None:
            for secrets in (await conn.scalars(select(SourceRow.secrets_encrypted))).all():
                if secrets:
                    return str(secrets[0])
    return str(found) if found is not None else None
