"""The composition root: decides which adapters run, builds the services once, and owns
their lifetimes. The web layer and the CLI reach everything through a `Runtime`."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.backoff import BackoffPolicy
from bridge.domain.channel_rules import RenewalPolicy
from bridge.errors import BridgeError
from bridge.relay_child import RelayChild
from bridge.secretbox import SecretBox
from bridge.services.budgets import BudgetService
from bridge.services.channel_keeper import ChannelKeeper
from bridge.services.channels import ChannelService
from bridge.services.connections import ConnectionService
from bridge.services.deliveries import DeliveryService
from bridge.services.health import HealthMonitor
from bridge.services.ingest import IngestService
from bridge.services.lookup import Lookup
from bridge.services.managed_channels import ManagedChannelService
from bridge.services.notify import CommitSignal
from bridge.services.queries import EventQueries, RequestQueries
from bridge.services.reconcile_loop import ReconcileLoop
from bridge.services.reconcile_runs import RunService
from bridge.services.reconciler import ReconcilePolicy, Reconciler
from bridge.services.relay import Relay, RelayOptions
from bridge.services.retention import PurgeLoop
from bridge.services.schema import check_secret_key
from bridge.services.sources import SourceService
from bridge.services.status import StatusService
from bridge.services.subscriptions import SubscriptionService
from bridge.services.watches import WatchService
from bridge.settings import Settings
from bridge.sinks.factory import build_sinks
from bridge.sinks.webhook import subscriber_client
from bridge.store.budget_store import DbBudgetStore
from bridge.store.database import create_engine, create_read_engine, create_relay_engine
from bridge.store.outbox import OutboxHook
from bridge.store.relay_sqlite import SqliteRelayWrites
from bridge.store.token_store import DbTokenStore
from bridge.store.writer import EventWriter, backend_for
from bridge.zoho.budget import Budget
from bridge.zoho.client import ZohoClient
from bridge.zoho.oauth import TokenManager
from bridge.zoho.shares import Shares


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(kw_only=True)
class Runtime:
    """Everything a running bridge holds open. Built by `open_runtime`, closed by `close`."""

    settings: Settings
    engine: AsyncEngine
    box: SecretBox
    clock: Callable[[], datetime]
    http: httpx.AsyncClient
    zoho: ZohoClient
    replica: str
    # The ingest path.
    writer: EventWriter
    lookup: Lookup
    ingest: IngestService
    commit_signal: CommitSignal
    # Operator services: what the admin API and the CLI call.
    sources: SourceService
    channels: ChannelService
    managed_channels: ManagedChannelService
    connections: ConnectionService
    deliveries: DeliveryService
    subscriptions: SubscriptionService
    events: EventQueries
    requests: RequestQueries
    status: StatusService
    health: HealthMonitor
    keeper: ChannelKeeper
    # Reconciliation: the runs, the watches, on-demand runs and backfills.
    reconciler: Reconciler
    watches: WatchService
    runs: RunService
    budgets: BudgetService
    # Why BRIDGE_SECRET_KEY cannot open the stored secrets, if it cannot.
    secret_problem: str | None = None
    # The scheduler, when this runtime runs scheduled work (`serve`, not CLI commands).
    scheduler: Any = field(default=None)
    # The outbox relay and the retention purge: background work, not in CLI commands.
    relay: Relay | None = None
    relay_engine: AsyncEngine | None = None
    # Or the relay in a child process (`serve`, by default: `open_runtime(relay_child=)`).
    relay_child: RelayChild | None = None
    purge_loop: PurgeLoop | None = None
    sink_http: httpx.AsyncClient | None = None
    # Reconciliation's scheduled work (`serve` only).
    reconcile_loop: ReconcileLoop | None = None

    async def start_scheduler(self) -> None:
        """Run scheduled work (channel renewal and repair, reconciliation) in this
        process: `serve` only."""
        from bridge.services.scheduler import start_scheduler

        if self.reconcile_loop is not None:
            await self.reconcile_loop.start()  # never raises: the first tick tries again
        self.scheduler = start_scheduler(
            self.keeper, self.managed_channels, self.reconcile_loop, self.settings
        )

    async def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self.reconcile_loop is not None:
            await self.reconcile_loop.stop()
        if self.relay is not None:
            await self.relay.stop()
        if self.relay_child is not None:
            await self.relay_child.stop()
        await self.health.stop()
        if self.purge_loop is not None:
            await self.purge_loop.stop()
        await self.writer.stop()
        if self.sink_http is not None:
            await self.sink_http.aclose()
        await self.http.aclose()
        if self.relay_engine is not None:
            await self.relay_engine.dispose()
        if self.subscriptions.reads is not self.engine:
            await self.subscriptions.reads.dispose()
        await self.engine.dispose()


def replica_name(settings: Settings) -> str:
    """This replica's name in leases (outbox rows, channels, watches, heartbeats):
    BRIDGE_REPLICA_ID, or host, process and a random part, unique to this runtime."""
    if settings.replica_id:
        return settings.replica_id[:64]
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def reconcile_policy(settings: Settings) -> ReconcilePolicy:
    return ReconcilePolicy(
        grace=timedelta(seconds=settings.reconcile_grace_seconds),
        settle=timedelta(seconds=settings.reconcile_settle_seconds),
        crm_overlap=timedelta(seconds=settings.reconcile_crm_overlap_seconds),
        books_overlap=timedelta(seconds=settings.reconcile_books_overlap_seconds),
        crm_interval=timedelta(minutes=settings.reconcile_crm_minutes),
        books_interval=timedelta(minutes=settings.reconcile_books_minutes),
        deletes_interval=timedelta(minutes=settings.reconcile_deletes_minutes),
        sweep_interval=timedelta(hours=settings.reconcile_sweep_hours),
        lease=timedelta(seconds=settings.reconcile_lease_seconds),
        coql=settings.reconcile_coql,
    )


def build_relay(
    settings: Settings,
    clock: Callable[[], datetime],
    replica: str,
    poll: float | None = None,
) -> tuple[AsyncEngine, httpx.AsyncClient | None, Relay]:
    """The outbox relay (not started), its own engine (commits that need no fsync, plans
    that need no statistics: `create_relay_engine`) and the webhook sink's HTTP client.
    On SQLite the relay's frequent writes go through `store.relay_sqlite`."""
    sink_http = (
        subscriber_client(settings.relay_concurrency) if "webhook" in settings.push_sinks else None
    )
    sinks = build_sinks(settings.sink_config, http_client=sink_http,
                        concurrency=settings.relay_concurrency)  # fmt: skip
    engine = create_relay_engine(
        settings.database_url, pool_size=max(2, settings.db_pool_size // 2)
    )
    options = relay_options(settings, replica)
    if poll is not None:
        options = replace(options, poll=poll)
    # SQLite: the lease and settlement transactions run whole on a thread of their own,
    # so the write lock is never held while the relay waits for a busy event loop.
    writes = (
        SqliteRelayWrites(make_url(settings.database_url).database or "")
        if settings.is_sqlite else None
    )  # fmt: skip
    return engine, sink_http, Relay(engine, sinks, options, clock, writes=writes)


def relay_options(settings: Settings, owner: str | None = None) -> RelayOptions:
    """The relay's options; `owner` (the lease owner) is the replica's name."""
    return RelayOptions(
        owner=owner or replica_name(settings),
        policy=BackoffPolicy(
            settings.retry_base_seconds, settings.retry_cap_seconds, settings.max_attempts
        ),
        batch=settings.relay_batch,
        linger=settings.relay_linger_seconds,
        lease=timedelta(seconds=settings.relay_lease_seconds),
        poll=settings.relay_poll_seconds,
        concurrency=settings.relay_concurrency,
        probe=BackoffPolicy(
            settings.sink_probe_seconds,
            max(settings.sink_probe_cap_seconds, settings.sink_probe_seconds),
        ),
    )


def _keeper(
    settings: Settings,
    engine: AsyncEngine,
    box: SecretBox,
    zoho: ZohoClient,
    lookup: Lookup,
    clock: Callable[[], datetime],
    replica: str,
) -> ChannelKeeper:
    return ChannelKeeper(
        engine, box, zoho, lookup, clock, replica,
        policy=RenewalPolicy(
            lifetime=timedelta(hours=settings.channel_lifetime_hours),
            renew_after=timedelta(hours=settings.channel_renew_after_hours),
            alert_within=timedelta(hours=settings.channel_alert_hours),
        ),
        lease=timedelta(seconds=settings.channel_lease_seconds),
        grace=timedelta(hours=settings.channel_token_grace_hours),
        rotate_every=settings.channel_rotate_every,
    )  # fmt: skip


async def open_runtime(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    transport: httpx.AsyncBaseTransport | None = None,
    background: bool = True,
    status_of: Callable[[BridgeError], int] | None = None,
    relay_child: bool = False,
) -> Runtime:
    """Open everything; `background=False` (one-shot CLI commands) runs no relay or purge.
    With `relay_child` the relay runs in a child process (`bridge.relay_child`), else on
    this event loop.
    `status_of` is the web layer's error → HTTP status mapping, recorded with rejected
    webhook requests."""
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
    commit_signal = CommitSignal()
    writer.committed.append(commit_signal)
    lookup = Lookup(engine, box, settings.lookup_cache_seconds)
    ingest = IngestService(writer, lookup, clock, settings.rejected_body_bytes)
    if status_of is not None:
        ingest.status_of = status_of
    http = httpx.AsyncClient(timeout=settings.zoho_timeout, transport=transport)

    def seconds() -> float:
        return clock().timestamp()

    tokens = TokenManager(http, DbTokenStore(engine, box), clock=seconds)
    shares = Shares(per_minute=settings.reconcile_budget_share,
                    daily=settings.reconcile_daily_share)  # fmt: skip
    budget = Budget(DbBudgetStore(engine), clock=seconds, shares=shares)
    zoho = ZohoClient(http, tokens, budget)
    replica = replica_name(settings)
    keeper = _keeper(settings, engine, box, zoho, lookup, clock, replica)
    policy = reconcile_policy(settings)
    watches = WatchService(engine, clock, policy, settings.reconcile_auto_watches)
    managed_channels = ManagedChannelService(keeper, settings.public_url, watches)
    deliveries = DeliveryService(engine, settings.push_sinks, clock, settings.retention_days)
    secret_problem = await check_secret_key(engine, box)
    health = HealthMonitor(
        engine, settings.database_url, clock, replica, settings.health_check_seconds
    )
    reconciler = Reconciler(
        engine, box, zoho, clock, replica, settings.push_sinks, writer.committed, policy
    )
    runs = RunService(engine, reconciler, clock)
    read_engine = create_read_engine(settings.database_url, engine)
    subscriptions = SubscriptionService(
        engine, commit_signal, clock, read_engine,
        max_waiting_per_subscription=settings.long_polls_per_subscription,
        max_waiting=settings.long_polls_total, cache_seconds=settings.lookup_cache_seconds,
        linger=settings.long_poll_linger_seconds,
    )  # fmt: skip
    status = StatusService(
        engine, settings.database_url, deliveries, managed_channels, watches, health,
        secret_problem,
        # A few probes' time: an outage no relay has confirmed since is flagged stale.
        sink_stale_after=timedelta(seconds=3 * settings.sink_probe_cap_seconds + 30),
    )  # fmt: skip
    runtime = Runtime(
        settings=settings,
        engine=engine,
        box=box,
        clock=clock,
        http=http,
        zoho=zoho,
        replica=replica,
        writer=writer,
        lookup=lookup,
        ingest=ingest,
        commit_signal=commit_signal,
        sources=SourceService(engine, box, lookup, clock),
        channels=ChannelService(engine, lookup, managed_channels, clock),
        managed_channels=managed_channels,
        connections=ConnectionService(engine, box, zoho, clock),
        deliveries=deliveries,
        subscriptions=subscriptions,
        events=EventQueries(engine),
        requests=RequestQueries(engine),
        status=status,
        health=health,
        keeper=keeper,
        reconciler=reconciler,
        watches=watches,
        runs=runs,
        budgets=BudgetService(engine, box, zoho),
        secret_problem=secret_problem,
    )
    if background and settings.relay and relay_child and settings.push_sinks:
        child = runtime.relay_child = RelayChild(settings, engine, clock, replica)
        writer.committed.append(child.wake)
        deliveries.wake = child.wake
        runtime.status.relay_problems = child.problems
    elif background and settings.relay:
        runtime.relay_engine, runtime.sink_http, runtime.relay = build_relay(
            settings, clock, replica
        )
        writer.committed.append(runtime.relay.wake)
        deliveries.wake = runtime.relay.wake
        runtime.status.relay_problems = runtime.relay.problems
        runtime.status.relay_rates = runtime.relay.publish_rates
        runtime.status.relay_name = replica
    if background:
        runtime.purge_loop = PurgeLoop(
            engine, settings.retention_days, settings.purge_interval_seconds, clock
        )
        if settings.reconcile:
            loop = ReconcileLoop(
                engine, reconciler, watches, runs, clock,
                heartbeat=timedelta(seconds=settings.heartbeat_seconds),
            )  # fmt: skip
            writer.committed.append(loop.on_commit)
            keeper.on_recovered = loop.recovered
            runtime.reconcile_loop = loop
    await writer.start()
    if runtime.relay is not None:
        await runtime.relay.start()
    if runtime.relay_child is not None:
        await runtime.relay_child.start()
    if runtime.purge_loop is not None:
        await runtime.purge_loop.start()
    if background:
        await health.start()
    return runtime
