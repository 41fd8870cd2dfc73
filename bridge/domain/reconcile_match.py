"""Was a polled version announced by a webhook? (reconciliation.md e.6)

Rules, for a version of one record at second `t` (its modified or deleted time):

- **CRM** (C13): the callback carries `server_time` (epoch ms) but no `Modified_Time`. A
  webhook event of the record announces the version when `floor(server_time)` lies in
  `[t - 1 s, t + 1 s]`, both ends included. A create/update version is announced by a
  `created`, `updated` or `changed` event; a deletion (from `/{module}/deleted`, `t` =
  `deleted_time`, e.8) by a `deleted` or `changed` event. A one-sided rule such as e.6's
  `server_time ≥ t - 2 s` would let the webhook of a *later* edit announce this version.
- **Books** (B14): the webhook carries the entity's `last_modified_time`, so a `created`,
  `updated` or `changed` event announces the version when its time equals `t` exactly.
  A deletion found by the sweep (e.9; `t` = the record's last known modified time) is
  announced by any `deleted` webhook event at or after `t`: a record is deleted once.
- An event of origin `reconciliation` at exactly `t` with the same kind (deleted or not)
  *is* this version's reconciled event (it carries `occurred_at = t` and the version key):
  already emitted, neither counted nor emitted again. Replays are copies and never count.
- Otherwise the version is `pending` while younger than the grace period (default 10 min,
  measured against Zoho's `Date` for this run — B9: Books workflows are not instant; Shopify:
  deliveries can be late), and `unannounced` after.

What cannot be told apart: two edits of one record within one CRM window (≈ 2 s) or one
Books second are one version to the poll; a webhook for either announces it, so a lost
webhook hidden behind a delivered one in the same window is not detected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from bridge.domain.events import Operation, Origin, Product
from bridge.domain.reconcile_cursor import Version

CRM_WINDOW = timedelta(seconds=1)
_UPSERTS = frozenset({Operation.CREATED, Operation.UPDATED, Operation.CHANGED})
_CRM_DELETES = frozenset({Operation.DELETED, Operation.CHANGED})


class Announcement(StrEnum):
    ANNOUNCED = "announced"
    ALREADY_EMITTED = "already_emitted"
    PENDING = "pending"
    UNANNOUNCED = "unannounced"


@dataclass(frozen=True, slots=True)
class KnownEvent:
    """A stored event of the record, as matching needs it. `occurred_at`: CRM webhooks,
    `server_time`; Books webhooks, `last_modified_time`; reconciled events, the version's
    time."""

    operation: Operation
    occurred_at: datetime
    origin: Origin

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise ValueError(f"occurred_at must be timezone-aware, not {self.occurred_at!r}")


@dataclass(frozen=True, slots=True)
class MatchPolicy:
    grace: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        if self.grace < timedelta(0):
            raise ValueError("the grace period cannot be negative")


def floor_second(moment: datetime) -> datetime:
    """`moment` truncated to its UTC second (server_time carries milliseconds)."""
    return moment.astimezone(UTC).replace(microsecond=0)


def announces(product: Product, version: Version, event: KnownEvent) -> bool:
    """Whether webhook `event` announced `version` (rules in the module docstring)."""
    if event.origin is not Origin.WEBHOOK:
        return False
    t = version.modified_at
    if product is Product.CRM:
        kinds = _CRM_DELETES if version.deleted else _UPSERTS
        second = floor_second(event.occurred_at)
        return event.operation in kinds and t - CRM_WINDOW <= second <= t + CRM_WINDOW
    if version.deleted:
        return event.operation is Operation.DELETED and event.occurred_at >= t
    return event.operation in _UPSERTS and event.occurred_at == t


def emitted(version: Version, event: KnownEvent) -> bool:
    """Whether `event` is the reconciled event of `version` itself."""
    return (
        event.origin is Origin.RECONCILIATION
        and event.occurred_at == version.modified_at
        and (event.operation is Operation.DELETED) == version.deleted
    )


def match_version(
    product: Product,
    version: Version,
    events: Iterable[KnownEvent],
    *,
    zoho_now: datetime,
    policy: MatchPolicy,
) -> Announcement:
    """Decide `version` against the stored `events` of its record; `zoho_now` is Zoho's
    `Date` for this run. Already emitted wins over announced (a late CRM webhook after
    the reconciled event): both mean "do nothing", the first says why."""
    seen = list(events)
    if any(emitted(version, e) for e in seen):
        return Announcement.ALREADY_EMITTED
    if any(announces(product, version, e) for e in seen):
        return Announcement.ANNOUNCED
    if zoho_now - version.modified_at < policy.grace:
        return Announcement.PENDING
    return Announcement.UNANNOUNCED


def earlier_known(
    product: Product, version: Version, events: Iterable[KnownEvent]
) -> datetime | None:
    """The newest stored time of the record *before* this version's announcement window
    (webhook or reconciled, replays ignored), or None: the last state the bridge knew."""
    t = version.modified_at

    def before(event: KnownEvent) -> bool:
        if product is Product.CRM:
            return floor_second(event.occurred_at) < t - CRM_WINDOW
        return event.occurred_at < t

    times = [e.occurred_at for e in events if e.origin is not Origin.REPLAY and before(e)]
    return max(times, default=None)
