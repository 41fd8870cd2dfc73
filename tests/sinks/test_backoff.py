"""Backoff maths on a fixed random source."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from bridge.domain.backoff import BackoffPolicy
from bridge.errors import ConfigurationError


@dataclass
class Fixed:
    """A random source that always draws `value`."""

    value: float

    def random(self) -> float:
        return self.value


POLICY = BackoffPolicy(base=2.0, cap=60.0, max_attempts=5)


def test_ceiling_doubles_from_base_until_the_cap() -> None:
    assert [POLICY.ceiling(n) for n in range(1, 8)] == [2, 4, 8, 16, 32, 60, 60]


def test_delay_is_the_draw_times_the_ceiling() -> None:
    assert [POLICY.delay(n, Fixed(0.5)) for n in range(1, 7)] == [1, 2, 4, 8, 16, 30]
    assert POLICY.delay(3, Fixed(0.0)) == 0.0


def test_full_jitter_stays_within_zero_and_the_ceiling() -> None:
    rng = random.Random(20240611)
    for attempt in range(1, 12):
        delays = [POLICY.delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= 0
        assert max(delays) < POLICY.ceiling(attempt)
        # Jitter means spread, not one fixed value per attempt.
        assert len(set(delays)) > 150


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert POLICY.ceiling(10_000) == 60.0
    assert POLICY.delay(10_000, Fixed(0.25)) == 15.0


def test_requested_delay_is_a_minimum_bounded_by_the_cap() -> None:
    assert POLICY.delay(1, Fixed(0.5), requested=30.0) == 30.0
    assert POLICY.delay(6, Fixed(0.9), requested=5.0) == pytest.approx(54.0)
    assert POLICY.delay(1, Fixed(0.5), requested=86_400.0) == 60.0


def test_dead_letter_after_max_attempts() -> None:
    assert [POLICY.should_dead_letter(n) for n in range(1, 7)] == [
        False, False, False, False, True, True,
    ]  # fmt: skip


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        POLICY.delay(0, Fixed(0.5))


@pytest.mark.parametrize(
    "kwargs",
    [{"base": 0}, {"base": -1}, {"base": 10, "cap": 5}, {"max_attempts": 0}],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_is_frozen() -> None:
    with pytest.raises(AttributeError):
        POLICY.cap = 1.0  # type: ignore[misc]
