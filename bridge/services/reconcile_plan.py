"""From listed versions to reconciled events: match each version against the stored events
of its record, keep the ones nobody announced once their grace period is over, give each
an operation and a cause, and build its event (reconciliation.md e.5-e.7, e.14).
Pure apart from the one read of the records' stored events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.events import Event, Origin
from bridge.domain.ids import new_ulid
from bridge.domain.reconcile_causes import (
    Interval,
    MissCause,
    announcing_operation,
    attribute_cause,
)
from bridge.domain.reconcile_cursor import Version
from bridge.domain.reconcile_key import version_key
from bridge.domain.reconcile_match import (
    Announcement,
    KnownEvent,
    MatchPolicy,
    match_version,
)
from bridge.domain.reconcile_synthetic import synthesize
from bridge.services.reconcile_context import WatchContext
from bridge.services.reconcile_poll import Listing
from bridge.store.reconcile_writes import known_events
from bridge.store.watches import WatchInfo


@dataclass(frozen=True, slots=True)
class Miss:
    """One version no webhook announced, with what its event will say."""

    version: Version
    event: Event
    cause: MissCause

    def failed(self) -> Miss:
        """This miss, with Books' own word that its webhook failed (B10): that cause
        comes first (reconcile_causes)."""
        self.event.miss_cause = MissCause.DELIVERY_FAILED.value
        return Miss(self.version, self.event, MissCause.DELIVERY_FAILED)


@dataclass
class Plan:
    """What matching decided for one listing."""

    misses: list[Miss] = field(default_factory=list)
    pending: list[Version] = field(default_factory=list)
    announced: int = 0
    already_emitted: int = 0

    def causes(self) -> Counter[str]:
        return Counter(m.cause.value for m in self.misses)


async def plan(
    engine: AsyncEngine,
    watch: WatchInfo,
    context: WatchContext,
    versions: Iterable[Version],
    *,
    zoho_now: datetime,
    read_from: datetime,
    now: datetime,
    grace: MatchPolicy,
    failed_ids: frozenset[str] = frozenset(),
    happened: dict[str, Interval] | None = None,
) -> Plan:
    """Match `versions` (at most one per record and kind) against the record's stored
    events. An unannounced version gets an event with an empty `data` (filled in by the
    caller from Zoho); `happened` gives a deletion found by the Books sweep its span."""
    listed = list(versions)
    known = await known_events(
        engine, product=watch.product, module=watch.module, sources=context.sources,
        record_ids=[v.record_id for v in listed],
    )  # fmt: skip
    result = Plan()
    for version in listed:
        events = [
            KnownEvent(k.operation, k.occurred_at, k.origin)
            for k in known.get(version.record_id, ())
        ]
        decision = match_version(watch.product, version, events, zoho_now=zoho_now, policy=grace)
        if decision is Announcement.ANNOUNCED:
            result.announced += 1
        elif decision is Announcement.ALREADY_EMITTED:
            result.already_emitted += 1
        elif decision is Announcement.PENDING:
            result.pending.append(version)
        else:
            synthetic = synthesize(
                watch.product, version, events, read_from=read_from,
                previous_run_at=watch.last_zoho_date,
            )  # fmt: skip
            cause = attribute_cause(
                version, announcing_operation(version, synthetic.operation), context.causes,
                delivery_failed=version.record_id in failed_ids,
                happened=(happened or {}).get(version.record_id),
            )  # fmt: skip
            event = _event(watch, context, version, synthetic.operation, now)
            event.miss_cause = cause.value
            event.collapsed = synthetic.collapsed
            result.misses.append(Miss(version, event, cause))
    return result


def _event(
    watch: WatchInfo, context: WatchContext, version: Version, operation: Any, now: datetime
) -> Event:
    key = version_key(
        watch.connection, watch.product, watch.module, version.record_id, version.modified_at,
        deleted=version.deleted,
    )  # fmt: skip
    return Event(
        product=watch.product,
        source=context.emit_source,
        module=watch.module,
        operation=operation,
        record_id=version.record_id,
        occurred_at=version.modified_at,
        origin=Origin.RECONCILIATION,
        dedup_key=key,
        id=new_ulid(now),
        received_at=now,
    )


@dataclass(frozen=True, slots=True)
class Carried:
    """The versions a watch carried from its last run that this run did not list again:
    they are matched again (their grace may be over now)."""

    updates: list[Version]
    deletions: list[Version]


def pending_row(version: Version) -> dict[str, Any]:
    return {
        "id": version.record_id,
        "t": version.modified_at.isoformat(),
        "c": version.created_at.isoformat() if version.created_at else None,
        "d": version.deleted,
    }


def carry_over(
    pending: Sequence[dict[str, Any]], listing: Listing, deletions: Listing | None
) -> Carried:
    """The carried versions still worth matching: not listed again (a newer version of the
    record supersedes it; the same one is matched from the listing), and not deleted since
    (a deletion supersedes an update)."""
    updates, deleted = [], []
    gone = deletions.versions if deletions is not None else {}
    for row in pending:
        try:
            version = Version(
                str(row["id"]), datetime.fromisoformat(str(row["t"])),
                datetime.fromisoformat(str(row["c"])) if row.get("c") else None,
                deleted=bool(row.get("d")),
            )  # fmt: skip
        except (KeyError, ValueError):
            continue  # not written by this version of the bridge: nothing to carry
        if version.deleted:
            if version.record_id not in gone:
                deleted.append(version)
            continue
        listed = listing.versions.get(version.record_id)
        if (listed is not None and listed.modified_at >= version.modified_at) or (
            version.record_id in gone
        ):
            continue
        updates.append(version)
    return Carried(updates, deleted)
