"""The database schema and the secret key, as the CLI and start-up check them."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.errors import SecretKeyError, StoreUnavailable
from bridge.secretbox import SecretBox
from bridge.settings import Settings
from bridge.store import migrate
from bridge.store.connections import any_encrypted_secret
from bridge.store.database import create_engine, ping


async def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision`."""
    await migrate.upgrade(database_url, revision)


async def revisions(database_url: str) -> tuple[str | None, str | None]:
    """The database's revision (None: empty) and the newest one this version knows."""
    engine = create_engine(database_url)
    try:
        current = await migrate.current_revision(engine)
    finally:
        await engine.dispose()
    return current, migrate.head_revision(database_url)


async def schema_state(engine: AsyncEngine, database_url: str) -> str:
    """ "current", or what to do about it; raises StoreUnavailable when unreachable."""
    await ping(engine)
    if await migrate.schema_is_current(engine, database_url):
        return "current"
    return "out of date: run `zoho-bridge db upgrade`"


async def check_secret_key(engine: AsyncEngine, box: SecretBox) -> str | None:
    """None when the stored secrets (if any) open with the configured key; otherwise why
    not. A database without the tables yet has nothing to open."""
    try:
        sample = await any_encrypted_secret(engine)
    except (DBAPIError, StoreUnavailable):
        # No tables yet, or no database: readiness reports that on its own.
        return None
    if sample is None:
        return None
    try:
        box.decrypt(sample)
    except SecretKeyError as exc:
        return exc.message
    return None


async def secret_problem(settings: Settings) -> str | None:
    """`check_secret_key` for the configured database and key, before anything runs."""
    box = SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None)
    engine = create_engine(settings.database_url)
    try:
        return await check_secret_key(engine, box)
    finally:
        await engine.dispose()
