"""The relay's SQLite writes on a thread of their own (store/relay_sqlite.py): the same
rows as the engine's transactions, and the write lock never held while the loop is busy."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.attempts import Attempt, AttemptOutcome
from bridge.domain.delivery import DeadLetter, Retry
from bridge.errors import StoreUnavailable
from bridge.store import outbox
from bridge.store.database import create_engine
from bridge.store.outbox import Failure, OutboxHook
from bridge.store.relay_sqlite import SqliteRelayWrites
from bridge.store.writer import EventWriter, backend_for
from tests.test_storage import NOW, _event, _request

LEASE = timedelta(seconds=30)


async def _seeded(path: Path) -> AsyncEngine:
    """Eight events of four records, each with a row for sink `s`."""
    url = f"sqlite+aiosqlite:///{path}"
    writer = EventWriter(backend_for(url), in_transaction=[OutboxHook(("s",))])
    await writer.start()
    for n, record in enumerate("ABCDABCD"):
        await writer.write(_request(), [_event(f"k{n}", record)])
    await writer.stop()
    return create_engine(url)


async def _table(engine: AsyncEngine, sql: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        return [tuple(row) for row in await conn.execute(text(sql))]


async def _scenario(engine: AsyncEngine, writes: SqliteRelayWrites | None) -> list[str]:
    """Claim, settle (delivered, retry, dead, with attempts), claim again."""
    seen = []
    claimed = await outbox.claim(engine, "s", "me", now=NOW, lease=LEASE, limit=3,
                                 writes=writes)  # fmt: skip
    seen.append(",".join(f"{c.message.record_id}{c.message.seq}/{c.attempts}" for c in claimed))
    first, second, third = (c.delivery_id for c in claimed)
    later = NOW + timedelta(seconds=1)
    failures = [
        Failure(second, 1, Retry(NOW + timedelta(minutes=5)), "refused: 503"),
        Failure(third, 1, DeadLetter(disable_sink=False), "refused: 400 " + "x" * 2000),
    ]
    attempts = [
        Attempt(first, later, AttemptOutcome.DELIVERED, 1.5, replica="r1"),
        Attempt(second, later, AttemptOutcome.RETRY, 2.25, status_code=503, error="busy",
                response="try later", replica="r1"),
        Attempt(third, later, AttemptOutcome.DEAD, 3.0, status_code=400, error="bad"),
    ]  # fmt: skip
    await outbox.settle(engine, [first], failures, attempts, later, writes, publish_ms=4.5)
    await outbox.settle(engine, [], [], [], later, writes)  # nothing to do: no transaction
    claimed = await outbox.claim(engine, "s", "me", now=NOW + timedelta(minutes=1), lease=LEASE,
                                 limit=10, writes=writes)  # fmt: skip
    seen.append(",".join(f"{c.message.record_id}{c.message.seq}/{c.attempts}" for c in claimed))
    return seen


async def test_the_same_rows_as_through_the_engine(tmp_path: Path, sqlite_template: Path) -> None:
    outcomes = []
    for name, use_writes in (("engine", False), ("thread", True)):
        path = tmp_path / f"{name}.db"
        shutil.copy(sqlite_template, path)
        engine = await _seeded(path)
        writes = SqliteRelayWrites(str(path)) if use_writes else None
        try:
            seen = await _scenario(engine, writes)
            deliveries = await _table(engine, "SELECT * FROM deliveries ORDER BY id")
            attempts = await _table(engine, "SELECT * FROM delivery_attempts ORDER BY id")
        finally:
            if writes is not None:
                await writes.close()
            await engine.dispose()
        outcomes.append((seen, deliveries, attempts))
    assert outcomes[0] == outcomes[1]
    seen, deliveries, attempts = outcomes[1]
    # The first claim takes each record's head; after the settlement, A's next row goes
    # out, B's waits behind its retry, C is dead so its next row is the head, D was never
    # claimed (limit 3) and is due now.
    assert seen == ["A1/0,B2/0,C3/0", "D4/0,A5/0,C7/0"]
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'thread.db'}")
    try:
        settled = await _table(engine, "SELECT status, attempts, length(last_error), "
                                       "lease_owner, publish_ms FROM deliveries "
                                       "ORDER BY id LIMIT 3")  # fmt: skip
        stored = await _table(engine, "SELECT outcome, status_code, error, response, replica "
                                      "FROM delivery_attempts ORDER BY id")  # fmt: skip
    finally:
        await engine.dispose()
    assert settled == [("delivered", 1, None, "me", 4.5), ("pending", 1, 12, None, None),
                       ("dead", 1, 1000, None, None)]  # fmt: skip
    assert stored == [("delivered", None, None, None, "r1"), ("retry", 503, "busy", "try later",
                      "r1"), ("dead", 400, "bad", None, None)]  # fmt: skip


@pytest.fixture
async def seeded(tmp_path: Path, sqlite_template: Path) -> Path:
    """A seeded database (`_seeded`), its path."""
    path = tmp_path / "bridge.db"
    shutil.copy(sqlite_template, path)
    engine = await _seeded(path)
    await engine.dispose()
    return path


@pytest.fixture
async def writes(seeded: Path) -> AsyncIterator[SqliteRelayWrites]:
    writes = SqliteRelayWrites(str(seeded))
    yield writes
    await writes.close()


def _lease_values(limit: int) -> dict[str, Any]:
    return {"claim_sink": "s", "claim_owner": "me", "claim_now": NOW,
            "claim_until": NOW + LEASE, "claim_limit": limit}  # fmt: skip


async def test_a_busy_event_loop_does_not_hold_the_write_lock(
    seeded: Path, writes: SqliteRelayWrites
) -> None:
    lease = asyncio.ensure_future(writes.lease(_lease_values(100)))
    await asyncio.sleep(0)  # the transaction is handed to the thread
    time.sleep(0.5)  # the loop is busy (webhooks): it does not come back to the relay
    other = sqlite3.connect(seeded, timeout=0, isolation_level=None)
    try:
        # The lease is committed without the loop's help, and the lock is free: the
        # ingest writer takes it at once.
        leased = "SELECT count(*) FROM deliveries WHERE lease_owner = 'me'"
        assert other.execute(leased).fetchone() == (4,)
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert len(await lease) == 4  # A, B, C, D: one row per record


async def test_the_relay_waits_for_the_lock_and_goes_on_after_an_error(
    seeded: Path, writes: SqliteRelayWrites
) -> None:
    values = _lease_values(1)
    blocker = sqlite3.connect(seeded, isolation_level=None)
    try:
        assert len(await writes.lease(values)) == 1
        blocker.execute("PRAGMA busy_timeout=0")
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock...
        lease = asyncio.ensure_future(writes.lease(values))
        await asyncio.sleep(0.3)
        assert not lease.done()  # ...so the relay waits for it (the loop does not)
        blocker.execute("ROLLBACK")
        assert len(await lease) == 1
        blocker.execute("DROP TABLE delivery_attempts")
        with pytest.raises(StoreUnavailable):  # as the engine's errors are (store.errors)
            await writes.settle([], [], [Attempt(1, NOW, AttemptOutcome.RETRY, 1.0)], NOW, None)
        assert len(await writes.lease(values)) == 1  # rolled back; a fresh connection goes on
    finally:
        blocker.close()
