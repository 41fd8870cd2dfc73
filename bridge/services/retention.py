"""The retention purge: events past `BRIDGE_RETENTION_DAYS` that every consumer has had.

Run on demand (`zoho-bridge purge`) and periodically by `serve`. Several replicas may
purge at once: each batch deletes only rows it can still see, so the work never doubles
up in effect, only in effort.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.delivery import purge_ceiling, retention_cutoff
from bridge.errors import BridgeError
from bridge.store import subscriptions
from bridge.store.retention import purge_batch

log = structlog.get_logger(__name__)


async def purge(engine: AsyncEngine, *, days: int, now: datetime, batch: int = 1000) -> int:
    """Delete every purgeable event; returns how many were deleted."""
    cutoff = retention_cutoff(now, days)
    ceiling = purge_ceiling(await subscriptions.lowest_acked(engine))
    total = 0
    while True:
        deleted = await purge_batch(engine, cutoff=cutoff, ceiling=ceiling, limit=batch)
        total += deleted
        if deleted < batch:
            return total
        await asyncio.sleep(0)  # let the ingest path in between batches


class PurgeLoop:
    """Runs `purge` every `interval` seconds until stopped."""

    def __init__(
        self, engine: AsyncEngine, days: int, interval: float, clock: Callable[[], datetime]
    ) -> None:
        self._engine, self._days, self._interval, self._clock = engine, days, interval, clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retention-purge")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                deleted = await purge(self._engine, days=self._days, now=self._clock())
                if deleted:
                    log.info("retention purge", deleted=deleted, days=self._days)
            except BridgeError as exc:
                log.warning("retention purge failed", error=exc.message)
