"""Claiming outbox rows on both databases: lane heads only, leases, retries hold the lane."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.delivery import Retry, record_key
from bridge.errors import BridgeError
from bridge.store import outbox
from bridge.store.database import create_engine, create_relay_engine
from bridge.store.models import DeliveryRow
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


async def test_a_batchs_rows_are_stored_as_built_in_seq_order_per_sink(
    engine: AsyncEngine,
) -> None:
    """Many events in one batch, two sinks: every row as `OutboxHook` built it, and in each
    sink row ids follow seq (the claim's lane head is the lowest id, so a record's events go
    out in id order)."""
    writer = EventWriter(
        backend_for(engine.url.render_as_string(hide_password=False)),
        max_batch=64,
        in_transaction=[OutboxHook(("s", "t"))],
    )
    await writer.start()
    results = await asyncio.gather(
        *(writer.write(_request(), [_event(f"b{n}", "ABC"[n % 3])]) for n in range(48))
    )
    await writer.stop()
    events = {e.seq: e for r in results for e in r.inserted}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(*DeliveryRow.__table__.columns).order_by(DeliveryRow.id))
        ).all()
    assert len(rows) == 2 * len(events) == 96
    for sink in "st":
        seqs = [row.event_seq for row in rows if row.sink == sink]
        assert seqs == sorted(events)
    for row in rows:
        event = events[row.event_seq]
        assert (row.record_key, row.status, row.attempts, row.replay, row.lease_until) == (
            record_key(event.source, event.module, event.record_id),
            "pending",
            0,
            False,
            None,
        )
        assert row.next_attempt_at == row.created_at == event.received_at


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


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_relay_engine_on_new_connections_after_postgres_dropped_them(
    database_url: str,
) -> None:
    """The relay's engine does not check a pooled connection before each use (that cost
    three round trips per claim and per settlement): when PostgreSQL drops its
    connections (a restart, an administrator), the next statement fails as a database
    error the relay retries, and the one after runs on a new connection. Claims and
    settlements commit each on its own, so nothing is left half done."""
    writer = EventWriter(backend_for(database_url), in_transaction=[OutboxHook(("s",))])
    await writer.start()
    for n, record in enumerate("AB"):
        await writer.write(_request(), [_event(f"k{n}", record)])
    await writer.stop()
    relay = create_relay_engine(database_url)
    try:
        [first] = await outbox.claim(relay, "s", "me", now=NOW, lease=LEASE, limit=1)
        admin = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            dropped = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await admin.close()
        assert dropped >= 1
        with pytest.raises(BridgeError):
            await outbox.settle(relay, [first.delivery_id], [], [], NOW)
        await outbox.settle(relay, [first.delivery_id], [], [], NOW)
        [second] = await outbox.claim(relay, "s", "me", now=NOW, lease=LEASE, limit=5)
        assert (first.message.record_id, second.message.record_id) == ("A", "B")
    finally:
        await relay.dispose()
