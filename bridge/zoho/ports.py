"""The storage the Zoho client needs, as protocols the database adapters implement.

Both must be safe with several replicas on one database: `TokenStore.lock` serialises
refreshes of one connection across processes, and `BudgetStore` reserves atomically.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

from bridge.zoho.tokens import StoredToken


class TokenStore(Protocol):
    """Keeps each connection's access token and its recent token-request times."""

    async def load(self, connection: str) -> StoredToken | None:
        """The stored token of `connection`, or None if there is none."""
        ...

    async def save(self, connection: str, token: StoredToken) -> None:
        """Replace the stored token of `connection`."""
        ...

    def lock(self, connection: str) -> AbstractAsyncContextManager[None]:
        """Hold this while refreshing: one refresh per connection at a time, everywhere."""
        ...


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer to a reservation: granted, or how long until it could be."""

    granted: bool
    retry_after: float = 0.0
    used: int = 0


class BudgetStore(Protocol):
    """Counts spending per key in sliding windows, and leases concurrency slots."""

    async def reserve(
        self, key: str, cost: int, limit: int, window: float, now: float
    ) -> Reservation:
        """Atomically: if the spending on `key` in (now - window, now] plus `cost` stays
        within `limit`, record `cost` at `now` and grant; otherwise record nothing."""
        ...

    async def used(self, key: str, window: float, now: float) -> int:
        """The spending on `key` in (now - window, now]."""
        ...

    async def acquire(self, key: str, limit: int, lease: float, now: float) -> str | None:
        """Take one of `limit` slots on `key` for at most `lease` seconds; its id, or None
        when all are taken. Expired leases free their slot."""
        ...

    async def release(self, key: str, slot: str) -> None:
        """Give back a slot taken with `acquire`."""
        ...
