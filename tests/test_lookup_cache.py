"""The ingest path's lookup cache: one database read per key at a time, however many wait."""

from __future__ import annotations

import asyncio

import pytest

from bridge.services.lookup import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class SlowLoader:
    """Counts reads; each read returns its number once released."""

    def __init__(self) -> None:
        self.reads = 0
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self, key: str) -> str:
        self.reads += 1
        number = self.reads
        await self.release.wait()
        if self.fail:
            raise ConnectionError("database went away")
        return f"{key}#{number}"


async def test_concurrent_misses_share_one_read() -> None:
    loader, clock = SlowLoader(), Clock()
    cache: TTLCache[str] = TTLCache(5.0, loader, clock)
    waiting = [asyncio.ensure_future(cache.get("ch")) for _ in range(50)]
    await asyncio.sleep(0)
    loader.release.set()
    assert set(await asyncio.gather(*waiting)) == {"ch#1"}
    assert loader.reads == 1
    assert await cache.get("ch") == "ch#1"  # cached
    clock.now += 5.0  # expired: read again, once
    assert await asyncio.gather(*(cache.get("ch") for _ in range(10))) == ["ch#2"] * 10
    assert loader.reads == 2


async def test_a_read_started_before_invalidation_is_not_cached() -> None:
    loader = SlowLoader()
    cache: TTLCache[str] = TTLCache(5.0, loader, Clock())
    first = asyncio.ensure_future(cache.get("ch"))
    await asyncio.sleep(0)
    cache.invalidate("ch")  # e.g. a token was rotated through this process
    second = asyncio.ensure_future(cache.get("ch"))  # does not join the stale read
    await asyncio.sleep(0)
    loader.release.set()
    assert (await first, await second) == ("ch#1", "ch#2")
    assert await cache.get("ch") == "ch#2" and loader.reads == 2


async def test_a_failed_read_reaches_every_waiter_and_is_not_cached() -> None:
    loader = SlowLoader()
    loader.fail = True
    cache: TTLCache[str] = TTLCache(5.0, loader, Clock())
    waiting = [asyncio.ensure_future(cache.get("ch")) for _ in range(5)]
    await asyncio.sleep(0)
    loader.release.set()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    loader.fail = False
    assert await cache.get("ch") == "ch#2"


async def test_a_caller_that_goes_away_does_not_cancel_the_read() -> None:
    loader = SlowLoader()
    cache: TTLCache[str] = TTLCache(5.0, loader, Clock())
    leaving = asyncio.ensure_future(cache.get("ch"))
    staying = asyncio.ensure_future(cache.get("ch"))
    await asyncio.sleep(0)
    leaving.cancel()
    loader.release.set()
    assert await staying == "ch#1"
    with pytest.raises(asyncio.CancelledError):
        await leaving
