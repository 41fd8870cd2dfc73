"""One cause per unannounced version, with a documented precedence; only `missed` alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.events import Operation, Product
from bridge.domain.reconcile_causes import (
    BooksCoverage,
    CauseContext,
    ChannelCoverage,
    Interval,
    MissCause,
    alerts,
    announcing_operation,
    attribute_cause,
    subscribes,
)
from bridge.domain.reconcile_cursor import Version

T = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
C, U, D, X = Operation.CREATED, Operation.UPDATED, Operation.DELETED, Operation.CHANGED
VERSION = Version("1", T)
MISSED, GAP, NOT_SUB, FAILED = (
    MissCause.MISSED,
    MissCause.GAP,
    MissCause.NOT_SUBSCRIBED,
    MissCause.DELIVERY_FAILED,
)


def channel(*events: str, **kwargs: object) -> ChannelCoverage:
    return ChannelCoverage("ch", events, T - DAY, **kwargs)  # type: ignore[arg-type]


def crm(*channels: ChannelCoverage, downtime: tuple[Interval, ...] = ()) -> CauseContext:
    return CauseContext(Product.CRM, "Leads", channels, downtime=downtime)


def cause(context: CauseContext, op: Operation = U, **kwargs: bool) -> MissCause:
    return attribute_cause(VERSION, op, context, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("events", "op", "covered"),
    [
        (("Leads.all",), C, True),
        (("Leads.all",), D, True),
        (("Leads.create",), C, True),
        (("Leads.create",), U, False),
        (("Leads.edit",), U, True),
        (("Leads.edit",), D, False),
        (("Leads.delete",), D, True),
        (("leads.EDIT",), U, True),  # module and verb compared case-insensitively
        (("Deals.all",), U, False),
        (("Leads_X.all",), U, False),
        (("Deals.edit", "Leads.delete"), D, True),
        (("Leads.edit",), X, False),  # `changed` is covered by `.all` only
        (("Leads.all",), X, True),
        ((), U, False),
    ],
)
def test_which_channel_events_cover_an_operation(
    events: tuple[str, ...], op: Operation, covered: bool
) -> None:
    assert subscribes(events, "Leads", op) is covered


def test_a_healthy_subscribed_channel_means_missed_and_only_missed_alerts() -> None:
    assert cause(crm(channel("Leads.all"))) is MISSED
    assert [c for c in MissCause if alerts(c)] == [MISSED]


@pytest.mark.parametrize(
    ("coverage", "op"),
    [
        (channel("Leads.create"), U),
        (channel("Leads.edit"), D),
        (channel("Deals.all"), U),
        (channel("Leads.all", filtered=True), U),  # a notification_condition (C14)
        (ChannelCoverage("ch", ("Leads.all",), T + timedelta(seconds=1)), U),  # created later
    ],
)
def test_not_subscribed_when_no_channel_covered_it(
    coverage: ChannelCoverage, op: Operation
) -> None:
    """Catches "every unannounced change is missed" (e.7): changes outside a channel's
    events, field filter or lifetime are legitimately unannounced and must not alert."""
    assert cause(crm(coverage), op) is NOT_SUB
    assert cause(crm(), op) is NOT_SUB


@pytest.mark.parametrize(
    "coverage",
    [
        channel("Leads.all", gaps=(Interval(T - timedelta(minutes=5), T + timedelta(minutes=5)),)),
        channel("Leads.all", gaps=(Interval(T - timedelta(minutes=5)),)),  # still open
        channel("Leads.all", gaps=(Interval(T + timedelta(seconds=30), T + DAY),)),  # within slack
        channel("Leads.all", down_since=T - timedelta(hours=2)),
        channel("Leads.all", down_since=T + timedelta(seconds=59)),
        channel("Leads.all", expires_at=T - timedelta(hours=1)),
    ],
)
def test_gap_when_every_covering_channel_was_down(coverage: ChannelCoverage) -> None:
    assert cause(crm(coverage)) is GAP


@pytest.mark.parametrize(
    "coverage",
    [
        channel("Leads.all", gaps=(Interval(T - DAY, T - timedelta(seconds=1)),)),
        channel("Leads.all", gaps=(Interval(T + timedelta(minutes=2), T + DAY),)),
        channel("Leads.all", down_since=T + timedelta(minutes=2)),
        channel("Leads.all", expires_at=T + timedelta(minutes=2)),
    ],
)
def test_outages_outside_the_delivery_span_do_not_excuse(coverage: ChannelCoverage) -> None:
    """Catches "the channel had a gap at some point": only an outage touching [t, t + slack]
    could have eaten this webhook."""
    assert cause(crm(coverage)) is MISSED


def test_a_gap_in_one_channel_does_not_excuse_a_healthy_one() -> None:
    """Catches "any gap of the connection → gap": a second covering channel was live and
    should have announced it, and a gap on a channel for another module is irrelevant."""
    down = ChannelCoverage("a", ("Leads.all",), T - DAY, down_since=T - DAY)
    live = ChannelCoverage("b", ("Leads.edit",), T - DAY)
    deals_gap = ChannelCoverage("c", ("Deals.all",), T - DAY, down_since=T - DAY)
    assert cause(crm(down, live)) is MISSED
    assert cause(crm(live, deals_gap)) is MISSED
    assert cause(crm(down, deals_gap)) is GAP


def test_bridge_downtime_is_a_gap_for_every_product() -> None:
    downtime = (Interval(T - timedelta(seconds=10), T + timedelta(seconds=20)),)
    assert cause(crm(channel("Leads.all"), downtime=downtime)) is GAP
    books = CauseContext(
        Product.BOOKS, "invoice", books=BooksCoverage(True, frozenset({X})), downtime=downtime
    )
    assert cause(books) is GAP


def books(coverage: BooksCoverage | None, **kwargs: object) -> CauseContext:
    return CauseContext(Product.BOOKS, "invoice", books=coverage, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("coverage", "op", "expected"),
    [
        (None, U, NOT_SUB),
        (BooksCoverage(False, frozenset({U})), U, NOT_SUB),  # no source linked
        (BooksCoverage(True), U, NOT_SUB),  # linked sources never delivered the entity
        (BooksCoverage(True, frozenset({C})), U, NOT_SUB),  # a "Created" rule only
        (BooksCoverage(True, frozenset({U})), U, MISSED),
        (BooksCoverage(True, frozenset({X})), C, MISSED),  # `changed`: sender did not say
        (BooksCoverage(True, frozenset({X})), D, NOT_SUB),  # ... but deletes are opt-in (B8)
        (BooksCoverage(True, frozenset({D})), D, MISSED),
        (BooksCoverage(True, frozenset({U}), gaps=(Interval(T - DAY, T + DAY),)), U, GAP),
    ],
)
def test_books_causes(coverage: BooksCoverage | None, op: Operation, expected: MissCause) -> None:
    assert cause(books(coverage), op) is expected


def test_imported_books_records_are_not_subscribed() -> None:
    """Catches alerting on imports: Books workflows do not fire for imported records (B9)."""
    assert cause(books(BooksCoverage(True, frozenset({U}))), imported=True) is NOT_SUB


def test_precedence_delivery_failed_then_not_subscribed_then_gap_then_missed() -> None:
    """The order is the documented one, each step shown against all the later ones."""
    everything_down = (Interval(T - DAY),)
    linked = BooksCoverage(True, frozenset({U}), gaps=everything_down)
    # Zoho lists the record's webhook as failed: wins over an inferred "not subscribed"
    # (a rule whose every delivery fails never delivered anything) and over a gap.
    assert (
        cause(books(BooksCoverage(True), downtime=everything_down), delivery_failed=True) is FAILED
    )
    assert cause(books(linked), delivery_failed=True) is FAILED
    # Not subscribed beats a gap: nothing would have been sent, so nothing was lost.
    assert cause(books(BooksCoverage(False), downtime=everything_down)) is NOT_SUB
    assert cause(crm(channel("Deals.all"), downtime=everything_down)) is NOT_SUB
    # A gap beats missed.
    assert cause(books(linked)) is GAP
    assert cause(crm(channel("Leads.all"), downtime=everything_down)) is GAP


def test_a_books_sweep_deletion_is_judged_over_the_span_it_happened_in() -> None:
    deletion = Version("9", T - DAY, deleted=True)  # t = its last known modified time
    coverage = BooksCoverage(True, frozenset({D}))
    downtime = (Interval(T + timedelta(hours=3), T + timedelta(hours=4)),)
    context = books(coverage, downtime=downtime)
    assert attribute_cause(deletion, D, context) is MISSED
    between_sweeps = Interval(T, T + timedelta(hours=12))
    assert attribute_cause(deletion, D, context, happened=between_sweeps) is GAP


def test_a_cause_is_a_plain_string_for_metrics_labels() -> None:
    assert [str(c) for c in MissCause] == ["missed", "gap", "not_subscribed", "delivery_failed"]


def test_a_created_record_edited_since_was_announced_by_its_edit() -> None:
    """A version the bridge reports as `created` (it never knew the record) whose record was
    edited after its creation was last changed by an edit: an edit channel should have
    announced it, so its loss is `missed`, not `not_subscribed`."""
    edited = Version("1", T, created_at=T - timedelta(seconds=5))
    fresh = Version("2", T, created_at=T)
    unknown = Version("3", T)
    assert announcing_operation(edited, C) is U
    assert announcing_operation(fresh, C) is C
    assert announcing_operation(unknown, C) is C
    assert announcing_operation(edited, U) is U
    edits_only = crm(channel("Leads.edit"))
    assert attribute_cause(edited, announcing_operation(edited, C), edits_only) is MISSED
    assert attribute_cause(fresh, announcing_operation(fresh, C), edits_only) is NOT_SUB
