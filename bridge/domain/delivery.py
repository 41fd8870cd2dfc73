"""Delivery rules with no I/O: ordering keys, what a failed attempt leads to, retention.

The relay and the purge call these with `now` passed in, so every rule is tested without a
clock, a database or a broker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bridge.domain.backoff import BackoffPolicy, RandomSource


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


# Longest record key stored (deliveries.record_key); longer keys are cut, which at worst
# makes two records share an ordering lane: slower, never out of order.
MAX_RECORD_KEY = 300


def record_key(source: str, module: str, record_id: str) -> str:
    """The ordering lane of an event: events of one Zoho record reach a sink in seq order.

    Only one record's events are ordered; different records never wait for each other.
    """
    return f"{source}/{module}/{record_id}"[:MAX_RECORD_KEY]


class FailureKind(StrEnum):
    TRANSIENT = "transient"  # try again later
    PERMANENT = "permanent"  # the same event will fail the same way: dead-letter it
    GONE = "gone"  # the subscriber asked for no more events: dead-letter, disable the sink


@dataclass(frozen=True, slots=True)
class Retry:
    at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    disable_sink: bool


def after_failure(
    kind: FailureKind,
    attempts: int,
    policy: BackoffPolicy,
    rng: RandomSource,
    now: datetime,
    retry_after: float | None = None,
) -> Retry | DeadLetter:
    """What happens to a row whose attempt number `attempts` (counting this one) failed."""
    if kind is not FailureKind.TRANSIENT:
        return DeadLetter(disable_sink=kind is FailureKind.GONE)
    if policy.should_dead_letter(attempts):
        return DeadLetter(disable_sink=False)
    return Retry(now + timedelta(seconds=policy.delay(attempts, rng, retry_after)))


def retention_cutoff(now: datetime, days: int) -> datetime:
    """Events received before this moment are old enough to purge."""
    if days < 1:
        raise ValueError(f"retention must be at least one day, not {days}")
    return now - timedelta(days=days)


def purge_ceiling(acked_seqs: Iterable[int]) -> int | None:
    """The highest seq every pull subscription has acknowledged, or None when there are none.

    An event above it may still be read by a subscriber that has not caught up, so it is
    kept whatever its age.
    """
    seqs = list(acked_seqs)
    return min(seqs) if seqs else None
