"""`kill -9` of a real `zoho-bridge serve` in the middle of reconciling a large backlog, then
a restart: nothing lost, nothing doubled, and the dead process's lease on the watch
expires so the new process completes the run.

A run writes its events, its cursor and its counts in one transaction (reconciliation.md
a.2 #4), so a killed run leaves no trace but its lease; the run after the restart re-reads
the span and the version keys absorb what an earlier run already emitted. A poller that
moved its cursor page by page, or emitted events outside that transaction, would lose or
double the killed run's records here; one whose lease never expired would never finish.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.runtime import open_runtime
from bridge.sandbox import PageServed, RunningSandbox, run_sandbox
from bridge.sandbox.state import SandboxState
from bridge.services import connections
from bridge.settings import Settings
from bridge.store.database import create_engine
from bridge.store.models import EventRow, WatchDayRow, WatchRow
from tests.channel_rig import connection_body
from tests.support import BRIDGE_CMD, ROOT, SECRET_KEY, bridge_env, free_port

BACKLOG = 2000  # per module: ten list pages, then twenty fetches of 100 records


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    """A sandbox on the wall clock (the serve process keeps real time), every CRM answer
    slowed by 30 ms so a run takes long enough to be killed in the middle."""
    state = SandboxState()
    async with run_sandbox(state=state) as running:
        running.state.add_org("acme", crm_delay=0.03)
        yield running


@contextmanager
def serve(database_url: str) -> Iterator[subprocess.Popen[bytes]]:
    env = bridge_env(
        database_url,
        BRIDGE_RECONCILE_TICK_SECONDS="0.2",
        BRIDGE_RECONCILE_LEASE_SECONDS="3",
        BRIDGE_PUBLIC_URL="http://127.0.0.1:9",
    )
    proc = subprocess.Popen(
        [*BRIDGE_CMD, "serve", "--port", str(free_port())], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=15)


async def _watches(database_url: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(WatchRow))).all()
    finally:
        await engine.dispose()
    return {row.module: row for row in rows}


async def _wait(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_kill_9_mid_run_then_restart_loses_and_doubles_nothing(
    database_url: str, sandbox: RunningSandbox
) -> None:
    state = sandbox.state
    settings = Settings.from_environ({}, database_url=database_url, secret_key=SECRET_KEY)
    setup = await open_runtime(settings, background=False)
    try:
        # Ten CRM slots, so reconciliation's share is two: a process killed in the middle of
        # a call leaves its slot taken until the slot's lease (120 s) runs out, and with
        # one slot (the default share of 5) the restarted process would wait for that.
        body = {**connection_body(sandbox), "limits": {"crm_concurrency": 10}}
        await connections.add_connection(
            setup.engine, setup.box, connections.NewConnection(**body), setup.clock()
        )
        for module in ("Leads", "Deals"):
            await setup.watches.add("acme", "crm", module)
    finally:
        await setup.close()
    made: dict[str, list[str]] = {}
    for module in ("Leads", "Deals"):
        made[module] = [state.crm_create(module, {"Last_Name": str(i)}) for i in range(BACKLOG)]
    state.clock.advance(15 * 60)  # Zoho's clock: every version past the grace period
    served: list[str] = []

    def note(page: PageServed) -> None:
        served.append(page.module)

    state.on_page(note)

    with serve(database_url) as first:

        async def one_done_other_walking() -> str | None:
            done = [m for m, w in (await _watches(database_url)).items() if w.last_success_at]
            if len(done) != 1:
                return None
            other = "Deals" if done[0] == "Leads" else "Leads"
            return other if served.count(other) >= 3 else None

        killed = await _wait("one watch done, the other mid-walk", one_done_other_walking)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    finished = "Leads" if killed == "Deals" else "Deals"
    pages_before = served.count(killed)
    assert pages_before >= 3  # killed while listing (its commit comes after: below)
    at_kill = await _watches(database_url)
    assert at_kill[killed].lease_owner is not None and at_kill[killed].last_success_at is None
    assert await _counts(database_url) == {finished: BACKLOG}

    with serve(database_url):

        async def both_done() -> bool:
            watches = await _watches(database_url)
            return all(w.last_success_at and not w.lease_owner for w in watches.values()) and (
                watches[finished].last_started_at > at_kill[finished].last_started_at
            )

        await _wait("the killed watch's run, after its lease expired", both_done)
        after = await _watches(database_url)
        assert after[killed].lease_owner is None and after[killed].failures == 0
        assert after[killed].last_started_at >= at_kill[killed].lease_until  # waited for it
    assert served.count(killed) - pages_before >= 10  # listed again, from the start
    assert await _counts(database_url) == {"Leads": BACKLOG, "Deals": BACKLOG}
    assert await _distinct(database_url) == 2 * BACKLOG
    runs = await _runs(database_url)
    assert runs == {finished: 2, killed: 1}  # the killed run never counted; the restart ran both


async def _counts(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            query = select(EventRow.module, func.count()).group_by(EventRow.module)
            return {module: n for module, n in (await conn.execute(query)).all()}
    finally:
        await engine.dispose()


async def _distinct(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(EventRow.record_id, EventRow.occurred_at))).all()
    finally:
        await engine.dispose()
    counted = Counter((r.record_id, r.occurred_at) for r in rows)
    assert max(counted.values()) == 1, "a version was emitted twice"
    return len(counted)


async def _runs(database_url: str) -> dict[str, int]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            watches = {w.id: w.module for w in (await conn.execute(select(WatchRow))).all()}
            rows = (await conn.execute(select(WatchDayRow))).all()
    finally:
        await engine.dispose()
    found: Counter[str] = Counter()
    for row in rows:
        found[watches[row.watch_id]] += row.runs
    return dict(found)
