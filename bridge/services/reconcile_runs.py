"""On-demand reconciliation: run watches now, or backfill a span of time.

Without `since`, a run runs each matching watch now from its cursor. With `since` (and
optionally `until`), it is a backfill: every version modified in the span is matched and
the unannounced ones emitted, without touching the watches' cursors; `dry_run` reports what
it would emit. A run is a row in `reconcile_runs`, leased by one replica; one whose replica
died resumes after its lease expires, skipping the watches it had finished (the one in
progress is listed again: its events are deduplicated by their version keys).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.books_entities import by_key
from bridge.domain.events import Product
from bridge.domain.ids import new_ulid
from bridge.domain.reconcile_books_strategy import ListingStrategy
from bridge.domain.reconcile_match import MatchPolicy
from bridge.domain.states import RunState, WatchStatus
from bridge.errors import BridgeError, InvalidInput
from bridge.services import connections
from bridge.services.reconcile_context import books_context, crm_context
from bridge.services.reconcile_fetch import fill_data
from bridge.services.reconcile_plan import plan
from bridge.services.reconcile_poll import list_books, list_crm, list_crm_deleted, probe_books
from bridge.services.reconciler import Reconciler, day_of, extra_sources
from bridge.services.views import iso
from bridge.services.watches import module_names
from bridge.store import reconcile_runs as store
from bridge.store import watches as watch_store
from bridge.store.reconcile_runs import RunInfo
from bridge.store.reconcile_writes import commit_run
from bridge.store.watches import WatchInfo
from bridge.zoho.errors import BudgetExhausted
from bridge.zoho.meter import CallMeter

log = structlog.get_logger(__name__)

# A backfill waits for the budget this long at most between attempts, then tries again.
BUDGET_WAIT_CAP = 60.0
MIN_YEAR = 2000  # before Zoho; and far enough from datetime.min to convert to UTC
Progress = Callable[[dict[str, Any]], None]


def _no_progress(counts: dict[str, Any]) -> None:
    """Runs started over HTTP report progress through `GET .../runs/{id}` only."""


@dataclass
class RunService:
    """Queue, execute and show reconciliation runs."""

    engine: AsyncEngine
    reconciler: Reconciler
    clock: Callable[[], datetime]
    lease: timedelta = timedelta(minutes=5)

    async def queue(
        self,
        *,
        connection: str | None = None,
        module: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        dry_run: bool = False,
    ) -> RunInfo:
        """Check the scope and queue a run; a replica's scheduler (or the caller, with
        `execute`) runs it."""
        if until is not None and since is None:
            raise InvalidInput("--until needs --since: a backfill is a span of time")
        now = self.clock()
        for label, moment in (("since", since), ("until", until)):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput(f"{label} must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
            if moment is not None and not _in_range(moment):
                raise InvalidInput(f"{label} must be a time between the years {MIN_YEAR} and 9999")
        if since is not None and since >= now:
            raise InvalidInput("since must be in the past")
        if since is not None and until is not None and until <= since:
            raise InvalidInput("until must be after since")
        if dry_run and since is None:
            raise InvalidInput("a dry run is a backfill: give --since")
        if connection is not None:
            await connections.load(self.engine, connection)  # unknown: NotFound, said plainly
        watches = await self._scope(connection, module)
        if not watches:
            raise InvalidInput(
                "no active watch matches; add one with `zoho-bridge reconcile watch add`"
            )
        return await store.create(
            self.engine,
            {
                "id": new_ulid(now), "connection": connection, "module": module,
                "since": _second(since), "until": _second(until), "dry_run": dry_run,
                "state": RunState.QUEUED, "counts": {"watches": len(watches)},
                "position": {}, "created_at": now,
            },
        )  # fmt: skip

    async def _scope(self, connection: str | None, module: str | None) -> list[WatchInfo]:
        found = await watch_store.list_all(self.engine, connection=connection)
        if module is not None:
            names = module_names(module)
            found = [w for w in found if w.module in names]
        return [w for w in found if w.status is WatchStatus.ACTIVE]

    async def get(self, run_id: str) -> RunInfo:
        return await store.get(self.engine, run_id)

    async def recent(self) -> list[RunInfo]:
        return await store.list_recent(self.engine)

    async def execute_waiting(self) -> int:
        """Run every queued run (and resume any whose replica died); how many ran."""
        done = 0
        for run_id in await store.claimable(self.engine, self.clock()):
            if await self.execute(run_id) is not None:
                done += 1
        return done

    async def execute(self, run_id: str, progress: Progress = _no_progress) -> RunInfo | None:
        """Run `run_id` here if this replica wins its lease; None if another one has it."""
        owner = self.reconciler.owner
        now = self.clock()
        if not await store.claim(self.engine, run_id, owner, now, now + self.lease):
            return None
        run = await store.get(self.engine, run_id)
        counts: dict[str, Any] = {**run.counts, "started": time.monotonic()}
        done: list[int] = list(run.position.get("done", []))
        try:
            for watch in await self._scope(run.connection, run.module):
                if watch.id in done:
                    continue
                await self._one(run, watch, counts, progress)
                done.append(watch.id)
                counts["done"] = len(done)
                progress(_public(counts))
                await store.progress(
                    self.engine, run.id, owner, until=self.clock() + self.lease,
                    counts=_public(counts), position={"done": done},
                )  # fmt: skip
        except BridgeError as exc:
            await store.finish(
                self.engine, run.id, owner, state=RunState.FAILED, error=exc.message,
                counts=_public(counts), finished_at=self.clock(),
            )  # fmt: skip
            log.warning("reconciliation run failed", run=run.id, error=exc.message)
            return await store.get(self.engine, run.id)
        except Exception as exc:
            # A bug, not a Zoho or input problem: failed for all to see, not retried forever.
            await store.finish(
                self.engine, run.id, owner, state=RunState.FAILED, counts=_public(counts),
                error=f"internal error ({type(exc).__name__}); see the bridge's log",
                finished_at=self.clock(),
            )  # fmt: skip
            raise
        except BaseException:
            # Interrupted (shutdown, Ctrl-C): queued again without a lease, so the next
            # replica to look resumes it, skipping the watches already done.
            counts.pop("waiting", None)
            await store.finish(
                self.engine, run.id, owner, state=RunState.QUEUED, counts=_public(counts)
            )
            raise
        await store.finish(
            self.engine, run.id, owner, state=RunState.DONE, counts=_public(counts),
            finished_at=self.clock(),
        )  # fmt: skip
        return await store.get(self.engine, run.id)

    async def _one(
        self, run: RunInfo, watch: WatchInfo, counts: dict[str, Any], progress: Progress
    ) -> None:
        """One watch of a run; waits for the budget when it is spent (a backfill is slow,
        never a burst beyond the shares)."""
        while True:
            try:
                if run.since is None:
                    report = await self.reconciler.run_watch(watch.id, due=False)
                    if report.outcome == "deferred":
                        raise BudgetExhausted(report.error or "budget spent", retry_after=60.0)
                    _add(counts, "versions", report.versions)
                    _add(counts, "calls", report.calls)
                    _add(counts, "credits", report.credits)
                    for cause, n in report.emitted.items():
                        _add(counts, cause, n)
                        _add(counts, "emitted", n)
                    return
                await self._backfill(run, watch, counts)
                return
            except BudgetExhausted as exc:
                wait = min(max(exc.retry_after or 5.0, 1.0), BUDGET_WAIT_CAP)
                counts["waiting"] = f"budget spent: waiting {wait:.0f} s ({exc.message})"
                progress(_public(counts))
                await store.progress(
                    self.engine, run.id, self.reconciler.owner,
                    until=self.clock() + self.lease + timedelta(seconds=wait),
                    counts=_public(counts),
                )  # fmt: skip
                await asyncio.sleep(wait)
                counts.pop("waiting", None)

    async def _backfill(self, run: RunInfo, watch: WatchInfo, counts: dict[str, Any]) -> None:
        assert run.since is not None
        reconciler = self.reconciler
        engine, zoho = self.engine, reconciler.zoho
        info = await connections.load(engine, watch.connection)
        connection = connections.to_zoho(info, reconciler.box)
        meter = CallMeter()
        now = self.clock()
        since = run.since
        deletions = None
        if watch.product is Product.CRM:
            listing = await list_crm(
                zoho, connection, watch.module, since, meter, now, coql=reconciler.policy.coql,
                until=run.until,
            )  # fmt: skip
            deletions = await list_crm_deleted(zoho, connection, watch.module, since, meter, now)
            context = await crm_context(engine, watch, since=since,
                                        extra_sources=extra_sources(watch))  # fmt: skip
        else:
            entity = by_key(watch.module)
            strategy = (
                ListingStrategy(watch.strategy)
                if watch.strategy
                else (await probe_books(zoho, connection, entity, meter, now)).strategy
            )
            listing = await list_books(zoho, connection, entity, strategy, since, meter, now)
            context = await books_context(engine, watch, since=since,
                                          extra_sources=extra_sources(watch))  # fmt: skip
        for found in (listing, deletions):
            if found is not None and run.until is not None:
                found.versions = {
                    k: v for k, v in found.versions.items() if v.modified_at <= run.until
                }
        assert listing.started_at is not None
        grace = MatchPolicy(grace=reconciler.policy.grace)
        versions = list(listing.versions.values())
        if deletions is not None:
            versions += list(deletions.versions.values())
        decided = await plan(
            engine, watch, context, versions, zoho_now=listing.started_at, read_from=since,
            now=self.clock(), grace=grace,
        )  # fmt: skip
        _add(counts, "versions", len(versions))
        _add(counts, "pending", len(decided.pending))
        if run.dry_run:
            _add(counts, "calls", meter.calls)
            _add(counts, "credits", meter.crm_credits)
            for cause, n in decided.causes().items():
                _add(counts, f"would_emit_{cause}", n)
                _add(counts, "would_emit", n)
            return
        await fill_data(zoho, watch, connection, decided, listing, deletions, meter)
        _add(counts, "calls", meter.calls)
        _add(counts, "credits", meter.crm_credits)
        new = await commit_run(
            engine, events=[m.event for m in decided.misses], push_sinks=reconciler.push_sinks,
            watch_id=watch.id, owner=None, watch_values={}, day=day_of(self.clock()),
            counts={"calls": meter.calls, "credits": meter.crm_credits},
        )  # fmt: skip
        if new:
            for hook in reconciler.committed:
                hook(new)
        for event in new:
            if event.miss_cause:
                _add(counts, event.miss_cause, 1)
        _add(counts, "emitted", len(new))

    async def views(
        self, *, connection: str | None = None, module: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """The recent runs, newest first; with a filter, those whose scope covers it (a run
        over every connection covers each one)."""
        names = module_names(module) if module is not None else None
        found = [
            r for r in await self.recent()
            if (connection is None or r.connection in (None, connection))
            and (names is None or r.module is None or r.module in names)
        ]  # fmt: skip
        return [self.view(r) for r in found[:limit]]

    def view(self, run: RunInfo) -> dict[str, Any]:
        return {
            "id": run.id,
            "state": run.state,
            "connection": run.connection,
            "module": run.module,
            "since": iso(run.since),
            "until": iso(run.until),
            "dry_run": run.dry_run,
            "counts": run.counts,
            "error": run.error,
            "created_at": iso(run.created_at),
            "started_at": iso(run.started_at),
            "finished_at": iso(run.finished_at),
        }


def _add(counts: dict[str, Any], name: str, n: int) -> None:
    counts[name] = int(counts.get(name, 0)) + n


def _public(counts: dict[str, Any]) -> dict[str, Any]:
    """The counts without this process's own bookkeeping (a monotonic start time)."""
    return {k: v for k, v in counts.items() if k != "started"}


def _in_range(moment: datetime) -> bool:
    try:
        return moment.astimezone(UTC).year >= MIN_YEAR
    except OverflowError:
        return False


def _second(moment: datetime | None) -> datetime | None:
    return moment.astimezone(UTC).replace(microsecond=0) if moment is not None else None
