"""Claiming outbox rows on both databases: lane heads only, leases, retries hold the lane."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.delivery import Retry
from bridge.store import outbox
from bridge.store.database import create_engine
from bridge.store.outbox import Failure, OutboxHook
from bridge.store.writer import EventWriter, backend_for
from tests.test_storage import NOW, _event, _request

LEASE = timedelta(seconds=30)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _claim(engine: AsyncEngine, at: timedelta = timedelta(0)) -> list[str]:
    rows = await outbox.claim(engine, "s", "me", now=NOW + at, lease=LEASE, limit=100)
    return [f"{r.message.record_id}{r.message.seq}" for r in rows]


async def _ids(engine: AsyncEngine) -> dict[str, int]:
    rows = await outbox.claim(engine, "s", "peek", now=NOW + timedelta(days=1), lease=LEASE,
                              limit=100)  # fmt: skip
    return {f"{r.message.record_id}{r.message.seq}": r.delivery_id for r in rows}


async def test_one_row_per_record_in_seq_order(engine: AsyncEngine) -> None:
    writer = EventWriter(
        backend_for(engine.url.render_as_string(hide_password=False)),
        in_transaction=[OutboxHook(("s",))],
    )
    await writer.start()
    for n, record in enumerate("ABACB"):
        await writer.write(_request(), [_event(f"k{n}", record)])
    await writer.stop()
    assert await _claim(engine) == ["A1", "B2", "C4"]
    assert await _claim(engine) == []  # leased: neither they nor their successors go out
    assert await _claim(engine, LEASE) == ["A1", "B2", "C4"]  # lease ran out: claimable again
    ids = await _ids(engine)
    await outbox.mark_delivered(engine, [ids["A1"]], NOW)
    await outbox.mark_failed(engine, [Failure(ids["B2"], 1, Retry(NOW + timedelta(days=2)), "x")])
    # B's next event waits behind its retrying first one; A moves on.
    assert await _claim(engine, timedelta(days=1, minutes=1)) == ["A3", "C4"]


async def test_rows_exist_only_with_their_event(engine: AsyncEngine) -> None:
    def refuse(*_: object) -> list[object]:
        raise IntegrityError("boom", None, Exception("boom"))

    writer = EventWriter(
        backend_for(engine.url.render_as_string(hide_password=False)),
        in_transaction=[OutboxHook(("s", "t")), refuse],
    )
    await writer.start()
    with pytest.raises(IntegrityError):
        await writer.write(_request(), [_event("gone")])
    writer.in_transaction.pop()
    await writer.write(_request(), [_event("kept", "K")])
    await writer.stop()
    assert [c[0] for c in await _claim(engine)] == ["K"]  # the refused event left no row
    assert len(await outbox.claim(engine, "t", "me", now=NOW, lease=LEASE, limit=9)) == 1
