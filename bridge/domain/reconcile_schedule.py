"""When each watch runs next, which due watches run this tick, and when a watch is
unhealthy (reconciliation.md e.11-e.13, e.15). Pure: `now` and the random source are passed in.

Scheduling uses the bridge's clock (it only decides *when* to ask Zoho); the cursor never
does (see reconcile_cursor).

- A floor interval (15 min CRM, 60 min Books) keeps idle modules cheap; poll-on-signal runs
  catch gaps within minutes of activity (e.12; Workato: 100 webhooks in a minute → 4-5 polls):
  a webhook for the module asks for a run at most once per `signal_spacing` (2 min) after
  the last run started, and never cuts a failure backoff short; a channel recovered from a
  gap, a restart, or Books reporting failed workflow actions (B10) asks for a run now.
- After failures: exponential backoff with jitter (Zoho sends no Retry-After, e.11), capped.
- A run refused by the budget governor is deferred to `retry_after`; that is not a failure.
- Fairness: due watches run least recently run first, connections taking turns, at most
  `per_connection` per tick (CRM apps may have only 5 concurrent calls, C11).
- Health: lag = now - watermark; unhealthy when lag exceeds 3 intervals or after K
  consecutive failures — a silent poller is the failure users ask to be told about (c #2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from bridge.domain.events import Product


class RandomSource(Protocol):
    """Anything with `random()` in [0, 1): `random.Random`, or a stub in tests."""

    def random(self) -> float: ...


class Signal(StrEnum):
    WEBHOOK = "webhook"
    CHANNEL_RECOVERED = "channel_recovered"
    RESTART = "restart"
    DELIVERY_FAILURES = "delivery_failures"


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    interval: timedelta
    signal_spacing: timedelta = timedelta(minutes=2)
    retry_base: timedelta = timedelta(minutes=1)
    retry_cap: timedelta = timedelta(hours=1)
    lag_intervals: int = 3
    failures_unhealthy: int = 3

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0) or self.retry_base <= timedelta(0):
            raise ValueError("interval and retry_base must be positive")
        if self.retry_cap < self.retry_base:
            raise ValueError("retry_cap cannot be below retry_base")


CRM_SCHEDULE = SchedulePolicy(interval=timedelta(minutes=15))
BOOKS_SCHEDULE = SchedulePolicy(interval=timedelta(minutes=60))


def default_schedule_policy(product: Product) -> SchedulePolicy:
    return CRM_SCHEDULE if product is Product.CRM else BOOKS_SCHEDULE


def next_after_success(
    started_at: datetime, finished_at: datetime, policy: SchedulePolicy
) -> datetime:
    """One interval after the run started (a steady cadence), but not before it finished."""
    return max(started_at + policy.interval, finished_at)


def next_after_failure(
    failures: int, now: datetime, policy: SchedulePolicy, rng: RandomSource
) -> datetime:
    """After `failures` consecutive failures (≥ 1): a delay drawn from the upper half of
    `min(cap, base · 2^(failures-1))`, so retries spread out but never come back at once."""
    if failures < 1:
        raise ValueError(f"failures start at 1, not {failures}")
    ceiling = min(policy.retry_cap, policy.retry_base * 2 ** min(failures - 1, 30))
    delay: timedelta = ceiling * (0.5 + rng.random() / 2)
    return now + delay


def after_signal(
    signal: Signal,
    now: datetime,
    due_at: datetime,
    *,
    last_started_at: datetime | None,
    failures: int,
    policy: SchedulePolicy,
) -> datetime:
    """The watch's due time once `signal` arrives; calling it again for the same burst gives
    the same answer, so a burst of webhooks is one extra run (coalesced)."""
    if signal is not Signal.WEBHOOK:
        return min(due_at, now)
    if failures:
        return due_at
    earliest = now if last_started_at is None else max(now, last_started_at + policy.signal_spacing)
    return min(due_at, earliest)


def defer_for_budget(due_at: datetime, retry_after: datetime) -> datetime:
    """A run the budget refused waits until the budget frees; failures are not counted."""
    return max(due_at, retry_after)


@dataclass(frozen=True, slots=True)
class DueWatch:
    connection: str
    module: str
    due_at: datetime
    last_started_at: datetime | None


def _staleness(watch: DueWatch) -> tuple[bool, datetime, datetime, str, str]:
    never = watch.last_started_at is None
    last = watch.last_started_at or watch.due_at
    return (not never, last, watch.due_at, watch.connection, watch.module)


def pick_due(
    watches: Iterable[DueWatch], now: datetime, *, per_connection: int = 1, limit: int | None = None
) -> list[DueWatch]:
    """The watches to start this tick, in order: among those due, never-run and least
    recently run first; connections take turns (round robin, the connection with the most
    overdue watch first), at most `per_connection` each, at most `limit` in all."""
    if per_connection < 1:
        raise ValueError("per_connection must be at least 1")
    queues: dict[str, list[DueWatch]] = {}
    for watch in sorted((w for w in watches if w.due_at <= now), key=_staleness):
        queues.setdefault(watch.connection, []).append(watch)
    picked: list[DueWatch] = []
    for turn in range(per_connection):
        for queue in queues.values():
            if turn < len(queue):
                picked.append(queue[turn])
    return picked if limit is None else picked[:limit]


@dataclass(frozen=True, slots=True)
class Health:
    lag: timedelta
    unhealthy: bool
    reason: str | None


def health(
    now: datetime,
    watermark: datetime | None,
    *,
    start: datetime,
    failures: int,
    policy: SchedulePolicy,
) -> Health:
    """`reconcile_lag_seconds` and whether to flag the watch. `now` should be Zoho's latest
    `Date` (or the bridge clock: skew is seconds, the thresholds are hours); a watch that
    never completed a run is measured from its `start`."""
    lag = max(now - (watermark or start), timedelta(0))
    if failures >= policy.failures_unhealthy:
        return Health(lag, True, f"{failures} consecutive failed runs")
    if lag > policy.interval * policy.lag_intervals:
        return Health(lag, True, f"lag {lag} exceeds {policy.lag_intervals} intervals")
    return Health(lag, False, None)
