"""Retry timing for outbox deliveries: capped exponential backoff with full jitter.

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of
many failed deliveries over time, so a subscriber coming back from an outage is not hit by
every retry at once (AWS Architecture Blog, "Exponential Backoff And Jitter").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bridge.errors import ConfigurationError

# 2**62 seconds is far beyond any cap; bounding the exponent keeps the float finite.
_MAX_EXPONENT = 62


class RandomSource(Protocol):
    """Anything with `random()` in [0, 1): `random.Random`, or a fixed stub in tests."""

    def random(self) -> float: ...


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """When to retry a failed delivery and when to give up.

    `attempt` counts failed attempts so far, starting at 1. The ceiling for attempt n is
    `min(cap, base * 2**(n-1))` seconds; the delay is drawn uniformly below it. After
    `max_attempts` failures the delivery is dead-lettered.
    """

    base: float = 1.0
    cap: float = 600.0
    max_attempts: int = 20

    def __post_init__(self) -> None:
        if self.base <= 0:
            raise ConfigurationError(f"backoff base must be positive, not {self.base}")
        if self.cap < self.base:
            raise ConfigurationError(f"backoff cap {self.cap} is below its base {self.base}")
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be at least 1, not {self.max_attempts}")

    def ceiling(self, attempt: int) -> float:
        """The largest delay the policy may choose after failed attempt number `attempt`."""
        if attempt < 1:
            raise ValueError(f"attempt numbers start at 1, not {attempt}")
        exponent = min(attempt - 1, _MAX_EXPONENT)
        return min(self.cap, self.base * 2.0**exponent)

    def delay(self, attempt: int, rng: RandomSource, requested: float | None = None) -> float:
        """Seconds to wait before retrying after failed attempt number `attempt`.

        `requested` is a delay the other side asked for (HTTP `Retry-After`): it is honoured
        as a minimum, but still bounded by `cap` so a subscriber cannot park the outbox
        for days with one header.
        """
        jittered = rng.random() * self.ceiling(attempt)
        if requested is None:
            return jittered
        return min(self.cap, max(jittered, requested))

    def should_dead_letter(self, attempts: int) -> bool:
        """True once `attempts` failed attempts have used up the policy."""
        return attempts >= self.max_attempts
