"""The composition root: decides which adapters run, and owns their lifetimes."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.channel_rules import RenewalPolicy
from bridge.errors import SecretKeyError, StoreUnavailable
from bridge.secretbox import SecretBox
from bridge.services.channel_keeper import ChannelKeeper
from bridge.services.ingest import IngestService
from bridge.services.lookup import Lookup
from bridge.settings import Settings
from bridge.store.budget_store import DbBudgetStore
from bridge.store.connections import any_encrypted_secret
from bridge.store.database import create_engine
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
    # Why BRIDGE_SECRET_KEY cannot open the stored secrets, if it cannot.
    secret_problem: str | None = None
    # The scheduler, when this runtime runs scheduled work (`serve`, not CLI commands).
    scheduler: Any = field(default=None)

    def start_scheduler(self) -> None:
        """Run scheduled work (channel renewal and repair) in this process: `serve` only."""
        from bridge.services.scheduler import start_scheduler

        self.scheduler = start_scheduler(self.keeper, self.settings)

    async def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        await self.writer.stop()
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


async def open_runtime(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Runtime:
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
    await writer.start()
    return Runtime(
        settings, engine, box, writer, lookup, ingest, clock, http, zoho, replica[:64],
        keeper, secret_problem,
    )  # fmt: skip
