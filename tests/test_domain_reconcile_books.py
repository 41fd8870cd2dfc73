"""Books listing strategies (probe, review, dedup) and the deletion sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.reconcile_books_strategy import (
    FilterProbe,
    FilterSemantics,
    ListingStrategy,
    StrategyChange,
    choose_strategy,
    dedupe_rows,
    filter_parameter,
    filter_semantics,
    review_run,
)
from bridge.domain.reconcile_books_sweep import SweepPolicy, SweepResult, sweep
from bridge.domain.reconcile_cursor import Version

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
BOUND = NOW - timedelta(days=1)
FILTER, SORTED, SCAN = ListingStrategy.FILTER, ListingStrategy.SORTED, ListingStrategy.SCAN


def v(record_id: str, seconds_after_bound: int) -> Version:
    return Version(record_id, BOUND + timedelta(seconds=seconds_after_bound))


KNOWN = (v("new", 3600), v("newer", 7200), v("tie", 0), v("old", -3600))


@pytest.mark.parametrize(
    ("returned", "semantics"),
    [
        (None, FilterSemantics.REFUSED),
        ((v("new", 3600), v("newer", 7200), v("tie", 0)), FilterSemantics.AT_OR_AFTER),
        (
            (v("new", 3600), v("newer", 7200)),
            FilterSemantics.AT_OR_AFTER,
        ),  # `>`: see filter_parameter
        ((v("new", 3600), v("old", -3600)), FilterSemantics.IGNORED),
        ((v("tie", 0),), FilterSemantics.EQUAL),
        ((), FilterSemantics.UNKNOWN),  # nothing came back: no evidence either way
        (
            (v("new", 3600),),
            FilterSemantics.UNKNOWN,
        ),  # some later ones missing, not all at the bound
    ],
)
def test_filter_semantics_from_a_probe(
    returned: tuple[Version, ...] | None, semantics: FilterSemantics
) -> None:
    """Catches trusting `last_modified_time` as `>=` everywhere (B2: hotglue's journals
    match the exact time; Airbyte's expenses filter another field)."""
    assert filter_semantics(FilterProbe(BOUND, KNOWN, returned)) is semantics


def test_a_probe_with_nothing_newer_than_the_bound_proves_nothing() -> None:
    probe = FilterProbe(BOUND, (v("old", -10), v("tie", 0)), (v("tie", 0),))
    assert filter_semantics(probe) is FilterSemantics.UNKNOWN


SORTED_PAGE = (v("newer", 7200), v("new", 3600), v("tie", 0), v("tie2", 0))


@pytest.mark.parametrize(
    ("returned", "sorted_rows", "strategy", "reason"),
    [
        (KNOWN[:3], SORTED_PAGE, FILTER, "returns later modifications"),
        ((v("tie", 0),), SORTED_PAGE, SORTED, "exact time only; sorting works"),
        (KNOWN, SORTED_PAGE, SORTED, "older than the bound; sorting works"),
        (None, None, SCAN, "was refused; sorting was refused"),
        (None, (v("a", 0), v("b", 5)), SCAN, "not verified"),  # ascending: sort ignored
        (None, (v("a", 0), v("b", 0)), SCAN, "not verified"),  # one time: cannot tell
        (None, (), SCAN, "not verified"),
    ],
)
def test_choose_the_best_safe_strategy(
    returned: tuple[Version, ...] | None,
    sorted_rows: tuple[Version, ...] | None,
    strategy: ListingStrategy,
    reason: str,
) -> None:
    choice = choose_strategy(FilterProbe(BOUND, KNOWN, returned), sorted_rows)
    assert choice.strategy is strategy
    assert reason in choice.reason


def test_the_filter_is_sent_one_second_below_the_bound() -> None:
    """Catches sending the bound itself to a filter that may be `>` (or `+1 s`, a.2 #1)."""
    assert filter_parameter(NOW) == NOW - timedelta(seconds=1)


SINCE = BOUND


def test_a_filter_returning_older_rows_falls_back_to_sorted() -> None:
    """Catches keeping a strategy the run shows is wrong: a filter that returns rows older
    than what was asked does not mean "at or after" and may drop others."""
    rows = [v("a", 100), v("b", -1), v("c", -3600)]
    change = review_run(FILTER, SINCE, rows)
    assert change == StrategyChange(FILTER, SORTED, "filter returned rows older than the bound (1)")


def test_sorted_rows_out_of_order_fall_back_to_scan() -> None:
    """Catches trusting `sort_column` blindly: a newest-first walk stops at the first old
    row, so an unsorted listing would end the walk early and skip records."""
    assert review_run(SORTED, SINCE, [v("a", 50), v("a", 50), v("b", 10)]) is None  # dup allowed
    change = review_run(SORTED, SINCE, [v("a", 50), v("b", 10), v("c", 30)])
    assert change is not None
    assert (change.previous, change.next) == (SORTED, SCAN)


def test_an_announced_version_missing_from_the_poll_makes_the_strategy_safer() -> None:
    """Catches trusting a listing that silently drops records (the Airbyte `date` filter)."""
    rows = [v("a", 100), v("b", 50)]
    assert review_run(FILTER, SINCE, rows, [v("a", 100), v("b", 10)]) is None  # b edited again
    change = review_run(FILTER, SINCE, rows, [v("a", 200), v("x", 20)])
    assert change is not None
    assert change.next is SORTED
    assert "2 announced versions were not listed (e.g. a, x)" in change.reason
    sorted_change = review_run(SORTED, SINCE, rows, [v("x", 20)])
    assert sorted_change is not None
    assert sorted_change.next is SCAN


def test_a_scan_has_nothing_safer() -> None:
    assert review_run(SCAN, SINCE, [v("b", -99999), v("a", 5)], [v("x", 20)]) is None


def test_duplicate_rows_keep_the_newest_version_in_first_seen_order() -> None:
    """Catches matching every row (B6: Books lists a record twice): one version would be
    judged twice, and an older duplicate could be emitted as if current."""
    rows = [v("a", 10), v("b", 5), v("a", 30), v("c", 1), v("b", 5), v("a", 20)]
    assert dedupe_rows(rows) == [v("a", 30), v("b", 5), v("c", 1)]


KNOWN_IDS = frozenset({"1", "2", "3", "4"})


def test_an_id_missing_from_two_consecutive_complete_sweeps_is_deleted() -> None:
    """Catches deleting on the first miss: a page-number listing can drop a row when
    another is deleted mid-walk, and the record would be reported deleted."""
    first = sweep(KNOWN_IDS, {"1", "2", "3", "5"}, {}, complete=True)
    assert first == SweepResult({"4": 1}, frozenset(), frozenset({"1", "2", "3", "4", "5"}))
    second = sweep(first.known, {"1", "2", "3", "5"}, first.misses, complete=True)
    assert second.deleted == frozenset({"4"})
    assert second.misses == {}
    assert second.known == frozenset({"1", "2", "3", "5"})


def test_an_incomplete_sweep_changes_nothing() -> None:
    """Catches diffing a partial listing (Nango: "only call trackDeletesEnd if the full
    dataset was fetched … otherwise you can cause false deletions", a.2 #6)."""
    result = sweep(KNOWN_IDS, {"1"}, {"4": 1, "3": 1}, complete=False)
    assert result == SweepResult(
        {"4": 1, "3": 1}, frozenset(), KNOWN_IDS, "the sweep was incomplete"
    )
    after = sweep(KNOWN_IDS, {"1", "2", "3"}, result.misses, complete=True)
    assert after.deleted == frozenset({"4"})  # still consecutive complete sweeps


def test_an_id_seen_again_starts_over() -> None:
    result = sweep(KNOWN_IDS, KNOWN_IDS, {"4": 1, "gone": 1}, complete=True)
    assert result.misses == {}
    assert result.deleted == frozenset()


def test_a_sweep_missing_most_ids_is_held_as_suspect() -> None:
    """Catches trusting a "complete" listing of the wrong org or a changed default filter:
    it looks like everything was deleted at once."""
    known = frozenset(str(i) for i in range(20))
    result = sweep(known, {"0", "1"}, {str(i): 1 for i in range(20)}, complete=True)
    assert result.deleted == frozenset()
    assert result.held == "18 of 20 known ids were absent"
    small = sweep({"1", "2"}, set(), {"1": 1, "2": 1}, complete=True)  # below the minimum
    assert small.deleted == frozenset({"1", "2"})


def test_sweep_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SweepPolicy(misses_to_delete=0)
    with pytest.raises(ValueError, match="suspect_fraction"):
        SweepPolicy(suspect_fraction=0)
    one = sweep({"1", "2"}, {"1"}, {}, complete=True, policy=SweepPolicy(misses_to_delete=1))
    assert one.deleted == frozenset({"2"})
