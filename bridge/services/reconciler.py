"""The reconciliation run of one watch: list what changed at Zoho since its cursor, match
it with the webhooks received, emit what nobody announced, and move the cursor — all
under the watch's lease, the events and the cursor in one transaction.

See docs/reconciliation.md for what this guarantees; the rules live in `domain.reconcile_*`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.books_entities import by_key
from bridge.domain.events import Event, Product
from bridge.domain.reconcile_cursor import Cursor, CursorPolicy, advance, read_from
from bridge.domain.reconcile_match import MatchPolicy
from bridge.domain.reconcile_schedule import (
    SchedulePolicy,
    next_after_failure,
    next_after_success,
)
from bridge.domain.states import ConnectionStatus
from bridge.errors import BridgeError
from bridge.metrics import RECONCILE_LAG, RECONCILE_MISSED, RECONCILE_RUNS
from bridge.secretbox import SecretBox
from bridge.services import connections
from bridge.services.reconcile_books import BooksSide, Swept
from bridge.services.reconcile_context import books_context, crm_context
from bridge.services.reconcile_crm import CrmSide
from bridge.services.reconcile_fetch import fill_data
from bridge.services.reconcile_plan import carry_over, pending_row, plan
from bridge.services.reconcile_poll import Listing, list_books, list_crm
from bridge.store import sweeps
from bridge.store import watches as store
from bridge.store.managed_channels import cover_gaps
from bridge.store.reconcile_writes import commit_run
from bridge.store.watches import WatchInfo
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection
from bridge.zoho.errors import BudgetExhausted, ZohoAuthError, ZohoError
from bridge.zoho.meter import CallMeter

log = structlog.get_logger(__name__)

Outcome = Literal["ok", "failed", "deferred", "paused", "skipped"]
CommittedHook = Callable[[Sequence[Event]], None]
# Versions in their grace period a watch carries to its next run; beyond this many, the
# oldest hold its cursor instead (a burst of dropped callbacks stays bounded in the row).
PENDING_CAP = 2000
PACE_WINDOW = timedelta(days=1)  # Zoho's daily budgets are rolling 24 h windows (C11)
MAX_PACE = timedelta(hours=2)
AMPLE_RUNS = 20  # a share that pays for this many more runs is not nearly spent


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """The reconciliation settings (`BRIDGE_RECONCILE_*`) as the runs use them."""

    grace: timedelta = timedelta(minutes=10)
    settle: timedelta = timedelta(seconds=60)
    crm_overlap: timedelta = timedelta(minutes=5)
    books_overlap: timedelta = timedelta(minutes=15)
    crm_interval: timedelta = timedelta(minutes=15)
    books_interval: timedelta = timedelta(minutes=60)
    deletes_interval: timedelta = timedelta(minutes=60)
    sweep_interval: timedelta = timedelta(hours=24)
    lease: timedelta = timedelta(minutes=10)
    coql: bool = False

    def cursor(self, product: Product) -> CursorPolicy:
        overlap = self.crm_overlap if product is Product.CRM else self.books_overlap
        return CursorPolicy(overlap=overlap, settle=self.settle)

    def schedule(self, watch: WatchInfo) -> SchedulePolicy:
        if watch.interval_seconds:
            interval = timedelta(seconds=watch.interval_seconds)
        else:
            interval = self.crm_interval if watch.product is Product.CRM else self.books_interval
        return SchedulePolicy(interval=interval)


@dataclass
class RunReport:
    """What one run of one watch did."""

    watch_id: int
    outcome: Outcome
    versions: int = 0
    pending: int = 0
    emitted: dict[str, int] = field(default_factory=dict)  # new events by cause
    calls: int = 0
    credits: int = 0
    error: str | None = None
    strategy_change: str | None = None


@dataclass
class Reconciler:
    """Runs watches. Several replicas may run it: a run first wins the watch's lease."""

    engine: AsyncEngine
    box: SecretBox
    zoho: ZohoClient
    clock: Callable[[], datetime]
    owner: str
    push_sinks: tuple[str, ...]
    committed: list[CommittedHook]
    policy: ReconcilePolicy = field(default_factory=ReconcilePolicy)
    rng: random.Random = field(default_factory=random.Random)
    crm: CrmSide = field(init=False)
    books: BooksSide = field(init=False)

    def __post_init__(self) -> None:
        self.crm = CrmSide(self.zoho, self.policy.deletes_interval)
        self.books = BooksSide(self.engine, self.zoho, self.clock, self.policy.sweep_interval)

    async def run_watch(self, watch_id: int, *, due: bool = True) -> RunReport:
        """Run one watch now if this replica wins its lease (and, with `due`, it is still
        due); `skipped` otherwise."""
        now = self.clock()
        if not await store.claim(
            self.engine, watch_id, self.owner, now, now + self.policy.lease, due=due
        ):
            return RunReport(watch_id, "skipped")
        watch = await store.get(self.engine, watch_id)
        holding = asyncio.create_task(self._hold(watch_id), name=f"lease of watch {watch_id}")
        try:
            report = await self._run(watch, now)
        except BaseException:
            await store.release(self.engine, watch_id, self.owner)
            raise
        finally:
            holding.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await holding  # its own failure must not replace the run's outcome
        RECONCILE_RUNS.labels(report.outcome).inc()
        return report

    async def _hold(self, watch_id: int) -> None:
        """Extend the watch's lease every third of it while the run lasts. A run longer
        than its lease (a big backlog, Books records fetched at a few a minute) used to
        let another replica claim the watch mid-run: both listed and fetched everything,
        spending the budget twice, and the first one's cursor was thrown away. A process
        killed mid-run stops extending, so its lease still expires (tests/reconcile)."""
        every = max(self.policy.lease.total_seconds() / 3, 0.05)
        while True:
            await asyncio.sleep(every)
            try:
                if not await store.extend(
                    self.engine, watch_id, self.owner, self.clock() + self.policy.lease
                ):
                    return  # lost (released, or taken after it expired): nothing to hold
            except BridgeError as exc:
                log.warning("cannot extend a watch's lease", watch=watch_id, error=exc.message)

    async def _run(self, watch: WatchInfo, started: datetime) -> RunReport:
        meter = CallMeter()
        schedule = self.policy.schedule(watch)
        try:
            info = await connections.load(self.engine, watch.connection)
            if info.status is not ConnectionStatus.ACTIVE:
                return await self._pause(watch, started, f"connection {info.name} is {info.status}")
            connection = connections.to_zoho(info, self.box)
            return await self._reconcile(watch, connection, meter, started)
        except BudgetExhausted as exc:
            until = started + timedelta(seconds=max(exc.retry_after or 60.0, 1.0))
            await store.release(
                self.engine, watch.id, self.owner, deferred_until=until, next_run_at=until,
                deferred_reason=exc.message, last_finished_at=self.clock(),
            )  # fmt: skip
            log.info("reconciliation deferred by the budget", watch=watch.id,
                     until=until.isoformat(), reason=exc.message)  # fmt: skip
            return RunReport(watch.id, "deferred", error=exc.message, calls=meter.calls)
        except ZohoAuthError as exc:
            await connections.mark_needs_reauth(self.engine, watch.connection, exc, started)
            return await self._pause(watch, started, f"connection {watch.connection} needs reauth")
        except (ZohoError, BridgeError) as exc:
            failures = watch.failures + 1
            retry = next_after_failure(failures, self.clock(), schedule, self.rng)
            await store.release(
                self.engine, watch.id, self.owner, failures=failures, last_error=exc.message,
                next_run_at=retry, last_finished_at=self.clock(),
            )  # fmt: skip
            await self._count_failure(watch, meter)
            log.warning("reconciliation run failed", watch=watch.id, module=watch.module,
                        error=exc.message, failures=failures)  # fmt: skip
            return RunReport(watch.id, "failed", error=exc.message, calls=meter.calls)

    async def _pause(self, watch: WatchInfo, now: datetime, why: str) -> RunReport:
        """A connection that needs a new consent pauses its watches: calls with a refused
        token only fail again. The cursor stays, so they catch up once it is fixed."""
        await store.release(
            self.engine, watch.id, self.owner, deferred_reason=f"paused: {why}",
            deferred_until=None, next_run_at=now + self.policy.schedule(watch).interval,
            last_finished_at=now,
        )  # fmt: skip
        return RunReport(watch.id, "paused", error=why)

    async def _count_failure(self, watch: WatchInfo, meter: CallMeter) -> None:
        await commit_run(
            self.engine, events=[], push_sinks=self.push_sinks, watch_id=watch.id, owner=None,
            watch_values={}, day=day_of(self.clock()),
            counts={"failed_runs": 1, "calls": meter.calls, "credits": meter.crm_credits},
        )  # fmt: skip

    async def _reconcile(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter, started: datetime
    ) -> RunReport:
        cursor_policy = self.policy.cursor(watch.product)
        schedule = self.policy.schedule(watch)
        cursor = Cursor(watch.watermark, frozenset(watch.ids_at_watermark))
        since = read_from(cursor, cursor_policy, watch.start_at)
        values: dict[str, Any] = {}
        change: str | None = None
        held: list[datetime] = []
        deletions: Listing | None = None
        swept: Swept | None = None
        entity = by_key(watch.module) if watch.product is Product.BOOKS else None
        if entity is None:
            listing = await list_crm(
                self.zoho, connection, watch.module, since, meter, started, coql=self.policy.coql
            )
            if (fixed := self._zoho_start(watch, started, listing, values)) is not None:
                watch, since = fixed, read_from(cursor, cursor_policy, fixed.start_at)
                listing = await list_crm(
                    self.zoho, connection, watch.module, since, meter, started,
                    coql=self.policy.coql,
                )  # fmt: skip
            held = await self.crm.walk_shift(watch, connection, meter, listing)
            context = await crm_context(
                self.engine, watch, since=since, extra_sources=extra_sources(watch)
            )
            deletions = await self.crm.deletions(
                watch, connection, meter, started, cursor_policy, values
            )
        else:
            strategy = await self.books.strategy(watch, connection, entity, meter, values)
            listing = await list_books(
                self.zoho, connection, entity, strategy, since, meter, started
            )
            if (fixed := self._zoho_start(watch, started, listing, values)) is not None:
                watch, since = fixed, read_from(cursor, cursor_policy, fixed.start_at)
                listing = await list_books(
                    self.zoho, connection, entity, strategy, since, meter, started
                )
            context = await books_context(
                self.engine, watch, since=since, extra_sources=extra_sources(watch)
            )
            change = await self.books.review(
                watch, connection, meter, strategy, listing, context, cursor_policy, values
            )
            swept = await self.books.sweep(watch, connection, entity, meter, started, values)
        assert listing.started_at is not None
        zoho_now = listing.started_at
        grace = MatchPolicy(grace=self.policy.grace)
        carried = carry_over(watch.pending, listing, deletions)
        decided = await plan(
            self.engine, watch, context, [*listing.versions.values(), *carried.updates],
            zoho_now=zoho_now, read_from=since, now=self.clock(), grace=grace,
        )  # fmt: skip
        gone = [*(deletions.versions.values() if deletions else ()), *carried.deletions]
        for found, happened in ((gone, None), (swept.versions if swept else [], swept)):
            if found:
                more = await plan(
                    self.engine, watch, context, found, zoho_now=zoho_now, read_from=since,
                    now=self.clock(), grace=grace,
                    happened=happened.happened if happened is not None else None,
                )  # fmt: skip
                decided.misses.extend(more.misses)
                decided.pending.extend(more.pending)
        if entity is not None and decided.misses:
            failed = await self.books.failed_ids(watch, connection, meter, since, values)
            decided.misses = [m.failed() if m.version.record_id in failed else m
                              for m in decided.misses]  # fmt: skip
        await fill_data(self.zoho, watch, connection, decided, listing, deletions, meter)
        # Versions still in their grace period are carried by the watch and checked again
        # next run, so the cursor need not wait for them (holding it re-listed ~16 minutes
        # of changes on every run of a busy module: bench/reconcile.py); beyond the cap,
        # the oldest hold the cursor as before.
        keep, hold = decided.pending[:PENDING_CAP], decided.pending[PENDING_CAP:]
        new_cursor = advance(
            cursor, completed=listing.completed and change is None, zoho_started_at=zoho_now,
            seen=listing.versions.values(), pending=hold, held=held, policy=cursor_policy,
        )  # fmt: skip
        values["pending"] = [pending_row(v) for v in keep]
        finished = self.clock()
        next_run = next_after_success(started, finished, schedule)
        paced, ample = await self._paced(watch, connection, meter, schedule, finished)
        paced_reason = None
        if paced is not None and paced > next_run:
            next_run = paced
            paced_reason = (
                f"budget: the daily share would not last the day at this schedule, so runs "
                f"are spread out (next at {paced.isoformat(timespec='seconds')}); raise the "
                "connection's limits or BRIDGE_RECONCILE_DAILY_SHARE"
            )
        if decided.pending and ample:
            # Come back when the oldest waiting version's grace is over (Zoho's clock,
            # turned into ours), so detection stays within interval + grace: one more run,
            # worth it while the share is not nearly spent.
            skew = finished - zoho_now
            oldest = min(v.modified_at for v in decided.pending)
            next_run = min(next_run, oldest + self.policy.grace + skew + timedelta(seconds=5))
        if new_cursor is not None:
            values.update(
                watermark=new_cursor.watermark,
                ids_at_watermark=sorted(new_cursor.ids_at_watermark),
            )
        values.update(
            last_zoho_date=zoho_now, last_success_at=finished, last_finished_at=finished,
            failures=0, last_error=None, deferred_until=None, deferred_reason=paced_reason,
            next_run_at=next_run, updated_at=finished,
        )  # fmt: skip
        counts = {"runs": 1, "calls": meter.calls, "credits": meter.crm_credits,
                  "versions": len(listing.versions)}  # fmt: skip
        new = await commit_run(
            self.engine, events=[m.event for m in decided.misses], push_sinks=self.push_sinks,
            watch_id=watch.id, owner=self.owner, watch_values=values, day=day_of(finished),
            counts=counts,
        )  # fmt: skip
        if new:
            for hook in self.committed:
                hook(new)
        emitted = _by_cause(new)
        for cause, count in emitted.items():
            RECONCILE_MISSED.labels(watch.connection, watch.module, cause).inc(count)
        if new_cursor is not None and new_cursor.watermark is not None:
            RECONCILE_LAG.labels(watch.connection, watch.module).set(
                (zoho_now - new_cursor.watermark).total_seconds()
            )
            if entity is None:
                await cover_gaps(self.engine, watch.connection, new_cursor.watermark, finished)
        if swept is not None:
            await sweeps.replace(self.engine, watch.id, swept.known)
        if emitted:
            log.info("reconciliation emitted changes no webhook announced", watch=watch.id,
                     module=watch.module, **emitted)  # fmt: skip
        return RunReport(
            watch.id, "ok", versions=len(listing.versions), pending=len(decided.pending),
            emitted=emitted, calls=meter.calls, credits=meter.crm_credits,
            strategy_change=change,
        )  # fmt: skip

    async def _paced(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter,
        schedule: SchedulePolicy, now: datetime,
    ) -> tuple[datetime | None, bool]:  # fmt: skip
        """When the next run may come so that what is left of the daily share lasts a
        rolling day at this run's cost (e #11: the interval from the budget), if that is
        later than the schedule (None while the share suffices); and whether the share is
        far from spent (an extra run for a waiting version is then affordable). A share
        spent early and then waited out for hours left dropped changes undetected
        meanwhile (bench/reconcile.py with the default limits)."""
        cost = max(1, meter.crm_credits if watch.product is Product.CRM else meter.books_calls)
        left = await self.zoho.budget_left(connection)
        share = (
            left.reconcile_crm_credits_today
            if watch.product is Product.CRM
            else left.reconcile_books_today
        )
        ample = share >= AMPLE_RUNS * cost
        if share >= cost * (PACE_WINDOW / schedule.interval):
            return None, ample
        # This many runs fit in what is left; spread them over the window, at most
        # MAX_PACE apart so a freed window is used again soon.
        room = max(share / cost, 1.0)
        return now + min(PACE_WINDOW / room, MAX_PACE), ample

    def _zoho_start(
        self, watch: WatchInfo, started: datetime, listing: Listing, values: dict[str, Any]
    ) -> WatchInfo | None:
        """The watch with its start moved onto Zoho's clock, on its first run, when our
        clock runs ahead of Zoho's; None otherwise. A watch starts when it is created, by
        our clock (WatchService.add), but its cursor lives on Zoho's: with our clock an
        hour ahead, every change of Zoho's next hour lay "before the start" and was never
        read. The first listing's `Date` tells how far ahead we are; the start moves back
        by that much and a second to spare, for good (it bounds every later read too). A
        clock behind Zoho's only reads a little history: left as it is."""
        if watch.watermark is not None or watch.last_zoho_date is not None:
            return None
        assert listing.started_at is not None
        ahead = started - listing.started_at
        if ahead <= timedelta(seconds=1):
            return None
        start = (watch.start_at - ahead - timedelta(seconds=1)).replace(microsecond=0)
        values["start_at"] = start
        log.warning("our clock is ahead of Zoho's: the watch starts on Zoho's clock",
                    watch=watch.id, ahead_seconds=int(ahead.total_seconds()),
                    start_at=start.isoformat())  # fmt: skip
        return replace(watch, start_at=start)


def extra_sources(watch: WatchInfo) -> tuple[str, ...]:
    """Sources an operator named on the watch (e.g. imported channels' source names)."""
    return tuple(str(s) for s in watch.options.get("sources", ()))


def day_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _by_cause(events: Sequence[Event]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for event in events:
        if event.miss_cause is not None:
            counts[event.miss_cause] = counts.get(event.miss_cause, 0) + 1
    return counts
