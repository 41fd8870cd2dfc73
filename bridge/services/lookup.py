"""Sources and channels as the ingest path needs them, cached briefly in memory.

Each webhook would otherwise read its source or channel from the database. Entries live
`ttl` seconds (BRIDGE_LOOKUP_CACHE_SECONDS), so a change made through another replica is
seen within that time; changes made through this process invalidate at once. Misses are
cached for at most a second, so a newly imported channel is found quickly. Concurrent misses
for one key share one database read: when an entry expires under load, the deliveries
arriving meanwhile wait for that read rather than each starting their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.secretbox import SecretBox
from bridge.store.channels import ChannelInfo, get_channel
from bridge.store.sources import SourceInfo, get_source

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VerifiableSource:
    """A source with its HMAC secrets decrypted, ready to verify with."""

    info: SourceInfo
    secrets: tuple[str, ...]


@dataclass
class TTLCache(Generic[T]):
    ttl: float
    load: Callable[[str], Awaitable[T | None]]
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, tuple[float, T | None]] = field(default_factory=dict)
    _loading: dict[str, asyncio.Task[T | None]] = field(default_factory=dict)

    async def get(self, key: str) -> T | None:
        hit = self._entries.get(key)
        if hit is not None and hit[0] > self.clock():
            return hit[1]
        task = self._loading.get(key)
        if task is None:
            task = asyncio.ensure_future(self._load(key))
            task.add_done_callback(_retrieve)
            self._loading[key] = task
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        return await asyncio.shield(task)

    async def _load(self, key: str) -> T | None:
        started = self.clock()
        try:
            value = await self.load(key)
        finally:
            current = self._loading.get(key) is asyncio.current_task()
            if current:
                del self._loading[key]
        lifetime = self.ttl if value is not None else min(self.ttl, 1.0)
        if current and lifetime > 0:  # not if invalidated meanwhile: it may be stale
            if len(self._entries) > 10_000:
                self._entries.clear()  # junk names must not grow memory without bound
            self._entries[key] = (started + lifetime, value)
        return value

    def invalidate(self, key: str | None = None) -> None:
        if key is None:
            self._entries.clear()
            self._loading.clear()
        else:
            self._entries.pop(key, None)
            self._loading.pop(key, None)


def _retrieve(task: asyncio.Task[object]) -> None:
    # Every waiter may have gone; the exception is theirs to see, not the loop's to log.
    if not task.cancelled():
        task.exception()


class Lookup:
    """Cached reads of sources (with decrypted secrets) and channels."""

    def __init__(self, engine: AsyncEngine, box: SecretBox, ttl: float) -> None:
        self._engine = engine
        self._box = box
        self._sources: TTLCache[VerifiableSource] = TTLCache(ttl, self._load_source)
        self._channels: TTLCache[ChannelInfo] = TTLCache(ttl, self._load_channel)

    async def _load_source(self, name: str) -> VerifiableSource | None:
        info = await get_source(self._engine, name)
        if info is None:
            return None
        secrets = tuple(self._box.decrypt(s) for s in info.secrets_encrypted)
        return VerifiableSource(info, secrets)

    async def _load_channel(self, channel_id: str) -> ChannelInfo | None:
        return await get_channel(self._engine, channel_id)

    async def source(self, name: str) -> VerifiableSource | None:
        return await self._sources.get(name)

    async def channel(self, channel_id: str) -> ChannelInfo | None:
        return await self._channels.get(channel_id)

    def forget_source(self, name: str | None = None) -> None:
        self._sources.invalidate(name)

    def forget_channel(self, channel_id: str | None = None) -> None:
        self._channels.invalidate(channel_id)
