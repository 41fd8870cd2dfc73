"""The composition root: decides which adapters run, and owns their lifetimes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.secretbox import SecretBox
from bridge.services.ingest import IngestService
from bridge.services.lookup import Lookup
from bridge.settings import Settings
from bridge.store.database import create_engine
from bridge.store.writer import EventWriter, backend_for


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    """Everything a running bridge holds open. Built by `open_runtime`, closed by `close`."""

    settings: Settings
    engine: AsyncEngine
    box: SecretBox
    writer: EventWriter
    lookup: Lookup
    ingest: IngestService
    clock: Callable[[], datetime]

    async def close(self) -> None:
        await self.writer.stop()
        await self.engine.dispose()


async def open_runtime(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Runtime:
    box = SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None)
    engine = create_engine(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.db_pool_size,
    )
    writer = EventWriter(
        backend_for(settings.database_url, sqlite_synchronous=settings.sqlite_synchronous),
        max_batch=settings.writer_max_batch,
        rejected_keep=settings.rejected_keep,
    )
    lookup = Lookup(engine, box, settings.lookup_cache_seconds)
    ingest = IngestService(writer, lookup, clock, settings.rejected_body_bytes)
    await writer.start()
    return Runtime(settings, engine, box, writer, lookup, ingest, clock)
