"""Scheduled work in the `serve` process (APScheduler 3.x triggers; the database's leases
decide which replica does each piece, so every replica may run every job)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bridge.services.channel_keeper import ChannelKeeper
from bridge.services.managed_channels import ManagedChannelService
from bridge.services.reconcile_loop import ReconcileLoop
from bridge.settings import Settings

log = structlog.get_logger(__name__)


def _guarded(name: str, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await job()
        except Exception as exc:  # a failed run must not stop the next one
            log.error("scheduled job failed", job=name, error=f"{type(exc).__name__}: {exc}")

    return run


async def renewal_cycle(keeper: ChannelKeeper, managed: ManagedChannelService) -> None:
    """Renew what is due, then re-check and report channels at risk."""
    await keeper.renew_due()
    await managed.problems(warn=True)


def start_scheduler(
    keeper: ChannelKeeper,
    managed: ManagedChannelService,
    reconcile: ReconcileLoop | None,
    settings: Settings,
) -> AsyncIOScheduler:
    """Start the jobs on the running event loop. Both run once at start-up too, so a
    restart repairs whatever lapsed while the bridge was down."""
    # APScheduler logs every run at INFO; our jobs log what matters themselves.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    scheduler = AsyncIOScheduler(timezone=UTC)
    now = datetime.now(UTC)
    scheduler.add_job(
        _guarded("renew channels", lambda: renewal_cycle(keeper, managed)), "interval",
        seconds=settings.channel_check_seconds, next_run_time=now, max_instances=1,
        coalesce=True, id="renew-channels", name="renew channels",
    )  # fmt: skip
    scheduler.add_job(
        _guarded("compare channels with Zoho", keeper.compare_with_zoho), "interval",
        minutes=settings.channel_reconcile_minutes, next_run_time=now, max_instances=1,
        coalesce=True, id="compare-channels", name="compare channels with Zoho",
    )  # fmt: skip
    if reconcile is not None:
        scheduler.add_job(
            _guarded("reconcile", reconcile.tick), "interval",
            seconds=settings.reconcile_tick_seconds, next_run_time=now, max_instances=1,
            coalesce=True, id="reconcile", name="reconcile watches",
        )  # fmt: skip
    scheduler.start()
    return scheduler
