"""Reconciliation scheduling: floor interval, coalesced signals, backoff, budget, fairness,
health."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.events import Product
from bridge.domain.reconcile_schedule import (
    BOOKS_SCHEDULE,
    CRM_SCHEDULE,
    DueWatch,
    Health,
    SchedulePolicy,
    Signal,
    after_signal,
    default_schedule_policy,
    defer_for_budget,
    health,
    next_after_failure,
    next_after_success,
    pick_due,
)

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_defaults() -> None:
    assert default_schedule_policy(Product.CRM) == CRM_SCHEDULE
    assert CRM_SCHEDULE.interval == 15 * MIN
    assert default_schedule_policy(Product.BOOKS) == BOOKS_SCHEDULE
    assert BOOKS_SCHEDULE.interval == 60 * MIN
    with pytest.raises(ValueError, match="positive"):
        SchedulePolicy(interval=timedelta(0))
    with pytest.raises(ValueError, match="below"):
        SchedulePolicy(interval=MIN, retry_base=MIN, retry_cap=timedelta(seconds=1))


def test_the_floor_interval_counts_from_the_start_of_the_run() -> None:
    assert next_after_success(NOW, NOW + 2 * MIN, CRM_SCHEDULE) == NOW + 15 * MIN
    # A run longer than the interval (a catch-up) is followed at once.
    assert next_after_success(NOW, NOW + 20 * MIN, CRM_SCHEDULE) == NOW + 20 * MIN


def test_failures_back_off_exponentially_with_jitter_up_to_a_cap() -> None:
    """Catches retrying a failing Zoho at the floor interval or at once (429s with no
    Retry-After, e.11)."""
    low = [next_after_failure(n, NOW, CRM_SCHEDULE, Fixed(0.0)) - NOW for n in (1, 2, 3, 7, 50)]
    high = [
        next_after_failure(n, NOW, CRM_SCHEDULE, Fixed(0.999999)) - NOW for n in (1, 2, 3, 7, 50)
    ]
    assert low == [30 * SEC, MIN, 2 * MIN, 30 * MIN, 30 * MIN]
    assert all(
        a < b <= cap
        for a, b, cap in zip(low, high, [MIN, 2 * MIN, 4 * MIN, 60 * MIN, 60 * MIN], strict=True)
    )
    rng = random.Random(3)
    spread = {next_after_failure(4, NOW, CRM_SCHEDULE, rng) for _ in range(20)}
    assert len(spread) == 20
    with pytest.raises(ValueError, match="start at 1"):
        next_after_failure(0, NOW, CRM_SCHEDULE, rng)


def signal(
    kind: Signal, now: datetime, due: datetime, last: datetime | None, failures: int = 0
) -> datetime:
    return after_signal(
        kind, now, due, last_started_at=last, failures=failures, policy=CRM_SCHEDULE
    )


def test_a_burst_of_webhooks_is_one_extra_run_per_spacing() -> None:
    """Catches polling on every webhook: 100 webhooks in a minute must not become 100 polls
    (Workato: 4-5)."""
    due, last_start = NOW + 14 * MIN, NOW - 30 * SEC
    burst = {signal(Signal.WEBHOOK, NOW + s * SEC, due, last_start) for s in range(60)}
    assert burst == {last_start + 2 * MIN}
    # Long after the last run (or none yet): now.
    assert signal(Signal.WEBHOOK, NOW, due, NOW - 10 * MIN) == NOW
    assert signal(Signal.WEBHOOK, NOW, due, None) == NOW
    # Never later than the run already planned.
    assert signal(Signal.WEBHOOK, NOW, NOW + 10 * SEC, NOW) == NOW + 10 * SEC


def test_webhooks_do_not_cut_a_failure_backoff_short() -> None:
    """Catches hammering a failing API every 2 minutes because webhooks keep coming."""
    backoff = NOW + 30 * MIN
    assert signal(Signal.WEBHOOK, NOW, backoff, NOW - 10 * MIN, failures=2) == backoff


@pytest.mark.parametrize(
    "kind", [Signal.CHANNEL_RECOVERED, Signal.RESTART, Signal.DELIVERY_FAILURES]
)
def test_recovery_restart_and_failed_deliveries_run_now(kind: Signal) -> None:
    assert signal(kind, NOW, NOW + 14 * MIN, NOW - 10 * SEC, failures=3) == NOW
    assert signal(kind, NOW, NOW - MIN, None) == NOW - MIN


def test_a_budget_refusal_defers_without_counting_a_failure() -> None:
    assert defer_for_budget(NOW, NOW + 7 * MIN) == NOW + 7 * MIN
    assert defer_for_budget(NOW + 9 * MIN, NOW + 7 * MIN) == NOW + 9 * MIN


def watch(connection: str, module: str, due_min: int, last_min: int | None) -> DueWatch:
    last = None if last_min is None else NOW + last_min * MIN
    return DueWatch(connection, module, NOW + due_min * MIN, last)


def names(picked: list[DueWatch]) -> list[str]:
    return [f"{w.connection}/{w.module}" for w in picked]


def test_due_watches_rotate_across_connections_least_recently_run_first() -> None:
    """Catches "oldest due first" alone: one connection with many modules would take every
    slot and its org's concurrency, starving the others."""
    watches = [
        watch("big", "Leads", -1, -60),
        watch("big", "Deals", -1, -50),
        watch("big", "Contacts", -1, -40),
        watch("small", "Leads", -1, -20),
        watch("new", "Leads", -1, None),
        watch("big", "Tasks", 5, -120),  # not due yet
    ]
    assert names(pick_due(watches, NOW)) == ["new/Leads", "big/Leads", "small/Leads"]
    assert names(pick_due(watches, NOW, per_connection=2)) == [
        "new/Leads",
        "big/Leads",
        "small/Leads",
        "big/Deals",
    ]
    assert names(pick_due(watches, NOW, per_connection=5, limit=4)) == [
        "new/Leads",
        "big/Leads",
        "small/Leads",
        "big/Deals",
    ]
    assert pick_due([], NOW) == []
    with pytest.raises(ValueError, match="at least 1"):
        pick_due(watches, NOW, per_connection=0)


def test_the_order_is_deterministic_for_ties() -> None:
    watches = [
        watch("b", "Leads", -1, -5),
        watch("a", "Leads", -1, -5),
        watch("a", "Deals", -1, -5),
    ]
    assert names(pick_due(watches, NOW, per_connection=2)) == ["a/Deals", "b/Leads", "a/Leads"]


def test_health_is_lag_from_the_watermark_and_consecutive_failures() -> None:
    """Catches a poller that fails or falls behind silently (c #2): both flag the watch."""
    ok = health(
        NOW, NOW - 20 * MIN, start=NOW - 10 * 24 * 60 * MIN, failures=2, policy=CRM_SCHEDULE
    )
    assert ok == Health(20 * MIN, False, None)
    behind = health(NOW, NOW - 46 * MIN, start=NOW - 99 * MIN, failures=0, policy=CRM_SCHEDULE)
    assert behind.unhealthy
    assert behind.reason == "lag 0:46:00 exceeds 3 intervals"
    failing = health(NOW, NOW - MIN, start=NOW - 99 * MIN, failures=3, policy=CRM_SCHEDULE)
    assert failing == Health(MIN, True, "3 consecutive failed runs")
    never = health(NOW, None, start=NOW - 2 * 60 * MIN, failures=0, policy=CRM_SCHEDULE)
    assert never.lag == 120 * MIN
    assert never.unhealthy
    assert health(NOW, NOW + MIN, start=NOW, failures=0, policy=CRM_SCHEDULE).lag == timedelta(0)
