"""Which failures are worth retrying, and how long to wait: pure maths, no I/O."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with "equal" jitter, the one policy for every Zoho call.

    Zoho sends no `Retry-After` on Books 429s and its CRM `details.retry_after` looks
    synthetic (zoho.md §6), so we never wait on the server's word; we back off ourselves.
    """

    # Eight attempts wait at least 0.5+1+2+4+8+16+30 = 61.5 s in all: enough for Books'
    # per-minute window (zoho.md §6) to clear when another app spent the org's quota.
    attempts: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (1 = the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return rng.uniform(ceiling / 2, ceiling)


def is_transient_status(status: int) -> bool:
    """Whether an HTTP status means "try again later": 429 and the 5xx family."""
    return status == 429 or 500 <= status <= 599
