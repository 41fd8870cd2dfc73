"""Spend an org's Zoho quota deliberately: every call reserves budget before it is sent.

Books: a per-minute rate well under Zoho's ~100/min/org plus this bridge's share of the
daily cap (zoho.md §6). CRM: a concurrency cap plus a daily credit budget over Zoho's
rolling 24 h window, costed per Zoho's credit table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bridge.zoho.connection import Connection
from bridge.zoho.errors import BudgetExhausted
from bridge.zoho.ports import BudgetStore

MINUTE = 60.0
DAY = 86_400.0
# Zoho counts a call when it arrives, we when we reserve; latency varies per call, so a
# minute window counted exactly could let Zoho see one call too many in its minute.
# Counting a slightly longer window absorbs up to this much latency jitter.
WINDOW_SLACK = 1.0
# A CRM call should never take this long; a crashed holder's slot frees itself after it.
CRM_SLOT_LEASE = 120.0


def coql_credits(limit: int) -> int:
    """Credits a COQL query costs by its LIMIT: 1 up to 200 rows, 2 up to 1,000, 3 up to
    2,000 (zoho.md §4.2, the published credit table)."""
    if limit <= 200:
        return 1
    if limit <= 1000:
        return 2
    return 3


@dataclass(frozen=True, slots=True)
class BudgetLeft:
    """What is left of a connection's budgets right now."""

    books_this_minute: int
    books_today: int
    crm_credits_today: int


class Budget:
    """Reserves Zoho quota per connection before a request is sent.

    A full per-minute window is waited out (at most `max_wait` seconds); a spent daily
    share raises `BudgetExhausted` at once, as does a CRM concurrency cap still full after
    `max_wait`. `window_slack` lengthens the counted minute to absorb latency.
    """

    def __init__(
        self,
        store: BudgetStore,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_wait: float = 90.0,
        poll: float = 0.05,
        window_slack: float = WINDOW_SLACK,
    ) -> None:
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._poll = poll
        self._slack = window_slack

    async def books(self, connection: Connection) -> None:
        """Reserve one Books request, waiting for the per-minute window if needed."""
        limits = connection.limits
        waited = 0.0
        while True:
            now = self._clock()
            day = await self._store.used(_key(connection, "books:day"), DAY, now)
            if day + 1 > limits.books_daily:
                raise BudgetExhausted(
                    f"{connection.name!r} spent its daily Books share ({limits.books_daily})"
                )
            minute = await self._store.reserve(
                _key(connection, "books:minute"),
                1,
                limits.books_per_minute,
                MINUTE + self._slack,
                now,
            )
            if minute.granted:
                break
            if waited + minute.retry_after > self._max_wait:
                raise BudgetExhausted(
                    f"{connection.name!r} is at {limits.books_per_minute} Books calls/min",
                    retry_after=minute.retry_after,
                )
            # Sleep a hair past the point where the oldest call leaves the window.
            pause = minute.retry_after + 0.001
            await self._sleep(pause)
            waited += pause
        day_reservation = await self._store.reserve(
            _key(connection, "books:day"), 1, limits.books_daily, DAY, self._clock()
        )
        if not day_reservation.granted:
            # Another replica took the last daily slot between our check and now.
            raise BudgetExhausted(f"{connection.name!r} spent its daily Books share")

    @asynccontextmanager
    async def crm(self, connection: Connection, credits: int = 1) -> AsyncIterator[None]:
        """Hold a CRM concurrency slot and spend `credits` for the duration of one call."""
        limits = connection.limits
        key = _key(connection, "crm:slots")
        waited = 0.0
        while (
            slot := await self._store.acquire(
                key, limits.crm_concurrency, CRM_SLOT_LEASE, self._clock()
            )
        ) is None:
            if waited >= self._max_wait:
                raise BudgetExhausted(f"{connection.name!r} is at its CRM concurrency cap")
            await asyncio.sleep(self._poll)  # real time: slots free when calls finish
            waited += self._poll
        try:
            spent = await self._store.reserve(
                _key(connection, "crm:credits"),
                credits,
                limits.crm_daily_credits,
                DAY,
                self._clock(),
            )
            if not spent.granted:
                raise BudgetExhausted(
                    f"{connection.name!r} spent its daily CRM credits ({limits.crm_daily_credits})",
                    retry_after=spent.retry_after,
                )
            yield
        finally:
            await self._store.release(key, slot)

    async def left(self, connection: Connection) -> BudgetLeft:
        """What is left of each budget of `connection` right now."""
        now = self._clock()
        limits = connection.limits
        minute = await self._store.used(_key(connection, "books:minute"), MINUTE + self._slack, now)
        day = await self._store.used(_key(connection, "books:day"), DAY, now)
        credits = await self._store.used(_key(connection, "crm:credits"), DAY, now)
        return BudgetLeft(
            books_this_minute=max(0, limits.books_per_minute - minute),
            books_today=max(0, limits.books_daily - day),
            crm_credits_today=max(0, limits.crm_daily_credits - credits),
        )


def _key(connection: Connection, what: str) -> str:
    return f"{connection.name}:{what}"
