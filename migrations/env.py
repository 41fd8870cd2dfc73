"""Alembic environment: runs migrations over the bridge's async engine."""

from __future__ import annotations

import asyncio
import warnings
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from bridge.store.database import create_engine
from bridge.store.models import Base

config = context.config
target_metadata = Base.metadata

# Indexes on expressions, which autogenerate cannot compare (SQLite's reflection skips
# them, PostgreSQL's renders the expression its own way): left out of `alembic check`;
# tests/test_read_paths.py checks that the claim finds and uses each of them.
EXPRESSION_INDEXES = frozenset({"ix_deliveries_lane"})
warnings.filterwarnings(
    "ignore", message="Skipped unsupported reflection of expression-based index ix_deliveries_"
)
warnings.filterwarnings(
    "ignore", message="autogenerate skipping metadata-specified expression-based index"
)


def _compared(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
    return not (kind == "index" and name in EXPRESSION_INDEXES)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=_compared,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run them against a database")
asyncio.run(_run_async())
