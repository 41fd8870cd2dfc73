"""Books' daily quota as its answers report it: `X-Rate-Limit-*` headers. Pure.

Books answers have carried `X-Rate-Limit-Limit`, `-Remaining` and `-Reset`, counting the
**daily** quota, Reset being seconds until the daily reset (reconciliation.md B12,
UNCERTAIN-but-strong: Weble/ZohoBooksApi#38; hotglue tap-zohobooks still reads them in
2025). Every value is optional: an answer without them changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# With Remaining known but no Reset, check again after this long: one call then brings
# fresh headers (Reset itself is UNCERTAIN, B12).
UNKNOWN_RESET = 3600.0


@dataclass(frozen=True, slots=True)
class BooksRateLimit:
    """The latest `X-Rate-Limit-*` values of one connection, and when we saw them
    (epoch seconds on the budget's clock)."""

    limit: int | None
    remaining: int | None
    reset_seconds: float | None
    seen_at: float

    @property
    def resets_at(self) -> float:
        """When the daily quota resets, by the budget's clock (UNKNOWN_RESET if unsaid)."""
        return self.seen_at + (
            self.reset_seconds if self.reset_seconds is not None else UNKNOWN_RESET
        )

    def wait(self, now: float, headroom: int) -> float:
        """Seconds reconciliation must wait before its next Books call: 0 while more than
        `headroom` calls remain today, else until the reset. Headroom leaves the rest of
        the day's calls to the org's other uses (reconciliation.md e #11)."""
        if self.remaining is None or self.remaining > headroom:
            return 0.0
        return max(0.0, self.resets_at - now)


def parse_books_rate_limit(headers: Mapping[str, str], seen_at: float) -> BooksRateLimit | None:
    """The rate-limit headers of one Books answer, or None when it carries none.

    `headers` should be case-insensitive (httpx's are).
    """
    limit = _number(headers.get("x-rate-limit-limit"))
    remaining = _number(headers.get("x-rate-limit-remaining"))
    reset = _number(headers.get("x-rate-limit-reset"))
    if limit is None and remaining is None:
        return None
    return BooksRateLimit(
        limit=None if limit is None else int(limit),
        remaining=None if remaining is None else int(remaining),
        reset_seconds=reset,
        seen_at=seen_at,
    )


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None
