"""The composition root: decides which adapters run, and owns their lifetimes."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.backoff import BackoffPolicy
from bridge.secretbox import SecretBox
from bridge.services.ingest import IngestService
from bridge.services.lookup import Lookup
from bridge.services.notify import NewEvents
from bridge.services.relay import Relay, RelayOptions
from bridge.services.retention import PurgeLoop
from bridge.settings import Settings
from bridge.sinks.factory import build_sinks
from bridge.store.database import create_engine
from bridge.store.outbox import OutboxHook
from bridge.store.writer import EventWriter


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
    new_events: NewEvents
    relay: Relay | None = None
    purge_loop: PurgeLoop | None = None
    http_client: httpx.AsyncClient | None = None

    async def close(self) -> None:
        if self.relay is not None:
            await self.relay.stop()
        if self.purge_loop is not None:
            await self.purge_loop.stop()
        await self.writer.stop()
        if self.http_client is not None:
            await self.http_client.aclose()
        await self.engine.dispose()


def relay_owner() -> str:
    """Who holds a lease, as shown in the outbox: host, process, and a random part."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def relay_options(settings: Settings) -> RelayOptions:
    return RelayOptions(
        owner=relay_owner(),
        policy=BackoffPolicy(
            settings.retry_base_seconds, settings.retry_cap_seconds, settings.max_attempts
        ),
        batch=settings.relay_batch,
        lease=timedelta(seconds=settings.relay_lease_seconds),
        poll=settings.relay_poll_seconds,
        concurrency=settings.relay_concurrency,
    )


async def open_runtime(
    settings: Settings, *, clock: Callable[[], datetime] = utc_now, background: bool = True
) -> Runtime:
    """Open everything; `background=False` (one-shot CLI commands) runs no relay or purge."""
    box = SecretBox(settings.secret_key.get_secret_value() if settings.secret_key else None)
    engine = create_engine(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pool_size=settings.db_pool_size,
    )
    writer = EventWriter(
        engine, max_batch=settings.writer_max_batch, rejected_keep=settings.rejected_keep
    )
    # Outbox rows are written by whichever process stores the event, relay or not.
    writer.in_transaction.append(OutboxHook(settings.push_sinks))
    new_events = NewEvents()
    writer.committed.append(new_events)
    lookup = Lookup(engine, box, settings.lookup_cache_seconds)
    ingest = IngestService(writer, lookup, clock, settings.rejected_body_bytes)
    runtime = Runtime(settings, engine, box, writer, lookup, ingest, clock, new_events)
    if background:
        if "webhook" in settings.push_sinks:
            runtime.http_client = httpx.AsyncClient()
        sinks = build_sinks(settings.sink_config, http_client=runtime.http_client)
        runtime.relay = Relay(engine, sinks, relay_options(settings), clock)
        writer.committed.append(runtime.relay.wake)
        runtime.purge_loop = PurgeLoop(
            engine, settings.retention_days, settings.purge_interval_seconds, clock
        )
    await writer.start()
    if runtime.relay is not None:
        await runtime.relay.start()
    if runtime.purge_loop is not None:
        await runtime.purge_loop.start()
    return runtime
