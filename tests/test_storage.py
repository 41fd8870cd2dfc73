"""The storage contract, on SQLite and PostgreSQL: the writer, migrations, schema drift."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import sqlite3
import statistics
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.envelope import envelope_bytes, envelope_head
from bridge.domain.events import Event, EventFilter, Operation, Origin, Product
from bridge.domain.ids import new_ulid
from bridge.domain.requests import InboundRequest
from bridge.store.database import create_engine
from bridge.store.event_queries import get_event
from bridge.store.events_envelopes import envelope_page
from bridge.store.migrate import alembic_config, current_revision, head_revision, schema_is_current
from bridge.store.models import EventRow, RequestRow
from bridge.store.writer import EventWriter, backend_for
from tests.conftest import POSTGRES_URL, _admin_sql, _with_database, migrate

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[EventWriter]:
    writer = EventWriter(backend_for(database_url), max_batch=64)
    await writer.start()
    yield writer
    await writer.stop()


def _event(key: str, record: str = "1") -> Event:
    return Event(
        Product.CRM, "acme", "Leads", Operation.UPDATED, record, NOW, Origin.WEBHOOK, key, {"k": 1},
        id=new_ulid(NOW), received_at=NOW,
    )  # fmt: skip


def _request(request_id: str | None = None) -> InboundRequest:
    return InboundRequest(
        id=request_id or new_ulid(NOW), received_at=NOW, kind="crm", source=None, method="POST",
        path="/hooks/crm", query="", headers={}, body=b"{}", body_size=2, body_truncated=False,
        remote_addr=None, http_status=200,
    )  # fmt: skip


async def test_seq_follows_commit_order_across_batches(
    writer: EventWriter, engine: AsyncEngine
) -> None:
    results = await asyncio.gather(
        *(writer.write(_request(), [_event(f"k{i}", str(i))]) for i in range(300))
    )
    seqs = [r.inserted[0].seq for r in results]
    assert seqs == sorted(seqs)  # queued in order, committed in order
    assert len(set(seqs)) == 300
    async with engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(EventRow)) == 300
        assert await conn.scalar(select(func.count()).select_from(RequestRow)) == 300


async def test_duplicates_within_and_across_batches(writer: EventWriter) -> None:
    first, second = await asyncio.gather(
        writer.write(_request(), [_event("same"), _event("other", "2")]),
        writer.write(_request(), [_event("same")]),
    )
    assert (len(first.inserted), first.duplicates) == (2, 0)
    assert (len(second.inserted), second.duplicates, second.status) == (0, 1, "duplicate")
    later = await writer.write(_request(), [_event("same")])
    assert later.status == "duplicate"


async def test_stored_requests_say_which_deliveries_were_duplicates(
    writer: EventWriter, engine: AsyncEngine
) -> None:
    first, again, mixed, ping = _request(), _request(), _request(), _request()
    await asyncio.gather(
        writer.write(first, [_event("dup-a"), _event("dup-b", "2")]),
        writer.write(again, [_event("dup-a")]),  # same batch, same key: a duplicate
        writer.write(mixed, [_event("dup-b", "2"), _event("dup-c", "3")]),  # one of two new
        writer.write(ping),  # no events
    )
    later = _request()
    await writer.write(later, [_event("dup-c", "3")])  # a later batch: duplicate
    async with engine.connect() as conn:
        rows = dict(
            (r.id, (r.status, r.event_count))
            for r in await conn.execute(
                select(RequestRow.id, RequestRow.status, RequestRow.event_count)
            )
        )
    assert rows == {
        first.id: ("accepted", 2),
        again.id: ("duplicate", 0),
        mixed.id: ("accepted", 1),
        ping.id: ("accepted", 0),
        later.id: ("duplicate", 0),
    }


async def test_reported_ids_and_seqs_are_the_stored_ones(
    writer: EventWriter, engine: AsyncEngine
) -> None:
    # All new in one batch, then a batch that mixes new events with duplicates: the
    # (id, seq) each delivery is told must be its row's, however the backend learns them.
    first = await asyncio.gather(
        *(writer.write(_request(), [_event(f"s{i}", str(i))]) for i in range(40))
    )
    async with engine.begin() as conn:  # a gap in seq, as retention leaves
        await conn.execute(EventRow.__table__.delete().where(EventRow.dedup_key == "s39"))
    second = await asyncio.gather(
        *(writer.write(_request(), [_event(f"s{i}", str(i))]) for i in range(30, 60))
    )
    reported = {e.id: e.seq for r in first[:39] + second for e in r.inserted}
    assert len(reported) == 39 + 21  # s39 was deleted, so it is new again
    async with engine.connect() as conn:
        stored = {r.id: r.seq for r in await conn.execute(select(EventRow.id, EventRow.seq))}
    assert stored == reported


async def test_the_sqlite_disk_thread_hands_back_results_and_errors_in_order() -> None:
    from bridge.store.disk_thread import DiskThread

    def fail() -> None:
        raise sqlite3.OperationalError("disk I/O error")

    disk = DiskThread("test-disk")
    try:
        assert await disk.run(lambda: threading.current_thread().name) == "test-disk"
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            await disk.run(fail)
        order: list[int] = []
        await asyncio.gather(*(disk.run(lambda i=i: order.append(i)) for i in range(50)))
        assert order == list(range(50))  # one at a time, in the order asked
    finally:
        disk.stop()


async def test_one_bad_delivery_does_not_fail_its_batch(writer: EventWriter) -> None:
    shared_id = new_ulid(NOW)
    results = await asyncio.gather(
        writer.write(_request(), [_event("a")]),
        writer.write(_request(shared_id), [_event("b")]),
        writer.write(_request(shared_id), [_event("c")]),  # same request id: refused
        writer.write(_request(), [_event("d")]),
        return_exceptions=True,
    )
    assert [type(r).__name__ for r in results[:2] + results[3:]] == ["WriteResult"] * 3
    # The driver's own integrity error, whichever driver it is.
    assert "unique" in str(results[2]).lower() or "UNIQUE" in str(results[2])


async def test_stop_commits_what_was_queued(database_url: str) -> None:
    writer = EventWriter(backend_for(database_url))
    await writer.start()
    pending = [
        asyncio.ensure_future(writer.write(_request(), [_event(f"s{i}")])) for i in range(50)
    ]
    await asyncio.sleep(0)
    await writer.stop()
    assert all(p.done() and not p.exception() for p in pending)


async def test_write_before_start_is_an_error(database_url: str) -> None:
    writer = EventWriter(backend_for(database_url))
    with pytest.raises(RuntimeError, match="start"):
        await writer.write(_request())
    await writer.stop()


async def test_event_data_round_trips(writer: EventWriter, engine: AsyncEngine) -> None:
    data = {"name": "Zoë", "nested": {"list": [1, 2.5, None, True]}, "emoji": "✓"}
    event = _event("rt")
    event = replace(event, data=data)
    await writer.write(_request(), [event])
    async with engine.connect() as conn:
        row = (await conn.execute(select(EventRow.data, EventRow.occurred_at))).one()
    assert row.data == data
    assert row.occurred_at == NOW


async def test_stored_events_are_read_back_as_the_envelope_bytes_every_sink_sends(
    writer: EventWriter, engine: AsyncEngine
) -> None:
    """The writer stores each event's envelope head (migration 0011); the pull page written
    from it is, byte for byte on SQLite, what `envelope_bytes` gives for the stored event."""
    odd = replace(_event("odd", 'quote " back \\ ctl \x01 \u2028 ✓'), module="Custom_Mod")
    await writer.write(_request(), [_event("plain"), odd])
    async with engine.connect() as conn:
        heads = (await conn.execute(select(EventRow.envelope_head))).scalars().all()
    assert all(head and head.endswith('"bridgeseq":') for head in heads), heads
    page, _ = await envelope_page(engine, EventFilter(), after_seq=0, limit=10)
    assert len(page) == 2
    for envelope in page:
        stored = await get_event(engine, str(json.loads(envelope)["bridgeseq"]))
        assert stored is not None
        expected = envelope_bytes(stored)
        if engine.dialect.name == "sqlite":
            assert envelope == expected
        else:  # PostgreSQL prints jsonb `data` its own way
            assert json.loads(envelope) == json.loads(expected)
            assert envelope.split(b',"data":')[0] == expected.split(b',"data":')[0]


async def test_offset_times_are_stored_as_the_same_instant(
    writer: EventWriter, engine: AsyncEngine
) -> None:
    minus_four = timezone(timedelta(hours=-4))
    event = _event("tz")
    local = datetime(2026, 3, 5, 20, 30, 0, 7, tzinfo=minus_four)
    event = replace(event, occurred_at=local)
    await writer.write(_request(), [event])
    async with engine.connect() as conn:
        stored = await conn.scalar(select(EventRow.occurred_at))
    assert stored == local and stored.utcoffset() == timedelta(0)


async def test_a_held_sqlite_write_lock_is_waited_for_without_blocking_the_loop(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/locked.db"
    migrate(url)
    writer = EventWriter(backend_for(url))
    await writer.start()
    await writer.write(_request(), [_event("before")])  # connection open, schema there
    other = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. a CLI command in another process, mid-write
    try:
        pending = asyncio.ensure_future(writer.write(_request(), [_event("while-locked")]))
        longest_gap = 0.0
        for _ in range(20):
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            longest_gap = max(longest_gap, time.perf_counter() - before)
        assert not pending.done()  # waiting for the lock ...
        assert longest_gap < 1.0  # ... while the loop goes on (a blocked loop stalls 30 s)
    finally:
        other.execute("COMMIT")
        other.close()
    result = await asyncio.wait_for(pending, 10)
    assert len(result.inserted) == 1
    await writer.stop()


async def test_a_write_waiting_for_the_lock_goes_as_soon_as_it_is_free(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/handover.db"
    migrate(url)
    writer = EventWriter(backend_for(url))
    await writer.start()
    await writer.write(_request(), [_event("before")])
    other = sqlite3.connect(tmp_path / "handover.db", isolation_level=None)
    lateness = []
    try:
        for n in range(5):
            other.execute("BEGIN IMMEDIATE")  # a relay's claim, say
            pending = asyncio.ensure_future(writer.write(_request(), [_event(f"wait-{n}")]))
            await asyncio.sleep(0.25 + 0.023 * n)
            assert not pending.done()
            other.execute("COMMIT")
            released = time.perf_counter()
            await asyncio.wait_for(pending, 10)
            lateness.append(time.perf_counter() - released)
    finally:
        other.close()
        await writer.stop()
    # SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms...: after
    # a quarter of a second a waiting write learnt the lock was free 0-100 ms late.
    assert statistics.median(lateness) < 0.02, lateness


async def test_schema_is_current(engine: AsyncEngine, database_url: str) -> None:
    assert await current_revision(engine) == head_revision(database_url)
    assert await schema_is_current(engine, database_url)


def _in_thread(fn: object, *args: object) -> None:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(fn, *args).result()  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_migrations_from_empty_down_and_up_with_no_drift(kind: str, tmp_path: object) -> None:
    from pathlib import Path

    from tests.support import run_in_thread

    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{Path(str(tmp_path)) / 'empty.db'}"
    else:
        name = f"zb_mig_{uuid.uuid4().hex[:10]}"
        run_in_thread(_admin_sql(f'CREATE DATABASE "{name}"'))
        url = _with_database(POSTGRES_URL, name)
    try:
        config = alembic_config(url)
        _in_thread(command.upgrade, config, "head")
        _in_thread(command.check, config)  # models and migrations agree
        _in_thread(command.downgrade, config, "base")
        _in_thread(command.upgrade, config, "head")
        _in_thread(command.check, config)
    finally:
        if kind == "postgres":
            run_in_thread(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_row_builders_follow_the_column_orders() -> None:
    from bridge.store.batch import EVENT_COLUMNS, REQUEST_COLUMNS, event_row, request_row

    event = _event("order-key", "R1")
    row = dict(zip(EVENT_COLUMNS, event_row(event), strict=True))
    assert row == {
        "id": event.id, "product": "crm", "source": "acme", "module": "Leads",
        "operation": "updated", "record_id": "R1", "occurred_at": NOW, "received_at": NOW,
        "origin": "webhook", "dedup_key": "order-key", "data": {"k": 1}, "request_id": None,
        "miss_cause": None, "collapsed": None, "envelope_head": envelope_head(event),
    }  # fmt: skip
    assert row["envelope_head"].startswith('{"specversion":"1.0","id":"' + event.id)
    request = _request("01ORDERTEST0000000000000000"[:26])
    row = dict(zip(REQUEST_COLUMNS, request_row(request), strict=True))
    assert row["id"] == request.id
    assert (row["status"], row["http_status"], row["event_count"]) == ("accepted", 200, 0)
    assert (row["path"], row["body"], row["body_truncated"]) == ("/hooks/crm", b"{}", False)
    # Every column of the tables is written (the primary key `seq` is the database's).
    assert set(EVENT_COLUMNS) == set(EventRow.__table__.columns.keys()) - {"seq"}
    assert set(REQUEST_COLUMNS) == set(RequestRow.__table__.columns.keys())
