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

from bridge.domain.books_entities import BooksEntity, by_key
from bridge.domain.events import Event, Operation, Product
from bridge.domain.reconcile_books_strategy import ListingStrategy, review_run, unlisted
from bridge.domain.reconcile_books_sweep import sweep
from bridge.domain.reconcile_causes import Interval
from bridge.domain.reconcile_cursor import (
    Cursor,
    CursorPolicy,
    Version,
    advance,
    read_from,
    shifted_from,
)
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
from bridge.services.reconcile_context import WatchContext, books_context, crm_context
from bridge.services.reconcile_plan import Plan, plan
from bridge.services.reconcile_poll import (
    Listing,
    books_version,
    crm_deleted_version,
    list_books,
    list_crm,
    list_crm_deleted,
    probe_books,
)
from bridge.store import sweeps
from bridge.store import watches as store
from bridge.store.managed_channels import cover_gaps
from bridge.store.reconcile_writes import commit_run, known_events, webhook_versions
from bridge.store.watches import WatchInfo
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection
from bridge.zoho.errors import BudgetExhausted, ZohoApiError, ZohoAuthError, ZohoError
from bridge.zoho.meter import CallMeter
from bridge.zoho.times import parse_zoho_time

log = structlog.get_logger(__name__)

Outcome = Literal["ok", "failed", "deferred", "paused", "skipped"]
CommittedHook = Callable[[Sequence[Event]], None]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAILED_ACTION_PAGES = 5  # newest first: older pages are older failures
REVIEW_CHECKS = 20  # records a strategy review asks Books about, at most, per run


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
        cursor = Cursor(watch.watermark, frozenset(watch.ids_at_watermark))
        since = read_from(cursor, cursor_policy, watch.start_at)
        values: dict[str, Any] = {}
        change: str | None = None
        held: list[datetime] = []
        deletions: Listing | None = None
        failed_ids: frozenset[str] = frozenset()
        swept: Swept | None = None
        if watch.product is Product.CRM:
            listing = await list_crm(
                self.zoho, connection, watch.module, since, meter, started, coql=self.policy.coql
            )
            if (fixed := self._zoho_start(watch, started, listing, values)) is not None:
                watch, since = fixed, read_from(cursor, cursor_policy, fixed.start_at)
                listing = await list_crm(
                    self.zoho, connection, watch.module, since, meter, started,
                    coql=self.policy.coql,
                )  # fmt: skip
            held = await self._walk_shift(watch, connection, meter, listing)
            context = await crm_context(
                self.engine, watch, since=since, extra_sources=extra_sources(watch)
            )
            deletions = await self._crm_deletions(watch, connection, meter, started, values)
        else:
            entity = by_key(watch.module)
            strategy = await self._strategy(watch, connection, entity, meter, values)
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
            change = await self._review(
                watch, connection, meter, strategy, listing, context, cursor_policy, values
            )
            failed_ids = await self._failed_actions(watch, connection, meter, since, values)
            swept = await self._sweep(watch, connection, entity, meter, started, values)
        assert listing.started_at is not None
        zoho_now = listing.started_at
        grace = MatchPolicy(grace=self.policy.grace)
        decided = await plan(
            self.engine, watch, context, listing.versions.values(), zoho_now=zoho_now,
            read_from=since, now=self.clock(), grace=grace, failed_ids=failed_ids,
        )  # fmt: skip
        if swept is not None:
            swept_plan = await plan(
                self.engine, watch, context, swept.versions, zoho_now=zoho_now,
                read_from=since, now=self.clock(), grace=grace, happened=swept.happened,
            )  # fmt: skip
            decided.misses.extend(swept_plan.misses)
        if deletions is not None:
            deleted_plan = await plan(
                self.engine, watch, context, deletions.versions.values(), zoho_now=zoho_now,
                read_from=since, now=self.clock(), grace=grace,
            )  # fmt: skip
            self._deletes_cursor(watch, deletions, deleted_plan, cursor_policy, values)
            decided.misses.extend(deleted_plan.misses)
        await fill_data(self.zoho, watch, connection, decided, listing, deletions, meter)
        new_cursor = advance(
            cursor, completed=listing.completed and change is None, zoho_started_at=zoho_now,
            seen=listing.versions.values(), pending=decided.pending, held=held,
            policy=cursor_policy,
        )  # fmt: skip
        finished = self.clock()
        next_run = next_after_success(started, finished, self.policy.schedule(watch))
        if decided.pending:
            # Come back when the oldest waiting version's grace is over (Zoho's clock,
            # turned into ours), so detection stays within interval + grace.
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
            failures=0, last_error=None, deferred_until=None, deferred_reason=None,
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
            if watch.product is Product.CRM:
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

    async def _walk_shift(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter, listing: Listing
    ) -> list[datetime]:
        """Where the cursor must stay because records deleted during a walk of several
        pages may have made it skip rows (`shifted_from`); one `/deleted` call since the
        walk began, for walks of two pages or more only (a single page is read at once:
        idle runs still cost one call). Without it, each record deleted above the reading
        position mid-walk silently lost one record from the walk, for good."""
        if len(listing.walk_pages) < 2:
            return []
        assert listing.started_at is not None
        deleted: list[datetime] = []
        async for page in self.zoho.crm_deleted_pages(
            connection, watch.module, listing.started_at - timedelta(seconds=1), meter=meter
        ):
            deleted += [v.modified_at for v in map(crm_deleted_version, page.rows) if v]
        hold = shifted_from(listing.walk_pages, deleted)
        if hold is None:
            return []
        log.info("records deleted during the walk: the cursor stays where rows may have been "
                 "skipped", watch=watch.id, module=watch.module, held=hold.isoformat())  # fmt: skip
        return [hold]

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

    async def _crm_deletions(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter, now: datetime,
        values: dict[str, Any],
    ) -> Listing | None:  # fmt: skip
        """`/{module}/deleted` when due (every BRIDGE_RECONCILE_DELETES_MINUTES, C6)."""
        checked = watch.deletes_checked_at
        if checked is not None and now - checked < self.policy.deletes_interval:
            return None
        cursor = Cursor(watch.deletes_watermark, frozenset(watch.deletes_ids))
        since = read_from(cursor, self.policy.cursor(Product.CRM), watch.start_at)
        listing = await list_crm_deleted(self.zoho, connection, watch.module, since, meter, now)
        values["deletes_checked_at"] = now
        return listing

    def _deletes_cursor(
        self, watch: WatchInfo, listing: Listing, decided: Plan, policy: CursorPolicy,
        values: dict[str, Any],
    ) -> None:  # fmt: skip
        assert listing.started_at is not None
        moved = advance(
            Cursor(watch.deletes_watermark, frozenset(watch.deletes_ids)),
            completed=listing.completed, zoho_started_at=listing.started_at,
            seen=listing.versions.values(), pending=decided.pending, policy=policy,
        )  # fmt: skip
        if moved is not None:
            values.update(deletes_watermark=moved.watermark,
                          deletes_ids=sorted(moved.ids_at_watermark))  # fmt: skip
        if decided.pending:
            values.pop("deletes_checked_at", None)  # look again next run

    async def _strategy(
        self, watch: WatchInfo, connection: Connection, entity: BooksEntity, meter: CallMeter,
        values: dict[str, Any],
    ) -> ListingStrategy:  # fmt: skip
        """The watch's Books listing strategy; probed on the first run (e #10)."""
        if watch.strategy is not None:
            return ListingStrategy(watch.strategy)
        choice = await probe_books(self.zoho, connection, entity, meter)
        values.update(strategy=choice.strategy.value, strategy_reason=f"probe: {choice.reason}")
        log.info("Books listing strategy chosen", watch=watch.id, entity=entity.key,
                 strategy=choice.strategy.value, reason=choice.reason)  # fmt: skip
        return choice.strategy

    async def _failed_actions(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter, since: datetime,
        values: dict[str, Any],
    ) -> frozenset[str]:  # fmt: skip
        """Records whose webhook Books itself lists as failed since `since` (B10): their
        misses get the cause `delivery_failed`. The endpoint's path is UNCERTAIN: if Books
        refuses it, the watch stops asking (option `failed_actions`) and says why."""
        if not watch.options.get("failed_actions", True):
            return frozenset()
        found: set[str] = set()
        try:
            async for page in self.zoho.books_failed_actions(connection, meter=meter):
                older = 0
                for row in page.rows:
                    at = parse_zoho_time(row.get("execution_time"))
                    if at is not None and at < since:
                        older += 1
                        continue
                    if str(row.get("entity", "")).casefold() == watch.module.casefold():
                        found.add(str(row.get("entity_id", "")))
                if older or not page.has_more or page.page >= FAILED_ACTION_PAGES:
                    break
        except ZohoApiError as exc:
            values["options"] = {**watch.options, "failed_actions": False}
            log.warning("Books failed workflow actions unavailable; not asked again",
                        watch=watch.id, error=exc.message)  # fmt: skip
        return frozenset(found - {""})

    async def _sweep(
        self, watch: WatchInfo, connection: Connection, entity: BooksEntity, meter: CallMeter,
        now: datetime, values: dict[str, Any],
    ) -> Swept | None:  # fmt: skip
        """The opt-in deletion sweep (option `sweep`, e #9), when due: list every id and
        judge deleted only ids two complete sweeps in a row missed."""
        if not watch.options.get("sweep"):
            return None
        if watch.swept_at is not None and now - watch.swept_at < self.policy.sweep_interval:
            return None
        listing = await list_books(
            self.zoho, connection, entity, ListingStrategy.SCAN, EPOCH, meter, now
        )
        before = await sweeps.load(self.engine, watch.id)
        result = sweep(
            before, listing.versions, {i: m for i, (_, m) in before.items() if m},
            complete=listing.completed,
        )  # fmt: skip
        values["swept_at"] = now
        if result.held is not None:
            log.warning("Books deletion sweep held", watch=watch.id, reason=result.held)
        known: sweeps.Known = {
            record_id: (
                listing.versions[record_id].modified_at if record_id in listing.versions
                else before.get(record_id, (None, 0))[0],
                result.misses.get(record_id, 0),
            )
            for record_id in result.known
        }  # fmt: skip
        since = watch.swept_at or watch.start_at
        versions = [
            Version(record_id, modified, None, deleted=True)
            for record_id in sorted(result.deleted)
            if (modified := before.get(record_id, (None, 0))[0]) is not None
        ]
        happened = {v.record_id: Interval(since, now) for v in versions}
        return Swept(versions, known, happened)

    async def _review(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter,
        strategy: ListingStrategy, listing: Listing, context: WatchContext,
        policy: CursorPolicy, values: dict[str, Any],
    ) -> str | None:  # fmt: skip
        """Did the strategy misbehave (old rows under `filter`, disorder under `sorted`, an
        announced version missing)? Then switch to a safer one, say why, and keep the
        cursor (this run may have missed rows: the next one reads the span again)."""
        assert listing.started_at is not None
        announced = await webhook_versions(
            self.engine, sources=context.sources, module=watch.module,
            since=listing.since, until=listing.started_at - policy.settle,
        )  # fmt: skip
        expected = [Version(record_id, at) for record_id, at in announced]
        lost = unlisted(listing.all_versions, expected)
        if lost:
            # review_run wants only records neither deleted nor changed since the run
            # started: a deleted record is rightly absent from every listing, and it
            # used to push a healthy watch all the way down to `scan`.
            gone = await self._explained(watch, connection, context, lost, listing, meter)
            expected = [e for e in expected if e.record_id not in gone]
        verdict = review_run(strategy, listing.since, listing.all_versions, expected)
        if verdict is None:
            return None
        reason = f"switched from {verdict.previous.value}: {verdict.reason}"
        values.update(strategy=verdict.next.value, strategy_reason=reason)
        log.warning("Books listing strategy misbehaved; switching to a safer one",
                    watch=watch.id, entity=watch.module, previous=verdict.previous.value,
                    next=verdict.next.value, reason=verdict.reason)  # fmt: skip
        return verdict.reason

    async def _explained(
        self, watch: WatchInfo, connection: Connection, context: WatchContext,
        lost: list[Version], listing: Listing, meter: CallMeter,
    ) -> set[str]:  # fmt: skip
        """The records of `lost` (announced, yet not listed) whose absence is no fault of
        the strategy: a stored deletion, or, asked one by one (at most REVIEW_CHECKS, so a
        mass of them costs little; the rest count as faults), gone at Zoho (B7: no deleted
        API, a dropped delete webhook leaves only this) or changed since the run started."""
        ids = sorted({v.record_id for v in lost})
        known = await known_events(
            self.engine, product=watch.product, module=watch.module, sources=context.sources,
            record_ids=ids,
        )  # fmt: skip
        gone = {i for i in ids if any(k.operation is Operation.DELETED for k in known.get(i, ()))}
        assert listing.started_at is not None
        entity = by_key(watch.module)
        for record_id in [i for i in ids if i not in gone][:REVIEW_CHECKS]:
            found = await self.zoho.books_get(connection, entity.path, record_id, meter=meter)
            now = books_version(entity, found) if found is not None else None
            if found is None or (now is not None and now.modified_at >= listing.started_at):
                gone.add(record_id)
        return gone


async def fill_data(
    zoho: ZohoClient, watch: WatchInfo, connection: Connection, decided: Plan,
    listing: Listing, deletions: Listing | None, meter: CallMeter,
) -> None:  # fmt: skip
    """Fetch the records of the unannounced versions only (e #5): CRM `?ids=` by 100,
    Books one `GET` each; a record Zoho no longer returns keeps its listed row."""
    wanted = [m for m in decided.misses if not m.version.deleted]
    full = watch.options.get("full_records", True)
    records: dict[str, dict[str, Any]] = {}
    if wanted and full and watch.product is Product.CRM:
        fetched = await zoho.crm_get_records(
            connection, watch.module, [m.version.record_id for m in wanted], meter=meter
        )
        records = {str(r.get("id")): r for r in fetched}
    elif wanted and full:
        entity = by_key(watch.module)
        for miss in wanted:
            found = await zoho.books_get(connection, entity.path, miss.version.record_id,
                                         meter=meter)  # fmt: skip
            if found is not None:
                records[miss.version.record_id] = found
    for miss in decided.misses:
        record_id = miss.version.record_id
        if miss.version.deleted:
            rows = deletions.rows if deletions is not None else {}
            miss.event.data = dict(rows.get(record_id) or {"id": record_id})
        else:
            miss.event.data = dict(records.get(record_id) or listing.rows.get(record_id) or {})


@dataclass(frozen=True, slots=True)
class Swept:
    """What a Books deletion sweep found: the deleted versions (at each record's last known
    modified time), the ids known afterwards, and when each deletion happened at latest."""

    versions: list[Version]
    known: dict[str, tuple[datetime | None, int]]
    happened: dict[str, Interval]


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
