"""Why a change was not announced: exactly one cause per unannounced version (e.7).

Only `missed` means a webhook that should have come did not; only it alerts. Counting every
unannounced change as missed makes the metric noise, and a noisy number is one nobody reads
(c #2). The first rule that applies wins:

1. `delivery_failed` — Zoho itself lists the record's webhook among the failed workflow
   actions (B10). Zoho's word beats our inferences: a rule whose every delivery fails has
   "never delivered" the entity, yet it is subscribed.
2. `not_subscribed` — nothing would have announced it, so no outage could have lost it:
   CRM, no *covering* channel (one that existed at the time, has events for the module and
   the operation — `Leads.all`, `Leads.create`/`edit`/`delete`, module names compared
   case-insensitively — and no `notification_condition`, since a field filter makes any
   unannounced change legitimate, C14); Books, no source linked to the connection, or the
   linked sources never delivered that operation of the entity, or the record was imported
   (workflows skip imports, B9).
3. `gap` — something should have announced it but could not: the bridge was down, or every
   covering channel was down — inside a recorded gap, not live since some time and not yet
   repaired, or past its expiry (zoho.md §1.2, e.13).
4. `missed` — a covering channel (or a linked Books source) was healthy and the bridge up.

"At the time" is the span `[t, t + delivery_slack]` after the change at `t`: the webhook is
sent shortly after the change, and an outage touching that span is given the benefit of
the doubt (a borderline case should not page anyone). The cause is decided with what is
known when the version is emitted; a gap recorded later does not relabel it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bridge.domain.events import Operation, Product
from bridge.domain.reconcile_cursor import Version

_VERBS = {Operation.CREATED: "create", Operation.UPDATED: "edit", Operation.DELETED: "delete"}


class MissCause(StrEnum):
    MISSED = "missed"
    GAP = "gap"
    NOT_SUBSCRIBED = "not_subscribed"
    DELIVERY_FAILED = "delivery_failed"


def alerts(cause: MissCause) -> bool:
    """Only a real miss increments `missed_deliveries_total` and alerts (e.7)."""
    return cause is MissCause.MISSED


@dataclass(frozen=True, slots=True)
class Interval:
    """A closed span of time; `end` None: still open."""

    start: datetime
    end: datetime | None = None

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start <= end and (self.end is None or start <= self.end)


@dataclass(frozen=True, slots=True)
class ChannelCoverage:
    """One CRM channel of the connection. `gaps`: its recorded gaps; `down_since`: known not
    live since then and not yet repaired; `filtered`: it has a `notification_condition`."""

    channel_id: str
    events: tuple[str, ...]
    created_at: datetime
    gaps: tuple[Interval, ...] = ()
    down_since: datetime | None = None
    expires_at: datetime | None = None
    filtered: bool = False


@dataclass(frozen=True, slots=True)
class BooksCoverage:
    """What the caller knows of the Books sources linked to the connection: whether any is
    linked, which operations of this entity they have delivered (`changed` covers created
    and updated: the sender did not say), and spans in which they could not accept
    deliveries (disabled, failing verification)."""

    linked: bool
    delivered: frozenset[Operation] = frozenset()
    gaps: tuple[Interval, ...] = ()

    def covers(self, operation: Operation) -> bool:
        if not self.linked:
            return False
        if operation in self.delivered:
            return True
        return operation is not Operation.DELETED and Operation.CHANGED in self.delivered


@dataclass(frozen=True, slots=True)
class CauseContext:
    """Everything known about one watch's delivery paths during a run."""

    product: Product
    module: str
    channels: tuple[ChannelCoverage, ...] = ()
    books: BooksCoverage | None = None
    downtime: tuple[Interval, ...] = ()
    delivery_slack: timedelta = timedelta(minutes=1)


def subscribes(events: tuple[str, ...], module: str, operation: Operation) -> bool:
    """Whether channel `events` cover `operation` on `module` (`Leads.all`, `leads.edit`…)."""
    wanted = module.casefold()
    verbs = {"all", _VERBS.get(operation, "all")}
    for event in events:
        name, _, verb = event.rpartition(".")
        if name.casefold() == wanted and verb.casefold() in verbs:
            return True
    return False


def announcing_operation(version: Version, operation: Operation) -> Operation:
    """The operation whose callback would have announced `version`: the one a subscription
    must cover for its loss to be `missed`. A version reported as `created` (the bridge
    never knew the record) but modified after its creation was last changed by an edit,
    and it is the edit's callback that went missing: judging it by `created` made every
    lost edit of a record whose creation no channel watches (`Leads.edit` only)
    `not_subscribed`, silencing the one alert that mattered."""
    created = version.created_at
    if operation is Operation.CREATED and created is not None and created < version.modified_at:
        return Operation.UPDATED
    return operation


def _channel_down(channel: ChannelCoverage, start: datetime, end: datetime) -> bool:
    if channel.down_since is not None and channel.down_since <= end:
        return True
    if channel.expires_at is not None and channel.expires_at <= end:
        return True
    return any(gap.overlaps(start, end) for gap in channel.gaps)


def attribute_cause(
    version: Version,
    operation: Operation,
    context: CauseContext,
    *,
    delivery_failed: bool = False,
    imported: bool = False,
    happened: Interval | None = None,
) -> MissCause:
    """The one cause of an unannounced `version`; `operation` is the one whose callback
    would have announced it (`announcing_operation` of what its event will say).

    `happened`: when the change happened, if not at `version.modified_at` (a Books deletion
    found by the sweep happened between the last sweep that saw the record and the first
    that did not)."""
    start = happened.start if happened is not None else version.modified_at
    last = happened.end if happened is not None and happened.end is not None else start
    end = last + context.delivery_slack
    if delivery_failed:
        return MissCause.DELIVERY_FAILED
    if imported:
        return MissCause.NOT_SUBSCRIBED
    bridge_down = any(span.overlaps(start, end) for span in context.downtime)
    if context.product is Product.BOOKS:
        books = context.books
        if books is None or not books.covers(operation):
            return MissCause.NOT_SUBSCRIBED
        if bridge_down or any(gap.overlaps(start, end) for gap in books.gaps):
            return MissCause.GAP
        return MissCause.MISSED
    covering = [
        c
        for c in context.channels
        if not c.filtered
        and c.created_at <= start
        and subscribes(c.events, context.module, operation)
    ]
    if not covering:
        return MissCause.NOT_SUBSCRIBED
    if bridge_down or all(_channel_down(c, start, end) for c in covering):
        return MissCause.GAP
    return MissCause.MISSED
