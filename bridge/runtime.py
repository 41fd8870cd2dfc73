"""The composition root: decides which adapters run, and owns their lifetimes."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.backoff import BackoffPolicy
from bridge.domain.channel_rules import RenewalPolicy
from bridge.errors import SecretKeyError, StoreUnavailable
from bridge.secretbox import SecretBox
from bridge.services.channel_keeper import ChannelKeeper
from bridge.services.ingest import IngestService
from bridge.services.lookup import Lookup
from bridge.services.notify import NewEvents
from bridge.services.relay import Relay, RelayOptions
from bridge.services.retention import PurgeLoop
from bridge.settings import Settings
from bridge.sinks.factory import build_sinks
from bridge.store.budget_store import DbBudgetStore
from bridge.store.connections import any_encrypted_secret
from bridge.store.database import create_engine
from bridge.store.outbox import OutboxHook
from bridge.store.token_store import DbTokenStore
from bridge.store.writer import EventWriter, backend_for
from bridge.zoho.budget import Budget
from bridge.zoho.client import ZohoClient
from bridge.zoho.oauth import TokenManager


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
    http: httpx.AsyncClient
    zoho: ZohoClient
    replica: str
    keeper: ChannelKeeper
    new_events: NewEvents
    # Why BRIDGE_SECRET_KEY cannot open the stored secrets, if it cannot.
    secret_problem: str | None = None
    # The scheduler, when this runtime runs scheduled work (`serve`, not CLI commands).
    scheduler: Any = field(default=None)
    # The outbox relay and the retention purge: background work, not in CLI commands.
    relay: Relay | None = None
    purge_loop: PurgeLoop | None = None
    sink_http: httpx.AsyncClient | None = None

    def start_scheduler(self) -> None:
        """Run scheduled work (channel renewal and repair) in this process: `serve` only."""
        from bridge.services.scheduler import start_scheduler

        self.scheduler = start_scheduler(self.keeper, self.settings)

    async def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self.relay is not None:
            await self.relay.stop()
        if self.purge_loop is not None:
            await self.purge_loop.stop()
        await self.writer.stop()
        if self.sink_http is not None:
            await self.sink_http.aclose()
        await self.http.aclose()
        await self.engine.dispose()


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
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    transport: httpx.AsyncBaseTransport | None = None,
    background: bool = True,
) -> Runtime:
    """Open everything; `background=False` (one-shot CLI commands) runs no relay or purge."""
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
    # Outbox rows are written by whichever process stores the event, relay or not.
    writer.in_transaction.append(OutboxHook(settings.push_sinks))
    new_events = NewEvents()
    writer.committed.append(new_events)
    lookup = Lookup(engine, box, settings.lookup_cache_seconds)
    ingest = IngestService(writer, lookup, clock, settings.rejected_body_bytes)
    http = httpx.AsyncClient(timeout=settings.zoho_timeout, transport=transport)

    def seconds() -> float:
        return clock().timestamp()

    tokens = TokenManager(http, DbTokenStore(engine, box), clock=seconds)
    budget = Budget(DbBudgetStore(engine), clock=seconds)
    zoho = ZohoClient(http, tokens, budget)
    replica = settings.replica_id or f"{socket.gethostname()}:{os.getpid()}:{id(engine):x}"
    keeper = ChannelKeeper(
        engine, box, zoho, lookup, clock, replica[:64],
        policy=RenewalPolicy(
            lifetime=timedelta(hours=settings.channel_lifetime_hours),
            renew_after=timedelta(hours=settings.channel_renew_after_hours),
            alert_within=timedelta(hours=settings.channel_alert_hours),
        ),
        lease=timedelta(seconds=settings.channel_lease_seconds),
        grace=timedelta(hours=settings.channel_token_grace_hours),
        rotate_every=settings.channel_rotate_every,
    )  # fmt: skip
    secret_problem = await check_secret_key(engine, box)
    runtime = Runtime(
        settings, engine, box, writer, lookup, ingest, clock, http, zoho, replica[:64],
        keeper, new_events, secret_problem,
    )  # fmt: skip
    if background:
        if "webhook" in settings.push_sinks:
            runtime.sink_http = httpx.AsyncClient()
        sinks = build_sinks(settings.sink_config, http_client=runtime.sink_http)
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
