"""In-memory token and budget stores: one process, and the tests."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bridge.zoho.ports import Reservation
from bridge.zoho.tokens import StoredToken


class MemoryTokenStore:
    """A `TokenStore` in a dict, locked with one asyncio lock per connection."""

    def __init__(self) -> None:
        self._tokens: dict[str, StoredToken] = {}
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def load(self, connection: str) -> StoredToken | None:
        return self._tokens.get(connection)

    async def save(self, connection: str, token: StoredToken) -> None:
        self._tokens[connection] = token

    @asynccontextmanager
    async def lock(self, connection: str) -> AsyncIterator[None]:
        async with self._locks[connection]:
            yield


class MemoryBudgetStore:
    """A `BudgetStore` keeping a log of (time, cost) per key and leases in dicts.

    Each method runs without awaiting, so on one event loop it is atomic.
    """

    def __init__(self) -> None:
        self._spent: defaultdict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._leases: defaultdict[str, dict[str, float]] = defaultdict(dict)

    def _window(self, key: str, window: float, now: float) -> int:
        log = self._spent[key]
        # The log is kept for the longest window asked about; shorter ones filter.
        return sum(cost for at, cost in log if now - at < window)

    def _trim(self, key: str, keep: float, now: float) -> None:
        log = self._spent[key]
        while log and now - log[0][0] >= keep:
            log.popleft()

    async def reserve(
        self, key: str, cost: int, limit: int, window: float, now: float
    ) -> Reservation:
        self._trim(key, window, now)
        used = self._window(key, window, now)
        if used + cost > limit:
            return Reservation(False, self._free_in(key, cost, limit, window, now), used)
        self._spent[key].append((now, cost))
        return Reservation(True, 0.0, used + cost)

    def _free_in(self, key: str, cost: int, limit: int, window: float, now: float) -> float:
        """Seconds until enough old spending leaves the window for `cost` to fit."""
        excess = self._window(key, window, now) + cost - limit
        for at, spent in self._spent[key]:
            if now - at >= window:
                continue
            excess -= spent
            if excess <= 0:
                return max(0.0, at + window - now)
        return window

    async def used(self, key: str, window: float, now: float) -> int:
        return self._window(key, window, now)

    async def acquire(self, key: str, limit: int, lease: float, now: float) -> str | None:
        slots = self._leases[key]
        for slot, until in list(slots.items()):
            if until <= now:
                del slots[slot]
        if len(slots) >= limit:
            return None
        slot = uuid.uuid4().hex
        slots[slot] = now + lease
        return slot

    async def release(self, key: str, slot: str) -> None:
        self._leases[key].pop(slot, None)
