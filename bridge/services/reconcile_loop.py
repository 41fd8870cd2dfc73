"""Reconciliation's scheduled work in `serve`: heartbeats and downtime, automatic watches,
signals from arriving webhooks, due watches (fairly across connections), queued runs.

Every replica ticks; the database's leases decide which one runs each watch and each run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.events import Event, Origin, Product
from bridge.domain.reconcile_schedule import DueWatch, Signal, after_signal, pick_due
from bridge.domain.states import WatchStatus
from bridge.errors import BridgeError
from bridge.services import connections
from bridge.services.reconcile_runs import RunService
from bridge.services.reconciler import Reconciler, extra_sources
from bridge.services.watches import WatchService
from bridge.store import downtime
from bridge.store import managed_channels as channel_store
from bridge.store import sources as source_store
from bridge.store import watches as store
from bridge.store.watches import WatchInfo

log = structlog.get_logger(__name__)

SYNC_EVERY = timedelta(seconds=60)  # automatic watches follow channel changes this fast


@dataclass
class ReconcileLoop:
    """One replica's reconciliation scheduler. `on_commit` is the writer's hook: it only
    notes which modules received webhooks; `tick` turns that into earlier runs."""

    engine: AsyncEngine
    reconciler: Reconciler
    watches: WatchService
    runs: RunService
    clock: Callable[[], datetime]
    heartbeat: timedelta = timedelta(seconds=30)
    per_tick: int = 8
    _signals: set[tuple[str, str, str]] = field(default_factory=set)
    _beat_at: datetime | None = None
    _synced_at: datetime | None = None
    _runs_task: asyncio.Task[int] | None = None
    _started: bool = False

    def on_commit(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.origin is Origin.WEBHOOK:
                self._signals.add((event.product, event.source, event.module))

    async def start(self) -> None:
        """At start-up: record the downtime if every replica was gone, and run every
        watch soon (a restart is a signal: whatever happened meanwhile is caught up).
        Never raises: with the database down, the first tick that reaches it does this."""
        try:
            await self._start()
        except BridgeError as exc:
            log.warning("reconciliation start deferred", error=exc.message)

    async def _start(self) -> None:
        now = self.clock()
        span = await downtime.record_if_down(self.engine, now, self.heartbeat * 3)
        if span is not None:
            log.warning("bridge downtime recorded", down_from=span[0].isoformat(),
                        down_to=span[1].isoformat())  # fmt: skip
        await downtime.beat(self.engine, self.reconciler.owner, now)
        self._beat_at = now
        active = [w.id for w in await store.list_all(self.engine)
                  if w.status is WatchStatus.ACTIVE]  # fmt: skip
        await store.bring_forward(self.engine, active, now)
        self._started = True

    async def stop(self) -> None:
        if self._runs_task is not None:
            self._runs_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runs_task
            self._runs_task = None

    async def tick(self) -> int:
        """One round of scheduled work; how many watches ran."""
        if not self._started:
            await self._start()
        now = self.clock()
        if self._beat_at is None or now - self._beat_at >= self.heartbeat:
            await downtime.beat(self.engine, self.reconciler.owner, now)
            self._beat_at = now
        if self._synced_at is None or now - self._synced_at >= SYNC_EVERY:
            await self.watches.ensure_automatic()
            self._synced_at = now
        all_watches = [w for w in await store.list_all(self.engine)
                       if w.status is WatchStatus.ACTIVE]  # fmt: skip
        await self._apply_signals(all_watches, now)
        ran = await self._run_due(now)
        if self._runs_task is None or self._runs_task.done():
            self._runs_task = asyncio.create_task(self.runs.execute_waiting(), name="runs")
        return ran

    async def recovered(self, connection: str) -> None:
        """A channel of `connection` is live again after a gap: poll its span now."""
        now = self.clock()
        ids = [w.id for w in await store.list_all(self.engine, connection=connection)
               if w.product is Product.CRM]  # fmt: skip
        await store.bring_forward(self.engine, ids, now)

    async def _apply_signals(self, watches: list[WatchInfo], now: datetime) -> None:
        """A webhook for a module asks for an extra run of its watch, at most one per
        `signal_spacing` (e #12): activity is when gaps are most likely."""
        if not self._signals:
            return
        signals, self._signals = self._signals, set()
        owners = await self._source_owners()
        affordable: dict[tuple[str, str], bool] = {}
        for watch in watches:
            if watch.deferred_until is not None and watch.deferred_until > now:
                continue  # waiting for the budget: a webhook does not make it cheaper
            sources = owners.get((watch.product, watch.connection), set()) | {
                watch.connection,
                *extra_sources(watch),
            }
            if not any(
                product == watch.product and module == watch.module and source in sources
                for product, source, module in signals
            ):
                continue
            key = (watch.connection, watch.product)
            if key not in affordable:
                affordable[key] = await self._affordable(watch.connection, watch.product, watches)
            if not affordable[key]:
                continue
            due = after_signal(
                Signal.WEBHOOK, now, watch.next_run_at, last_started_at=watch.last_started_at,
                failures=watch.failures, policy=self.reconciler.policy.schedule(watch),
            )  # fmt: skip
            if due < watch.next_run_at:
                await store.bring_forward(self.engine, [watch.id], due)

    async def _affordable(
        self, connection: str, product: Product, watches: list[WatchInfo]
    ) -> bool:
        """Whether extra runs may spend the connection's reconciliation share: only what
        is left beyond a whole day of its watches' floor runs (e #11: the interval comes
        from the budget). Without this, webhook-triggered runs of a busy module spent the
        daily share within hours and the floor runs, and so detection, then waited for the
        rolling 24 h to free up (bench/reconcile.py, default limits)."""
        policy = self.reconciler.policy
        day = timedelta(days=1)
        reserve = 0.0
        for watch in watches:
            if watch.connection == connection and watch.product is product:
                reserve += day / policy.schedule(watch).interval
                if product is Product.CRM:
                    reserve += day / policy.deletes_interval
        try:
            info = await connections.load(self.engine, connection)
            left = await self.reconciler.zoho.budget_left(
                connections.to_zoho(info, self.reconciler.box)
            )
        except BridgeError:
            return False
        share = left.reconcile_crm_credits_today if product is Product.CRM else (
            left.reconcile_books_today
        )  # fmt: skip
        return share > reserve

    async def _source_owners(self) -> dict[tuple[str, str], set[str]]:
        """Which event sources belong to which connection: its channels' and its linked
        Books sources'."""
        owners: dict[tuple[str, str], set[str]] = {}
        for channel in await channel_store.list_managed(self.engine, live_only=False):
            owners.setdefault((Product.CRM, channel.connection), set()).add(channel.source)
        for source in await source_store.list_sources(self.engine):
            if source.connection:
                owners.setdefault((Product.BOOKS, source.connection), set()).add(source.name)
        return owners

    async def _run_due(self, now: datetime) -> int:
        due = [
            w for w in await store.list_all(self.engine)
            if w.status is WatchStatus.ACTIVE and w.next_run_at <= now
        ]  # fmt: skip
        by_key = {(w.connection, f"{w.product}/{w.module}"): w for w in due}
        order = pick_due(
            [DueWatch(w.connection, f"{w.product}/{w.module}", w.next_run_at, w.last_started_at)
             for w in due],
            now, per_connection=2, limit=self.per_tick,
        )  # fmt: skip
        ran = 0
        for picked in order:
            watch = by_key[(picked.connection, picked.module)]
            report = await self.reconciler.run_watch(watch.id)
            if report.outcome != "skipped":
                ran += 1
        return ran
