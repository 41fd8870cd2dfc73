"""Contract suites every TokenStore and BudgetStore must pass.

The in-memory stores run them here; a database-backed store reuses them by subclassing
and overriding the `store` fixture.
"""

from __future__ import annotations

import asyncio

import pytest

from bridge.zoho.ports import BudgetStore, TokenStore
from bridge.zoho.tokens import StoredToken


class TokenStoreContract:
    @pytest.fixture
    def store(self) -> TokenStore:
        raise NotImplementedError

    async def test_load_missing_is_none(self, store: TokenStore) -> None:
        assert await store.load("nobody") is None

    async def test_save_then_load_round_trips(self, store: TokenStore) -> None:
        token = StoredToken("a", "https://api", 123.5, (1.0, 2.0))
        await store.save("acme", token)
        assert await store.load("acme") == token
        await store.save("acme", StoredToken(requested_at=(3.0,)))
        assert await store.load("acme") == StoredToken(requested_at=(3.0,))

    async def test_lock_is_exclusive_per_connection(self, store: TokenStore) -> None:
        inside: list[str] = []
        overlap: list[bool] = []

        async def hold(name: str) -> None:
            async with store.lock("acme"):
                overlap.append(bool(inside))
                inside.append(name)
                await asyncio.sleep(0.01)
                inside.remove(name)

        await asyncio.gather(*(hold(str(i)) for i in range(5)))
        assert overlap == [False] * 5

    async def test_locks_of_different_connections_do_not_block(self, store: TokenStore) -> None:
        async with store.lock("a"):
            await asyncio.wait_for(_enter(store, "b"), timeout=1.0)


async def _enter(store: TokenStore, name: str) -> None:
    async with store.lock(name):
        pass


class BudgetStoreContract:
    @pytest.fixture
    def store(self) -> BudgetStore:
        raise NotImplementedError

    async def test_reserve_within_limit_then_refuse(self, store: BudgetStore) -> None:
        for i in range(3):
            granted = await store.reserve("k", 1, 3, 60.0, 100.0 + i)
            assert granted.granted
        refused = await store.reserve("k", 1, 3, 60.0, 103.0)
        assert not refused.granted
        assert refused.retry_after == pytest.approx(57.0)  # the first leaves at 160 s
        assert await store.used("k", 60.0, 103.0) == 3

    async def test_spending_leaves_the_window(self, store: BudgetStore) -> None:
        await store.reserve("k", 2, 2, 60.0, 0.0)
        assert not (await store.reserve("k", 1, 2, 60.0, 59.9)).granted
        assert (await store.reserve("k", 1, 2, 60.0, 60.0)).granted
        assert await store.used("k", 60.0, 60.0) == 1

    async def test_costs_and_keys_are_separate(self, store: BudgetStore) -> None:
        assert (await store.reserve("a", 3, 5, 60.0, 0.0)).granted
        assert not (await store.reserve("a", 3, 5, 60.0, 1.0)).granted
        assert (await store.reserve("b", 3, 5, 60.0, 1.0)).granted

    async def test_concurrent_reservations_never_overspend(self, store: BudgetStore) -> None:
        results = await asyncio.gather(*(store.reserve("k", 1, 4, 60.0, 0.0) for _ in range(10)))
        assert sum(r.granted for r in results) == 4

    async def test_slots_are_limited_released_and_expire(self, store: BudgetStore) -> None:
        first = await store.acquire("s", 2, 10.0, 0.0)
        second = await store.acquire("s", 2, 10.0, 0.0)
        assert first is not None
        assert second is not None
        assert await store.acquire("s", 2, 10.0, 1.0) is None
        await store.release("s", first)
        assert await store.acquire("s", 2, 10.0, 1.0) is not None
        assert await store.acquire("s", 2, 10.0, 10.5) is not None  # `second` expired at 10
