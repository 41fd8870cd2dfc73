"""Why a Zoho call is made, and how much of a connection's quota reconciliation may take.

Channel renewal must never be starved by the poller (a lapsed channel loses every change
until the next catch-up), so reconciliation gets a fixed share of each budget: by default
20 % of the per-minute budgets and 10 % of the daily ones (reconciliation.md e #11). The
shares are counted on their own keys in the shared `BudgetStore`, so all replicas together
stay inside them. Pure arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.zoho.connection import Limits

# renewal: the channel keeper; token: OAuth refreshes; check: connection checks and
# anything unlabelled (today's behaviour, uncapped); reconcile: the poller, capped.
Purpose = Literal["renewal", "token", "check", "reconcile"]
PURPOSES: tuple[Purpose, ...] = ("renewal", "token", "check", "reconcile")


@dataclass(frozen=True, slots=True)
class Shares:
    """Reconciliation's share of each budget of a connection's `Limits`.

    `per_minute` applies to Books calls per minute and to CRM concurrency slots; `daily`
    to Books calls per day and CRM credits per day. `books_headroom`: reconciliation stops
    calling Books once Zoho reports this few calls left today (`X-Rate-Limit-Remaining`).
    """

    per_minute: float = 0.2
    daily: float = 0.1
    books_headroom: int = 50

    def __post_init__(self) -> None:
        for name in ("per_minute", "daily"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"share {name} must be in (0, 1], got {value}")
        if self.books_headroom < 0:
            raise ValueError("books_headroom must not be negative")

    def books_per_minute(self, limits: Limits) -> int:
        """Reconciliation's Books calls per minute (at least one)."""
        return max(1, int(limits.books_per_minute * self.per_minute))

    def books_daily(self, limits: Limits) -> int:
        """Reconciliation's Books calls per day (at least one)."""
        return max(1, int(limits.books_daily * self.daily))

    def crm_concurrency(self, limits: Limits) -> int:
        """Reconciliation's concurrent CRM calls: at least one slot, so a Free org (five
        slots, zoho.md §6) still polls, one call at a time."""
        return max(1, int(limits.crm_concurrency * self.per_minute))

    def crm_daily_credits(self, limits: Limits) -> int:
        """Reconciliation's CRM credits per rolling 24 h (at least one)."""
        return max(1, int(limits.crm_daily_credits * self.daily))
