"""Listing a watch's versions from Zoho: CRM newest first (COQL keyset for big catch-ups),
CRM deletions, and Books by its listing strategy, with the strategy probe.

Each function returns what it saw plus Zoho's `Date` from its first answer (the clock the
cursor advances by) and whether it read everything down to its lower bound: only a
complete listing may move a cursor (reconciliation.md a.2 #4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from bridge.domain.books_entities import BooksEntity
from bridge.domain.reconcile_books_strategy import (
    FilterProbe,
    ListingStrategy,
    StrategyChoice,
    choose_strategy,
    dedupe_rows,
    filter_parameter,
)
from bridge.domain.reconcile_cursor import Version, walk_done
from bridge.zoho.books import BooksStrategy
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection
from bridge.zoho.coql import CoqlKey
from bridge.zoho.errors import ZohoApiError
from bridge.zoho.meter import CallMeter
from bridge.zoho.times import parse_zoho_time

log = structlog.get_logger(__name__)

# A newest-first CRM walk longer than this many pages (2,000 records) finishes through
# COQL keyset pages when BRIDGE_RECONCILE_COQL is on: 3 credits per 2,000 ids instead of 10
# (reconciliation.md e #4, d).
COQL_AFTER_PAGES = 10


@dataclass
class Listing:
    """What one listing saw: the newest version of each record at or after `since`, their
    rows, Zoho's `Date` at the start, and whether it read down to `since`."""

    since: datetime
    versions: dict[str, Version] = field(default_factory=dict)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    all_versions: list[Version] = field(default_factory=list)  # as listed, duplicates kept
    # A CRM list walk's pages: each one's Zoho `Date` and its first row's modified time.
    walk_pages: list[tuple[datetime, datetime]] = field(default_factory=list)
    started_at: datetime | None = None
    completed: bool = False
    pages: int = 0
    used_coql: bool = False

    def add(self, version: Version, row: dict[str, Any]) -> None:
        self.all_versions.append(version)
        if version.modified_at < self.since:
            return
        known = self.versions.get(version.record_id)
        if known is None or version.modified_at > known.modified_at:
            self.versions[version.record_id] = version
            self.rows[version.record_id] = row

    def clock(self, server_time: datetime | None, fallback: datetime) -> None:
        if self.started_at is None:
            # Zoho's Date: whole seconds. Without one (never seen from Zoho), ours.
            self.started_at = (server_time or fallback).astimezone(UTC).replace(microsecond=0)


def _strategy(strategy: ListingStrategy) -> BooksStrategy:
    names: dict[ListingStrategy, BooksStrategy] = {
        ListingStrategy.FILTER: "filter",
        ListingStrategy.SORTED: "sorted",
        ListingStrategy.SCAN: "scan",
    }
    return names[strategy]


def _second(value: Any) -> datetime | None:
    parsed = parse_zoho_time(value)
    return parsed.astimezone(UTC).replace(microsecond=0) if parsed is not None else None


def crm_version(row: dict[str, Any]) -> Version | None:
    """A CRM list or COQL row as a version; None if it has no id or no readable time."""
    record_id = str(row.get("id") or "")
    modified = _second(row.get("Modified_Time"))
    if not record_id or modified is None:
        return None
    return Version(record_id, modified, _second(row.get("Created_Time")))


def crm_deleted_version(row: dict[str, Any]) -> Version | None:
    record_id = str(row.get("id") or "")
    deleted = _second(row.get("deleted_time"))
    if not record_id or deleted is None:
        return None
    return Version(record_id, deleted, None, deleted=True)


def books_version(entity: BooksEntity, row: dict[str, Any]) -> Version | None:
    record_id = str(row.get(entity.id_field) or "")
    modified = _second(row.get("last_modified_time"))
    if not record_id or modified is None:
        return None
    return Version(record_id, modified, _second(row.get("created_time")))


async def list_crm(
    zoho: ZohoClient,
    connection: Connection,
    module: str,
    since: datetime,
    meter: CallMeter,
    now: datetime,
    *,
    coql: bool,
    until: datetime | None = None,
) -> Listing:
    """Versions modified at or after `since` (and at or before `until`, if given): a
    newest-first walk with `If-Modified-Since` one second below `since` (Zoho's inclusive
    or exclusive reading is UNCERTAIN, C3: one second lower is right under both), stopping
    at the checkpoint; past COQL_AFTER_PAGES, the rest through COQL keyset pages."""
    listing = Listing(since)
    lowest: datetime | None = None
    async for page in zoho.crm_versions(
        connection, module, since=since - timedelta(seconds=1), meter=meter
    ):
        listing.clock(page.server_time, now)
        listing.pages += 1
        versions = []
        for row in page.rows:
            version = crm_version(row)
            if version is None:
                log.warning("CRM row without id or Modified_Time", module=module)
                continue
            if until is None or version.modified_at <= until:
                listing.add(version, row)
            versions.append(version)
            lowest = version.modified_at if lowest is None else min(lowest, version.modified_at)
        if versions:
            served = (page.server_time or now).astimezone(UTC).replace(microsecond=0)
            listing.walk_pages.append((served, versions[0].modified_at))
        if not page.more_records or walk_done(versions, since):
            listing.completed = True
            return listing
        if coql and listing.pages >= COQL_AFTER_PAGES and lowest is not None:
            await _coql_rest(zoho, connection, module, listing, since, lowest, meter)
            listing.completed = True
            return listing
    listing.completed = True
    return listing


async def _coql_rest(
    zoho: ZohoClient,
    connection: Connection,
    module: str,
    listing: Listing,
    since: datetime,
    until: datetime,
    meter: CallMeter,
) -> None:
    """Oldest first from `since` up to `until` (inclusive: the walk's lowest second may
    have more rows than it read), by keyset: never OFFSET, never the 100k cap."""
    listing.used_coql = True
    after: CoqlKey | None = None
    while True:
        page = await zoho.crm_coql_versions(
            connection, module, since=since if after is None else None, after=after,
            until=until, meter=meter,
        )  # fmt: skip
        for row in page.rows:
            version = crm_version(row)
            if version is not None:
                listing.add(version, row)
        keys = [k for k in (CoqlKey.of(row) for row in page.rows) if k is not None]
        if not page.more_records or not keys:
            return
        after = keys[-1]


async def list_crm_deleted(
    zoho: ZohoClient,
    connection: Connection,
    module: str,
    since: datetime,
    meter: CallMeter,
    now: datetime,
) -> Listing:
    """Deletions at or after `since` from `/{module}/deleted?type=all` (C6); a record
    merely leaving a list (a converted lead, C8) is never taken for a deletion."""
    listing = Listing(since)
    async for page in zoho.crm_deleted_pages(
        connection, module, since - timedelta(seconds=1), meter=meter
    ):
        listing.clock(page.server_time, now)
        listing.pages += 1
        for row in page.rows:
            version = crm_deleted_version(row)
            if version is not None:
                listing.add(version, row)
    listing.completed = True
    return listing


async def list_books(
    zoho: ZohoClient,
    connection: Connection,
    entity: BooksEntity,
    strategy: ListingStrategy,
    since: datetime,
    meter: CallMeter,
    now: datetime,
) -> Listing:
    """Versions at or after `since`, listed the `strategy` way; duplicate rows (B6) keep
    the newest time. `all_versions` keeps what came back, for reviewing the strategy."""
    listing = Listing(since)
    bound = filter_parameter(since) if strategy is ListingStrategy.FILTER else None
    async for page in zoho.books_pages(
        connection, entity.path, _strategy(strategy), since=bound, meter=meter
    ):
        listing.clock(page.server_time, now)
        listing.pages += 1
        versions = []
        for row in page.rows:
            version = books_version(entity, row)
            if version is None:
                log.warning("Books row without id or last_modified_time", entity=entity.key)
                continue
            listing.add(version, row)
            versions.append(version)
        if not page.has_more:
            break
        if strategy is ListingStrategy.SORTED and walk_done(versions, since):
            break
    listing.completed = True
    return listing


async def probe_books(
    zoho: ZohoClient,
    connection: Connection,
    entity: BooksEntity,
    meter: CallMeter,
    now: datetime,
) -> StrategyChoice:
    """Which strategy lists this entity safely (e #10): the newest rows sorted by
    `last_modified_time` (or in Books' default order, if sorting is refused), then the
    same entity filtered at a time between the rows seen, to learn what the filter does.

    One page of each is not always enough: a burst of more than a page in one second
    leaves a single time on the sorted page (sorting unverified, no bound with rows on both
    sides), and the filtered rows come in creation order, so the later rows looked for may
    sit on a later page. Both listings are read further, up to PROBE_PAGES pages each, only
    until they show what is needed; without this a 450-record burst sent the watch to
    `scan`, a full listing every run, on an entity that filters and sorts correctly."""
    sorted_rows = await _probe_rows(
        zoho, connection, entity, ListingStrategy.SORTED, None, meter, _three_times
    )
    known = sorted_rows
    if known is None:
        known = await _probe_rows(
            zoho, connection, entity, ListingStrategy.SCAN, None, meter, _three_times
        )
    known = known or []
    times = sorted({v.modified_at for v in known})
    # A bound with rows on both sides tells "at or after" from "equal" from "ignored".
    bound = (
        times[len(times) // 2]
        if len(times) >= 3
        else now.astimezone(UTC).replace(microsecond=0) - timedelta(days=1)
    )
    later = {v.record_id for v in known if v.modified_at > bound}

    def shown(rows: list[Version]) -> bool:
        # Every later row came back, or one older than the bound did ("ignored").
        return later <= {v.record_id for v in rows} or any(v.modified_at < bound for v in rows)

    returned = await _probe_rows(
        zoho, connection, entity, ListingStrategy.FILTER, bound + timedelta(seconds=1), meter,
        shown,
    )  # fmt: skip
    probe = FilterProbe(bound, tuple(dedupe_rows(known)), None if returned is None
                        else tuple(returned))  # fmt: skip
    return choose_strategy(probe, sorted_rows)


PROBE_PAGES = 5


def _three_times(rows: list[Version]) -> bool:
    return len({v.modified_at for v in rows}) >= 3


async def _probe_rows(
    zoho: ZohoClient,
    connection: Connection,
    entity: BooksEntity,
    strategy: ListingStrategy,
    since: datetime | None,
    meter: CallMeter,
    enough: Callable[[list[Version]], bool],
) -> list[Version] | None:
    """The versions of the pages listed this way, page after page until `enough` of them
    (or PROBE_PAGES, or the last page); None if Books refused the query. (`since` is the
    bound + 1 s, as `filter_parameter` takes one second off.)"""
    rows: list[Version] = []
    try:
        async for page in zoho.books_pages(
            connection, entity.path, _strategy(strategy),
            since=filter_parameter(since) if since is not None else None, meter=meter,
        ):  # fmt: skip
            rows += [v for v in (books_version(entity, r) for r in page.rows) if v is not None]
            if enough(rows) or page.page >= PROBE_PAGES:
                break
    except ZohoApiError as exc:
        if exc.status == 400:
            return None
        raise
    return rows
