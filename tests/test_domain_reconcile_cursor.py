"""Reconciliation cursor: read bounds, walk stop, advance. Each "catches" docstring names the
naive rule that the test would fail on (reconciliation.md a.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bridge.domain.events import Product
from bridge.domain.reconcile_cursor import (
    BOOKS_CURSOR,
    CRM_CURSOR,
    Cursor,
    CursorPolicy,
    Version,
    advance,
    counted,
    covers,
    default_cursor_policy,
    in_window,
    is_new,
    read_from,
    shifted_from,
    walk_done,
)

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
START = T0 - timedelta(days=1)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def v(record_id: str, seconds: int) -> Version:
    return Version(record_id, at(seconds))


def step(
    previous: Cursor,
    started: datetime,
    seen: tuple[Version, ...] | list[Version] = (),
    pending: tuple[Version, ...] | list[Version] = (),
) -> Cursor:
    """The cursor after a successful CRM run that started at Zoho time `started`."""
    new = advance(
        previous,
        completed=True,
        zoho_started_at=started,
        seen=seen,
        pending=pending,
        policy=CRM_CURSOR,
    )
    assert new is not None
    return new


def test_versions_and_cursors_hold_zoho_times_only() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Version("1", datetime(2026, 3, 1, 12, 0, 0))
    with pytest.raises(ValueError, match="whole seconds"):
        Version("1", T0.replace(microsecond=500))
    with pytest.raises(ValueError, match="whole seconds"):
        Version("1", T0, created_at=T0.replace(microsecond=1))
    with pytest.raises(ValueError, match="record id"):
        Version("", T0)
    with pytest.raises(ValueError, match="need a watermark"):
        Cursor(None, frozenset({"1"}))
    with pytest.raises(ValueError, match="negative"):
        CursorPolicy(overlap=timedelta(seconds=-1))
    with pytest.raises(ValueError, match="zoho_started_at must be timezone-aware"):
        step(Cursor(), T0.replace(tzinfo=None))


def test_default_overlaps() -> None:
    assert default_cursor_policy(Product.CRM) == CRM_CURSOR
    assert CRM_CURSOR.overlap == timedelta(minutes=5)
    assert default_cursor_policy(Product.BOOKS) == BOOKS_CURSOR
    assert BOOKS_CURSOR.overlap == timedelta(minutes=15)
    assert CRM_CURSOR.settle == BOOKS_CURSOR.settle == timedelta(seconds=60)


def test_read_from_is_watermark_minus_overlap_never_before_the_start() -> None:
    assert read_from(Cursor(), CRM_CURSOR, START) == START
    assert read_from(Cursor(T0), CRM_CURSOR, START) == T0 - timedelta(minutes=5)
    assert read_from(Cursor(T0), BOOKS_CURSOR, START) == T0 - timedelta(minutes=15)
    assert read_from(Cursor(T0), CRM_CURSOR, T0 - timedelta(minutes=1)) == T0 - timedelta(minutes=1)


def test_a_same_second_tie_at_the_watermark_is_read_again() -> None:
    """Catches `> watermark` and `watermark + 1 s` (a.2 #1; Airbyte, hotglue): a record
    written later within the watermark's second is still inside the read bound."""
    cursor = Cursor(at(0), frozenset({"a"}))
    bound = read_from(cursor, CursorPolicy(overlap=timedelta(0)), START)
    late_tie = v("b", 0)
    assert late_tie.modified_at >= bound
    assert in_window([late_tie], bound) == [late_tie]
    assert is_new(cursor, late_tie)
    assert not is_new(cursor, v("a", 0))


def test_a_record_visible_late_below_the_watermark_is_read() -> None:
    """Catches reading from the watermark itself (a.2 #2; Activepieces' TIMEBASED): a
    record modified 3 min before the watermark but listed only now is inside the overlap."""
    cursor = Cursor(at(0))
    late = v("x", -180)
    assert late.modified_at >= read_from(cursor, CRM_CURSOR, START)
    assert not is_new(cursor, late)  # covered for counting; emission is decided by matching


def test_the_watermark_follows_zoho_date_not_the_newest_record() -> None:
    """Catches a watermark = newest record seen: a quiet module would never move on (its
    lag alarm would fire forever) and the cursor would depend on what happened to be listed."""
    assert step(Cursor(at(0)), at(3600)) == Cursor(at(3600 - 60))


def test_the_watermark_uses_the_date_at_the_start_of_a_long_run() -> None:
    """Catches taking the clock at the end of the run (a.2 #5; webhookdb#601): a record
    edited early in a 20-minute walk, after its page was read, is re-read next time."""
    started, finished = at(0), at(1200)
    edited_during_walk = v("r", 60)
    new = step(Cursor(), started)
    assert read_from(new, CRM_CURSOR, START) <= edited_during_walk.modified_at
    naive = Cursor(finished - CRM_CURSOR.settle)
    assert read_from(naive, CRM_CURSOR, START) > edited_during_walk.modified_at


def test_the_zoho_date_is_truncated_to_its_second() -> None:
    assert step(Cursor(), at(100).replace(microsecond=999_999)) == Cursor(at(40))


def test_a_failed_run_leaves_the_cursor_alone() -> None:
    """Catches advancing after a failed or partial run (a.2 #4; utopia#794)."""
    failed = advance(
        Cursor(at(0)),
        completed=False,
        zoho_started_at=at(900),
        seen=[v("a", 800)],
        policy=CRM_CURSOR,
    )
    assert failed is None


def test_the_watermark_never_moves_backwards() -> None:
    """Catches a cursor set from a skewed or older `Date` (e.g. another replica's run)."""
    previous = Cursor(at(1000), frozenset({"a"}))
    assert step(previous, at(500), [v("b", 1000)]) == Cursor(at(1000), frozenset({"a", "b"}))


def test_a_pending_version_holds_the_watermark_until_it_is_decided() -> None:
    """Catches ignoring the grace period in the cursor: a version 8 min old, still waiting
    for its webhook, would fall below the next run's read bound (now - 1 min - 5 min) and be
    neither announced nor ever emitted."""
    waiting = v("w", -480)
    new = step(Cursor(at(-3600)), at(0), [waiting, v("z", -480)], pending=[waiting])
    assert new == Cursor(at(-480), frozenset({"w", "z"}))
    assert read_from(new, CRM_CURSOR, START) <= waiting.modified_at
    ignored = step(Cursor(at(-3600)), at(0), [waiting])
    assert read_from(ignored, CRM_CURSOR, START) > waiting.modified_at


def test_a_pending_version_below_the_old_watermark_keeps_it_in_place() -> None:
    late = v("l", -100)
    new = step(Cursor(at(0), frozenset({"a"})), at(30), [late, v("c", 0)], pending=[late])
    assert new == Cursor(at(0), frozenset({"a", "c"}))
    assert read_from(new, CRM_CURSOR, START) <= late.modified_at


def test_ids_are_those_seen_at_the_new_watermark_only_when_it_moves() -> None:
    previous = Cursor(at(0), frozenset({"old"}))
    seen = [v("x", 540), v("y", 540), v("z", 539), v("q", 600)]
    assert step(previous, at(600), seen) == Cursor(at(540), frozenset({"x", "y"}))


def test_covers_and_is_new_tell_ties_apart_by_id() -> None:
    cursor = Cursor(at(0), frozenset({"a"}))
    assert covers(cursor, v("z", -1))
    assert covers(cursor, v("a", 0))
    assert not covers(cursor, v("b", 0))
    assert not covers(cursor, v("a", 1))
    assert not covers(Cursor(), v("a", -10_000))
    # One instant written with another offset is the same second.
    plus_two = timezone(timedelta(hours=2))
    assert covers(cursor, Version("a", at(0).astimezone(plus_two)))


def test_counting_counts_a_version_once_across_overlapping_runs() -> None:
    """Catches counting every listed row (or `is_new` against the old cursor alone): the
    overlap and the unsettled minute are re-read by the next run and would count twice."""
    first = Cursor(at(0))
    rows = [v("a", -100), v("b", 10), v("c", 50), v("d", 200)]
    second = step(first, at(120), rows)
    assert second == Cursor(at(60))
    once = [r.record_id for r in rows if counted(first, second, r)]
    assert once == ["b", "c"]
    third = step(second, at(400), rows)
    assert [r.record_id for r in rows if counted(second, third, r)] == ["d"]


@pytest.mark.parametrize(
    ("page", "done"),
    [
        ([v("a", 30), v("b", 20), v("c", 10)], False),
        ([v("a", 10), v("b", 0), v("c", 0)], False),  # ties at the bound: keep walking
        ([v("a", 10), v("b", 0), v("c", -1)], True),
        ([v("c", -1)], True),
        ([], False),  # an empty page ends the walk by itself (no more records)
    ],
)
def test_a_descending_walk_stops_past_the_bound_not_at_it(page: list[Version], done: bool) -> None:
    """Catches stopping at the first row equal to the bound: the next page may hold more
    records of that second."""
    assert walk_done(page, at(0)) is done


def test_in_window_keeps_rows_at_and_after_the_bound() -> None:
    rows = [v("a", 5), v("b", 0), v("c", -1)]
    assert [r.record_id for r in in_window(rows, at(0))] == ["a", "b"]


def test_an_often_updated_record_is_never_hidden() -> None:
    """Catches an exclusion window (`modified < now - settle`, a.2 #3; tap-cloudwatch#25):
    a record edited every 30 s would always be too recent. Reads have no upper bound, and
    the cursor still advances to Date - settle."""
    cursor = Cursor()
    for run in range(5):
        now = 900 * (run + 1)
        current = v("hot", now - 10)
        bound = read_from(cursor, CRM_CURSOR, T0)
        assert in_window([current], bound) == [current]
        cursor = step(cursor, at(now), [current])
    assert cursor.watermark == at(4500 - 60)


def test_deletions_during_a_walk_hold_the_cursor_where_rows_may_be_skipped() -> None:
    """Catches: advancing to Date - settle after a walk during which records were deleted
    (rows moved up into pages already read are skipped, and never read again)."""
    s = timedelta(seconds=1)
    pages = [(T0, T0 - 10 * s), (T0 + s, T0 - 40 * s), (T0 + 3 * s, T0 - 70 * s)]
    assert shifted_from(pages, []) is None
    assert shifted_from(pages, [T0 - 5 * s]) == T0 - 70 * s  # every later page
    assert shifted_from(pages, [T0 + 3 * s]) == T0 - 70 * s  # only the third page's row
    assert shifted_from(pages, [T0 + 9 * s]) is None  # after the walk: nothing skipped
    assert shifted_from(pages[:1], [T0]) is None  # one page is read at once
    policy = CursorPolicy(overlap=timedelta(minutes=5))
    held = advance(
        Cursor(), completed=True, zoho_started_at=T0 + 3 * s, seen=[], held=[T0 - 70 * s],
        policy=policy,
    )  # fmt: skip
    assert held == Cursor(T0 - 70 * s)
