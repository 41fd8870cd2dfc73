"""The pure delivery rules: ordering keys, failure outcomes, retention limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.backoff import BackoffPolicy
from bridge.domain.delivery import (
    MAX_RECORD_KEY,
    DeadLetter,
    FailureKind,
    Retry,
    after_failure,
    purge_ceiling,
    record_key,
    retention_cutoff,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = BackoffPolicy(base=1.0, cap=60.0, max_attempts=3)


class Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_record_key_separates_records_and_is_bounded() -> None:
    assert record_key("acme", "Leads", "1") == "acme/Leads/1"
    assert record_key("acme", "Leads", "1") != record_key("acme", "Deals", "1")
    assert len(record_key("s", "m", "x" * 1000)) == MAX_RECORD_KEY


def test_transient_failure_retries_after_the_backoff() -> None:
    outcome = after_failure(FailureKind.TRANSIENT, 2, POLICY, Fixed(0.5), NOW)
    assert outcome == Retry(NOW + timedelta(seconds=1.0))  # 0.5 * ceiling 2 s


def test_retry_after_is_a_minimum_but_capped() -> None:
    assert after_failure(FailureKind.TRANSIENT, 1, POLICY, Fixed(0.0), NOW, 30.0) == Retry(
        NOW + timedelta(seconds=30)
    )
    assert after_failure(FailureKind.TRANSIENT, 1, POLICY, Fixed(0.0), NOW, 9999.0) == Retry(
        NOW + timedelta(seconds=60)
    )


def test_transient_failures_dead_letter_after_max_attempts() -> None:
    assert after_failure(FailureKind.TRANSIENT, 3, POLICY, Fixed(0.5), NOW) == DeadLetter(False)


@pytest.mark.parametrize(
    ("kind", "disable"), [(FailureKind.PERMANENT, False), (FailureKind.GONE, True)]
)
def test_permanent_and_gone_dead_letter_at_once(kind: FailureKind, disable: bool) -> None:
    assert after_failure(kind, 1, POLICY, Fixed(0.5), NOW) == DeadLetter(disable)


def test_retention_cutoff() -> None:
    assert retention_cutoff(NOW, 30) == NOW - timedelta(days=30)
    with pytest.raises(ValueError, match="at least one day"):
        retention_cutoff(NOW, 0)


def test_purge_ceiling_is_the_slowest_subscription() -> None:
    assert purge_ceiling([]) is None
    assert purge_ceiling([40, 7, 90]) == 7
