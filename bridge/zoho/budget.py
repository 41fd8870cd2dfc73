"""Spend an org's Zoho quota deliberately: every call reserves budget before it is sent.

Books: a per-minute rate well under Zoho's ~100/min/org plus this bridge's share of the
daily cap (zoho.md §6). CRM: a concurrency cap plus a daily credit budget over Zoho's
rolling 24 h window, costed per Zoho's credit table. Reconciliation calls also reserve on
keys of their own, capped at a share of each budget (`shares.Shares`), so channel renewal
always keeps headroom.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bridge.zoho.connection import Connection
from bridge.zoho.errors import BudgetExhausted
from bridge.zoho.ports import BudgetStore
from bridge.zoho.ratelimit import BooksRateLimit, parse_books_rate_limit
from bridge.zoho.shares import Purpose, Shares

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
    """What is left of a connection's budgets right now (the `reconcile_` fields: of
    reconciliation's daily shares)."""

    books_this_minute: int
    books_today: int
    crm_credits_today: int
    reconcile_books_today: int = 0
    reconcile_crm_credits_today: int = 0


class Budget:
    """Reserves Zoho quota per connection before a request is sent.

    A full per-minute window is waited out (at most `max_wait` seconds); a spent daily
    budget or share raises `BudgetExhausted` at once (with `retry_after`, seconds until
    the window frees), as does a CRM concurrency cap still full after `max_wait`.
    `window_slack` lengthens the counted minute to absorb latency. A `reconcile` call
    reserves on the overall keys and on reconciliation's own keys, capped by `shares`.
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
        shares: Shares | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self._poll = poll
        self._slack = window_slack
        self.shares = shares or Shares()
        # Per process: each replica learns the headers from its own answers.
        self._rate_limits: dict[str, BooksRateLimit] = {}

    async def books(self, connection: Connection, purpose: Purpose = "check") -> None:
        """Reserve one Books request, waiting for the per-minute window(s) if needed."""
        limits = connection.limits
        day = await self._store.used(_key(connection, "books:day"), DAY, self._clock())
        if day + 1 > limits.books_daily:
            raise BudgetExhausted(
                f"{connection.name!r} spent its daily Books share ({limits.books_daily})"
            )
        if purpose == "reconcile":
            self._check_headroom(connection)
            share = self.shares.books_daily(limits)
            spent = await self._store.reserve(
                _key(connection, "books:day:reconcile"), 1, share, DAY, self._clock()
            )
            if not spent.granted:
                raise BudgetExhausted(
                    f"{connection.name!r} spent reconciliation's daily Books share ({share})",
                    retry_after=spent.retry_after,
                )
            await self._wait_window(
                connection,
                "books:minute:reconcile",
                self.shares.books_per_minute(limits),
                "reconciliation Books calls/min",
            )
        await self._wait_window(
            connection, "books:minute", limits.books_per_minute, "Books calls/min"
        )
        day_reservation = await self._store.reserve(
            _key(connection, "books:day"), 1, limits.books_daily, DAY, self._clock()
        )
        if not day_reservation.granted:
            # Another replica took the last daily slot between our check and now.
            raise BudgetExhausted(
                f"{connection.name!r} spent its daily Books share",
                retry_after=day_reservation.retry_after,
            )

    async def _wait_window(self, connection: Connection, what: str, limit: int, label: str) -> None:
        waited = 0.0
        while True:
            minute = await self._store.reserve(
                _key(connection, what), 1, limit, MINUTE + self._slack, self._clock()
            )
            if minute.granted:
                return
            if waited + minute.retry_after > self._max_wait:
                raise BudgetExhausted(
                    f"{connection.name!r} is at {limit} {label}", retry_after=minute.retry_after
                )
            # Sleep a hair past the point where the oldest call leaves the window.
            pause = minute.retry_after + 0.001
            await self._sleep(pause)
            waited += pause

    def _check_headroom(self, connection: Connection) -> None:
        latest = self._rate_limits.get(connection.name)
        if latest is None:
            return
        wait = latest.wait(self._clock(), self.shares.books_headroom)
        if wait > 0:
            raise BudgetExhausted(
                f"{connection.name!r}: Zoho Books reports {latest.remaining} calls left today "
                f"(headroom {self.shares.books_headroom}); reconciliation waits for the reset",
                retry_after=wait,
            )

    @asynccontextmanager
    async def crm(
        self, connection: Connection, credits: int = 1, purpose: Purpose = "check"
    ) -> AsyncIterator[None]:
        """Hold a CRM concurrency slot and spend `credits` for the duration of one call."""
        limits = connection.limits
        held: list[tuple[str, str]] = []
        try:
            if purpose == "reconcile":
                key = _key(connection, "crm:slots:reconcile")
                share = self.shares.crm_concurrency(limits)
                held.append((key, await self._slot(connection, key, share, "reconcile share")))
            key = _key(connection, "crm:slots")
            held.append((key, await self._slot(connection, key, limits.crm_concurrency, "cap")))
            overall = _key(connection, "crm:credits")
            if purpose == "reconcile":
                used = await self._store.used(overall, DAY, self._clock())
                if used + credits > limits.crm_daily_credits:
                    raise BudgetExhausted(
                        f"{connection.name!r} spent its daily CRM credits "
                        f"({limits.crm_daily_credits})"
                    )
                share = self.shares.crm_daily_credits(limits)
                mine = await self._store.reserve(
                    _key(connection, "crm:credits:reconcile"), credits, share, DAY, self._clock()
                )
                if not mine.granted:
                    raise BudgetExhausted(
                        f"{connection.name!r} spent reconciliation's daily CRM credits ({share})",
                        retry_after=mine.retry_after,
                    )
            spent = await self._store.reserve(
                overall, credits, limits.crm_daily_credits, DAY, self._clock()
            )
            if not spent.granted:
                raise BudgetExhausted(
                    f"{connection.name!r} spent its daily CRM credits ({limits.crm_daily_credits})",
                    retry_after=spent.retry_after,
                )
            yield
        finally:
            for key, slot in reversed(held):
                await self._store.release(key, slot)

    async def _slot(self, connection: Connection, key: str, limit: int, label: str) -> str:
        waited = 0.0
        while (
            slot := await self._store.acquire(key, limit, CRM_SLOT_LEASE, self._clock())
        ) is None:
            if waited >= self._max_wait:
                raise BudgetExhausted(f"{connection.name!r} is at its CRM concurrency {label}")
            await asyncio.sleep(self._poll)  # real time: slots free when calls finish
            waited += self._poll
        return slot

    def note_books_rate_limit(
        self, connection: Connection, headers: Mapping[str, str]
    ) -> BooksRateLimit | None:
        """Remember the `X-Rate-Limit-*` headers of a Books answer, if it has them."""
        found = parse_books_rate_limit(headers, self._clock())
        if found is not None:
            self._rate_limits[connection.name] = found
        return found

    def books_rate_limit(self, connection: Connection) -> BooksRateLimit | None:
        """The latest rate-limit headers this process saw for `connection`'s Books org."""
        return self._rate_limits.get(connection.name)

    async def left(self, connection: Connection) -> BudgetLeft:
        """What is left of each budget of `connection` right now."""
        now = self._clock()
        limits = connection.limits
        minute = await self._store.used(_key(connection, "books:minute"), MINUTE + self._slack, now)
        day = await self._store.used(_key(connection, "books:day"), DAY, now)
        credits = await self._store.used(_key(connection, "crm:credits"), DAY, now)
        books_mine = await self._store.used(_key(connection, "books:day:reconcile"), DAY, now)
        crm_mine = await self._store.used(_key(connection, "crm:credits:reconcile"), DAY, now)
        return BudgetLeft(
            books_this_minute=max(0, limits.books_per_minute - minute),
            books_today=max(0, limits.books_daily - day),
            crm_credits_today=max(0, limits.crm_daily_credits - credits),
            reconcile_books_today=max(0, self.shares.books_daily(limits) - books_mine),
            reconcile_crm_credits_today=max(0, self.shares.crm_daily_credits(limits) - crm_mine),
        )


def _key(connection: Connection, what: str) -> str:
    return f"{connection.name}:{what}"
