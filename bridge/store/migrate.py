"""Alembic, driven from code: upgrade, current revision, and "is the schema current?"."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import ConfigurationError


def migrations_dir() -> Path:
    """`migrations/` in a source checkout, or its copy inside an installed wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_migrations", package.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigurationError("cannot find the migrations directory")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    # `%` is interpolation syntax in ConfigParser; a password may contain one.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revision(database_url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations (Alembic runs its own engine; see migrations/env.py)."""
    await asyncio.to_thread(command.upgrade, alembic_config(database_url), revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def schema_is_current(engine: AsyncEngine, database_url: str) -> bool:
    return await current_revision(engine) == head_revision(database_url)
