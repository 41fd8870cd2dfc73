"""The Books side of a reconciliation run: the listing strategy (probed, re-probed while
unverified, reviewed each run), the failed workflow actions, and the opt-in deletion sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.books_entities import BooksEntity, by_key
from bridge.domain.events import Operation
from bridge.domain.reconcile_books_strategy import ListingStrategy, review_run, unlisted
from bridge.domain.reconcile_books_sweep import sweep
from bridge.domain.reconcile_causes import Interval
from bridge.domain.reconcile_cursor import CursorPolicy, Version
from bridge.services.reconcile_context import WatchContext
from bridge.services.reconcile_poll import Listing, books_version, list_books, probe_books
from bridge.store import sweeps
from bridge.store.reconcile_writes import known_events, webhook_versions
from bridge.store.watches import WatchInfo
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection
from bridge.zoho.errors import ZohoApiError
from bridge.zoho.meter import CallMeter
from bridge.zoho.times import parse_zoho_time

log = structlog.get_logger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FAILED_ACTION_PAGES = 5  # newest first: older pages are older failures
REVIEW_CHECKS = 20  # records a strategy review asks Books about, at most, per run
# The failed workflow actions are the org's, for every entity: asked once per connection
# in this long, and only by a run that has misses to attribute (most runs have none).
FAILED_ACTIONS_FRESH = timedelta(minutes=5)
# A strategy the probe could not verify (too few rows, e.g. an empty entity) is probed
# again this often, so an entity watched while empty does not stay on `scan` for good.
REPROBE_EVERY = timedelta(hours=6)
UNVERIFIED = "unverified"


@dataclass(frozen=True, slots=True)
class Swept:
    """What a Books deletion sweep found: the deleted versions (at each record's last known
    modified time), the ids known afterwards, and when each deletion happened at latest."""

    versions: list[Version]
    known: dict[str, tuple[datetime | None, int]]
    happened: dict[str, Interval]


@dataclass
class BooksSide:
    """What a run of a Books watch does besides listing and matching."""

    engine: AsyncEngine
    zoho: ZohoClient
    clock: Callable[[], datetime]
    sweep_interval: timedelta = timedelta(hours=24)
    _failed: dict[str, tuple[datetime, list[dict[str, Any]]]] = field(default_factory=dict)

    async def strategy(
        self, watch: WatchInfo, connection: Connection, entity: BooksEntity, meter: CallMeter,
        values: dict[str, Any],
    ) -> ListingStrategy:  # fmt: skip
        """The watch's listing strategy: probed on the first run (e #10), and again every
        REPROBE_EVERY while the probe could not verify one."""
        if watch.strategy is not None and not self._reprobe_due(watch):
            return ListingStrategy(watch.strategy)
        choice = await probe_books(self.zoho, connection, entity, meter, self.clock())
        unverified = choice.strategy is ListingStrategy.SCAN and "not verified" in choice.reason
        values.update(
            strategy=choice.strategy.value,
            strategy_reason=f"probe: {choice.reason}",
            options={**watch.options, "probed_at": self.clock().isoformat(),
                     UNVERIFIED: unverified},
        )  # fmt: skip
        log.info("Books listing strategy chosen", watch=watch.id, entity=entity.key,
                 strategy=choice.strategy.value, reason=choice.reason)  # fmt: skip
        return choice.strategy

    def _reprobe_due(self, watch: WatchInfo) -> bool:
        if not watch.options.get(UNVERIFIED) or watch.strategy != ListingStrategy.SCAN:
            return False
        probed = watch.options.get("probed_at")
        try:
            at = datetime.fromisoformat(str(probed))
        except ValueError:
            return True
        return self.clock() - at >= REPROBE_EVERY

    async def failed_ids(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter, since: datetime,
        values: dict[str, Any],
    ) -> frozenset[str]:  # fmt: skip
        """Records of this entity whose webhook Books lists as failed since `since` (B10):
        their misses get the cause `delivery_failed`. The endpoint's path is UNCERTAIN: if
        Books refuses it, the watch stops asking (option `failed_actions`) and says why."""
        if not watch.options.get("failed_actions", True):
            return frozenset()
        rows = await self._failed_rows(watch, connection, meter, values)
        found = set()
        for row in rows:
            at = parse_zoho_time(row.get("execution_time"))
            if (at is None or at >= since) and str(row.get("entity", "")).casefold() == (
                watch.module.casefold()
            ):
                found.add(str(row.get("entity_id", "")))
        return frozenset(found - {""})

    async def _failed_rows(
        self, watch: WatchInfo, connection: Connection, meter: CallMeter,
        values: dict[str, Any],
    ) -> list[dict[str, Any]]:  # fmt: skip
        now = self.clock()
        cached = self._failed.get(connection.name)
        if cached is not None and now - cached[0] < FAILED_ACTIONS_FRESH:
            return cached[1]
        rows: list[dict[str, Any]] = []
        try:
            async for page in self.zoho.books_failed_actions(connection, meter=meter):
                rows.extend(page.rows)
                if not page.has_more or page.page >= FAILED_ACTION_PAGES:
                    break
        except ZohoApiError as exc:
            values["options"] = {**watch.options, **values.get("options", {}),
                                 "failed_actions": False}  # fmt: skip
            log.warning("Books failed workflow actions unavailable; not asked again",
                        watch=watch.id, error=exc.message)  # fmt: skip
            return []
        self._failed[connection.name] = (now, rows)
        return rows

    async def sweep(
        self, watch: WatchInfo, connection: Connection, entity: BooksEntity, meter: CallMeter,
        now: datetime, values: dict[str, Any],
    ) -> Swept | None:  # fmt: skip
        """The opt-in deletion sweep (option `sweep`, e #9), when due: list every id and
        judge deleted only ids two complete sweeps in a row missed."""
        if not watch.options.get("sweep"):
            return None
        if watch.swept_at is not None and now - watch.swept_at < self.sweep_interval:
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

    async def review(
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
