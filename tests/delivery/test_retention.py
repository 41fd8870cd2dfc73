"""The retention purge keeps what a sink or a pull subscriber has not had yet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.delivery import DeadLetter, Retry
from bridge.services.retention import purge
from bridge.store import outbox
from bridge.store import subscriptions as subscription_store
from bridge.store.database import create_engine
from bridge.store.models import DeliveryRow, EventRow
from bridge.store.outbox import Failure, OutboxHook
from bridge.store.writer import EventWriter, backend_for
from tests.test_storage import NOW, _event, _request

from .conftest import BridgeFactory

LATER = NOW + timedelta(days=40)  # NOW's events are 40 days old by then


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _seqs(engine: AsyncEngine) -> tuple[list[int], list[int]]:
    async with engine.connect() as conn:
        events = (await conn.execute(select(EventRow.seq).order_by(EventRow.seq))).scalars().all()
        rows = (
            (await conn.execute(select(DeliveryRow.event_seq).order_by(DeliveryRow.event_seq)))
            .scalars()
            .all()
        )
    return list(events), list(rows)


async def test_purge_waits_for_sinks_and_subscriptions(engine: AsyncEngine) -> None:
    writer = EventWriter(
        backend_for(engine.url.render_as_string(hide_password=False)),
        in_transaction=[OutboxHook(("webhook",))],
    )
    await writer.start()
    try:
        for n in (1, 2, 3):
            await writer.write(_request(), [_event(f"old{n}", str(n))])
        young = _event("young", "4")
        await writer.write(_request(), [replace(young, received_at=LATER - timedelta(days=1))])
    finally:
        await writer.stop()
    claimed = await outbox.claim(engine, "webhook", "t", now=LATER, lease=timedelta(seconds=9),
                                 limit=10)  # fmt: skip
    by_seq = {c.message.seq: c.delivery_id for c in claimed}
    await outbox.mark_delivered(engine, [by_seq[1]], LATER)
    await outbox.mark_failed(engine, [
        Failure(by_seq[2], 1, DeadLetter(False), "refused"),
        Failure(by_seq[3], 1, Retry(LATER), "later"),
    ])  # fmt: skip
    await subscription_store.create(
        engine, name="slow", token_hash="0" * 64, source=None, module=None, operation=None,
        acked_seq=0, now=NOW,
    )  # fmt: skip

    assert await purge(engine, days=30, now=LATER) == 0  # the subscriber has acked nothing
    await subscription_store.set_cursor(engine, "slow", 3, LATER, forward_only=True)
    assert await purge(engine, days=30, now=LATER, batch=1) == 2  # seq 3 is still pending
    assert await _seqs(engine) == ([3, 4], [3, 4])

    await outbox.mark_delivered(engine, [by_seq[3], by_seq[4]], LATER)
    await subscription_store.set_cursor(engine, "slow", 4, LATER, forward_only=True)
    assert await purge(engine, days=30, now=LATER) == 1
    assert await _seqs(engine) == ([4], [4])  # one day old: kept
    assert await purge(engine, days=30, now=LATER + timedelta(days=30)) == 1
    assert await _seqs(engine) == ([], [])


async def test_serve_purges_periodically(bridge: BridgeFactory) -> None:
    offset = timedelta(0)

    def clock() -> datetime:
        return datetime.now(UTC) + offset

    async with bridge(clock=clock, retention_days=1, purge_interval_seconds=0.05) as b:
        await b.post_crm("1", "2")
        await asyncio.sleep(0.2)  # a few purge rounds: the events are too young
        assert (await b.status())["events"]["count"] == 2
        offset = timedelta(days=2)
        for _ in range(100):
            if (await b.status())["events"]["count"] == 0:
                break
            await asyncio.sleep(0.02)
        assert (await b.status())["events"]["count"] == 0
