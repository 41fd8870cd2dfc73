"""Insert-or-update, the same call on SQLite and PostgreSQL (both speak ON CONFLICT)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


async def upsert(
    conn: AsyncConnection,
    model: Any,
    values: dict[str, Any],
    keys: Sequence[str],
    *,
    update: bool = True,
) -> None:
    """Insert `values` into `model`'s table; on a clash on `keys`, overwrite the other
    columns (or, with `update=False`, leave the existing row alone)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(model).values(**values)
    changes = {k: v for k, v in values.items() if k not in keys}
    if update and changes:
        stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=changes)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
    await conn.execute(stmt)
