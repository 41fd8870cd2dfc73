"""Books sources: create, change, read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.states import SignatureMode
from bridge.errors import NotFound
from bridge.store.database import begin, connect
from bridge.store.models import SourceRow


@dataclass(frozen=True, slots=True)
class SourceInfo:
    name: str
    token_hashes: tuple[str, ...]
    secrets_encrypted: tuple[str, ...]
    signature_mode: SignatureMode
    enabled: bool
    created_at: datetime
    updated_at: datetime
    connection: str | None = None  # linked: its webhooks and this connection's polls match


def _info(row: Any) -> SourceInfo:
    return SourceInfo(
        name=row.name,
        token_hashes=tuple(row.token_hashes),
        secrets_encrypted=tuple(row.secrets_encrypted),
        signature_mode=SignatureMode(row.signature_mode),
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        connection=row.connection,
    )


async def create_source(
    engine: AsyncEngine,
    *,
    name: str,
    token_hashes: list[str],
    secrets_encrypted: list[str],
    signature_mode: str,
    now: datetime,
) -> SourceInfo:
    values = {
        "name": name,
        "token_hashes": token_hashes,
        "secrets_encrypted": secrets_encrypted,
        "signature_mode": signature_mode,
        "enabled": True,
        "created_at": now,
        "updated_at": now,
    }
    async with begin(engine, conflict=f"a source named {name!r} already exists") as conn:
        await conn.execute(insert(SourceRow), values)
    found = await get_source(engine, name)
    assert found is not None
    return found


async def update_source(
    engine: AsyncEngine, name: str, now: datetime, **changes: Any
) -> SourceInfo:
    async with begin(engine) as conn:
        result = await conn.execute(
            update(SourceRow).where(SourceRow.name == name).values(updated_at=now, **changes)
        )
        if result.rowcount == 0:
            raise NotFound(f"no source named {name!r}")
    found = await get_source(engine, name)
    assert found is not None
    return found


async def get_source(engine: AsyncEngine, name: str) -> SourceInfo | None:
    async with connect(engine) as conn:
        row = (await conn.execute(select(SourceRow).where(SourceRow.name == name))).first()
    return _info(row) if row is not None else None


async def list_sources(engine: AsyncEngine) -> list[SourceInfo]:
    async with connect(engine) as conn:
        rows = (await conn.execute(select(SourceRow).order_by(SourceRow.name))).all()
    return [_info(row) for row in rows]
