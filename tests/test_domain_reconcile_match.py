"""Matching polled versions with stored events, and the synthetic event's operation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.events import Operation, Origin, Product
from bridge.domain.reconcile_cursor import Version
from bridge.domain.reconcile_match import (
    Announcement,
    KnownEvent,
    MatchPolicy,
    announces,
    earlier_known,
    match_version,
)
from bridge.domain.reconcile_synthetic import Synthetic, synthesize

T = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
POLICY = MatchPolicy()
LATER = T + timedelta(hours=1)  # Zoho's Date long after the version: past the grace period
CRM, BOOKS = Product.CRM, Product.BOOKS
W, R = Origin.WEBHOOK, Origin.RECONCILIATION
C, U, D, X = Operation.CREATED, Operation.UPDATED, Operation.DELETED, Operation.CHANGED


def ms(offset_ms: int) -> datetime:
    return T + timedelta(milliseconds=offset_ms)


def event(op: Operation, when: datetime, origin: Origin = W) -> KnownEvent:
    return KnownEvent(op, when, origin)


def match(
    product: Product, version: Version, *events: KnownEvent, now: datetime = LATER
) -> Announcement:
    return match_version(product, version, events, zoho_now=now, policy=POLICY)


UPDATE = Version("1", T, created_at=T - timedelta(days=3))
DELETION = Version("1", T, deleted=True)


@pytest.mark.parametrize(
    ("offset_ms", "announced"),
    [
        (-1001, False),  # floor = t - 2 s
        (-1000, True),  # floor = t - 1 s
        (-1, True),
        (0, True),
        (999, True),
        (1999, True),  # floor = t + 1 s
        (2000, False),  # floor = t + 2 s
    ],
)
def test_crm_window_is_floor_of_server_time_within_one_second(
    offset_ms: int, announced: bool
) -> None:
    """Catches exact equality on `server_time` (milliseconds never equal a whole second) and
    an unbounded window."""
    assert announces(CRM, UPDATE, event(U, ms(offset_ms))) is announced


@pytest.mark.parametrize(
    ("version", "op", "announced"),
    [
        (UPDATE, C, True),
        (UPDATE, U, True),
        (UPDATE, X, True),
        (UPDATE, D, False),
        (DELETION, D, True),
        (DELETION, X, True),
        (DELETION, U, False),
        (DELETION, C, False),
    ],
)
def test_crm_operation_kinds(version: Version, op: Operation, announced: bool) -> None:
    """Catches "any event of the record in the window": a delete callback does not announce
    an edit made in the same second, nor an edit callback a deletion."""
    assert announces(CRM, version, event(op, ms(300))) is announced


def test_a_later_edits_webhook_does_not_announce_an_earlier_version() -> None:
    """Catches e.6's one-sided `server_time >= t - 2 s` and "any webhook of the record":
    the webhook of an edit 5 s later (or of yesterday's) would hide this version's loss."""
    assert match(CRM, UPDATE, event(U, T + timedelta(seconds=5))) is Announcement.UNANNOUNCED
    assert match(CRM, UPDATE, event(U, T - timedelta(days=1))) is Announcement.UNANNOUNCED
    assert match(BOOKS, UPDATE, event(X, T + timedelta(seconds=5))) is Announcement.UNANNOUNCED


@pytest.mark.parametrize(
    ("when", "announced"),
    [
        (T, True),
        (T - timedelta(seconds=1), False),
        (T + timedelta(seconds=1), False),
        (ms(400), False),
    ],
)
def test_books_matches_last_modified_time_exactly(when: datetime, announced: bool) -> None:
    """Catches borrowing CRM's window for Books: the webhook carries the entity's own
    `last_modified_time` (B14), so an edit one second later is another version."""
    assert announces(BOOKS, UPDATE, event(X, when)) is announced


def test_books_deletions_are_announced_by_any_later_delete_webhook() -> None:
    deletion = Version("9", T, deleted=True)  # t = the record's last known modified time
    assert announces(BOOKS, deletion, event(D, T + timedelta(days=2)))
    assert announces(BOOKS, deletion, event(D, T))
    assert not announces(BOOKS, deletion, event(D, T - timedelta(seconds=1)))
    assert not announces(BOOKS, deletion, event(X, T))  # the last update, not the delete
    assert not announces(BOOKS, Version("9", T), event(D, T))


def test_only_webhooks_announce() -> None:
    """Catches counting replays (copies of events) or other reconciled events as webhooks."""
    assert not announces(CRM, UPDATE, event(U, T, Origin.REPLAY))
    assert not announces(CRM, UPDATE, event(U, T, R))


def test_a_reconciled_event_of_the_same_version_means_already_emitted() -> None:
    """Catches matching on webhooks only: the overlap re-reads the version next run, and it
    would be emitted (and counted as missed) a second time."""
    assert match(CRM, UPDATE, event(U, T, R)) is Announcement.ALREADY_EMITTED
    assert match(CRM, DELETION, event(D, T, R)) is Announcement.ALREADY_EMITTED
    # A late CRM webhook after the emission: still nothing to do, and said so.
    assert match(CRM, UPDATE, event(U, T, R), event(U, ms(200))) is Announcement.ALREADY_EMITTED


def test_a_reconciled_event_of_another_version_is_not_this_one() -> None:
    """Catches "a reconciled event exists for the record": a new unannounced edit of a
    record reconciled last week would be swallowed."""
    assert match(CRM, UPDATE, event(U, T - timedelta(days=7), R)) is Announcement.UNANNOUNCED
    assert match(CRM, UPDATE, event(U, T + timedelta(seconds=1), R)) is Announcement.UNANNOUNCED
    assert match(CRM, DELETION, event(U, T, R)) is Announcement.UNANNOUNCED
    assert match(CRM, UPDATE, event(D, T, R)) is Announcement.UNANNOUNCED


@pytest.mark.parametrize(
    ("age", "outcome"),
    [
        (timedelta(0), Announcement.PENDING),
        (timedelta(minutes=9, seconds=59), Announcement.PENDING),
        (timedelta(minutes=10), Announcement.UNANNOUNCED),
        (-timedelta(seconds=30), Announcement.PENDING),  # modified after Zoho's Date
    ],
)
def test_the_grace_period_is_measured_against_zoho_date(
    age: timedelta, outcome: Announcement
) -> None:
    """Catches emitting at once (racing webhooks that are merely slow, B9) and measuring the
    age on the bridge's clock: only Zoho's `Date` for the run is passed in."""
    assert match(CRM, UPDATE, now=T + age) is outcome
    assert match(CRM, UPDATE, event(U, ms(10)), now=T + age) is Announcement.ANNOUNCED


def test_two_edits_within_one_window_cannot_be_told_apart() -> None:
    """Documented limit: the poll sees one version; a webhook for either edit announces it."""
    second_edit = Version("1", T + timedelta(seconds=1))
    assert match(CRM, second_edit, event(U, ms(100))) is Announcement.ANNOUNCED


def test_earlier_known_is_the_newest_state_before_the_window() -> None:
    events = [
        event(U, T - timedelta(days=2)),
        event(U, ms(-1500)),
        event(U, ms(-900)),
        event(C, T - timedelta(days=1), R),
        event(U, T - timedelta(hours=1), Origin.REPLAY),
    ]
    assert earlier_known(CRM, UPDATE, events) == ms(-1500)
    assert earlier_known(BOOKS, UPDATE, events) == ms(-900)
    assert earlier_known(CRM, UPDATE, []) is None


READ_FROM = T - timedelta(minutes=5)
PREVIOUS_RUN = T - timedelta(minutes=15)


def synth(
    version: Version, *events: KnownEvent, previous: datetime | None = PREVIOUS_RUN
) -> Synthetic:
    return synthesize(CRM, version, events, read_from=READ_FROM, previous_run_at=previous)


def test_a_record_never_edited_is_a_single_creation() -> None:
    assert synth(Version("1", T, created_at=T)) == Synthetic(C, collapsed=False)


def test_a_record_created_inside_the_window_and_edited_is_a_collapsed_creation() -> None:
    version = Version("1", T, created_at=READ_FROM)
    assert synth(version) == Synthetic(C, collapsed=True)


def test_an_old_record_first_seen_is_an_update_not_a_creation() -> None:
    """Catches "no earlier version known → created": the first run of a new watch would
    announce every record edited since its start as new."""
    version = Version("1", T, created_at=READ_FROM - timedelta(seconds=1))
    assert synth(version) == Synthetic(U, collapsed=True)
    assert synth(Version("1", T)) == Synthetic(U, collapsed=True)  # created time unknown


def test_a_known_record_is_updated_and_collapsed_only_across_a_run() -> None:
    fresh = Version("1", T, created_at=T - timedelta(seconds=30))
    # Created (announced) after the previous run, edited since: one unannounced edit at most
    # in a span no run could observe.
    assert synth(fresh, event(C, T - timedelta(seconds=30))) == Synthetic(U, collapsed=False)
    # The last known state predates the previous run: a whole interval could hide edits.
    known_long_ago = event(U, PREVIOUS_RUN - timedelta(minutes=1))
    assert synth(UPDATE, known_long_ago) == Synthetic(U, collapsed=True)
    assert synth(UPDATE, known_long_ago, previous=None) == Synthetic(U, collapsed=False)


def test_a_creation_known_by_webhook_makes_the_next_version_an_update() -> None:
    """Catches `created_at == modified_at`-only logic skipping the "no earlier state" test."""
    created = Version("1", T, created_at=T - timedelta(seconds=10))
    assert synth(created, event(C, T - timedelta(seconds=10))).operation is U


def test_deletions_are_deleted() -> None:
    assert synth(DELETION, event(U, T - timedelta(days=1))) == Synthetic(D, collapsed=False)
    assert synthesize(BOOKS, DELETION, [], read_from=READ_FROM, previous_run_at=None).operation is D


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="negative"):
        MatchPolicy(grace=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone-aware"):
        KnownEvent(U, T.replace(tzinfo=None), W)
