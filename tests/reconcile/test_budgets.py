"""Reconciliation inside Zoho's budgets (reconciliation.md e #11; the product's budget bar):
a 20,000-record CRM backfill within reconciliation's daily credit share, waiting rather
than overspending when the share runs out; a Books backfill under a tight per-minute limit
that never goes over it; two replicas running one due watch once.

What Zoho saw is counted by the sandbox (calls, credits, calls in any minute), never by
the bridge's own meters, so a governor that miscounts cannot pass."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.domain.events import EventFilter, Origin
from bridge.runtime import Runtime, open_runtime, reconcile_policy
from bridge.sandbox import RunningSandbox, run_sandbox
from bridge.sandbox.model import SandboxClock
from bridge.sandbox.state import SandboxState
from bridge.services import connections
from bridge.services.reconcile_runs import RunService
from bridge.services.reconciler import Reconciler
from bridge.settings import Settings
from bridge.store import watches as watch_store
from bridge.store.budget_store import DbBudgetStore
from bridge.store.token_store import DbTokenStore
from bridge.zoho.budget import Budget
from bridge.zoho.client import ZohoClient
from bridge.zoho.oauth import TokenManager
from tests.channel_rig import bridge_rig, connection_body, frozen_sandbox, sandbox_now
from tests.conftest import _truncate
from tests.reconcile.support import Version, events, visible
from tests.support import SECRET_KEY

LIST = "GET /crm/v8/{module}"


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        yield running


def _since(state: SandboxState) -> datetime:
    return sandbox_now(state) - timedelta(minutes=1)


async def test_a_20000_record_crm_backfill_stays_inside_the_daily_share(
    database_url: str, sandbox: RunningSandbox
) -> None:
    """20,000 leads backfilled: ten list pages, then COQL keyset pages (3 credits per 2,000
    ids instead of 10), then the full records by 100 ids. With 3,000 credits a day and
    reconciliation's 10 % share, 300 credits: the backfill fits (the list walk alone would
    cost 301); backfilling the span again emits nothing new; a third time runs out of the
    share and waits (its progress says so) instead of spending one credit more."""
    state = sandbox.state
    limits: dict[str, Any] = {"limits": {"crm_daily_credits": 3000}}
    async with bridge_rig(database_url, sandbox, connection=limits, reconcile_coql=True) as rig:
        rt = rig.runtime
        await rt.watches.add("acme", "crm", "Leads")
        since = _since(state)
        for second in range(100):
            for i in range(200):
                state.crm_create("Leads", {"Last_Name": f"L{second}-{i}"})
            state.clock.advance(1)
        rig.hours(1)  # every version past the grace period
        began = time.monotonic()
        run = await rt.runs.queue(connection="acme", module="Leads", since=since)
        done = await rt.runs.execute(run.id)
        elapsed = time.monotonic() - began
        assert done is not None and done.state == "done", done
        counts = done.counts
        credits = state.crm_credits("acme")
        assert counts["emitted"] == counts["not_subscribed"] == 20_000, counts
        assert counts["credits"] == credits <= 300  # what Zoho counted, within the share
        assert state.count("POST /crm/v8/coql") >= 9 and state.count(LIST, status=429) == 0
        stored = await events(rig, origin="reconciliation")
        assert len({e["record_id"] for e in stored}) == len(stored) == 20_000
        print(f"\n20,000-record CRM backfill: {counts['calls']} calls, {credits} credits "
              f"(share 300), {elapsed:.1f} s")  # fmt: skip

        # Backfilling the span again lists it again (41 credits) and emits nothing new.
        again = await rt.runs.queue(connection="acme", module="Leads", since=since)
        repeat = await rt.runs.execute(again.id)
        assert repeat is not None and repeat.counts["emitted"] == 0, repeat
        assert state.crm_credits("acme") == credits + repeat.counts["credits"] <= 300
        # Once more does not fit in what is left of the share: it waits for the budget.
        again = await rt.runs.queue(connection="acme", module="Leads", since=since)
        task = asyncio.create_task(rt.runs.execute(again.id))
        try:
            for _ in range(600):
                if "waiting" in (await rt.runs.get(again.id)).counts:
                    break
                await asyncio.sleep(0.05)
            waiting = (await rt.runs.get(again.id)).counts.get("waiting", "")
            assert "reconciliation's daily CRM credits (300)" in waiting, waiting
            assert state.crm_credits("acme") <= 300
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert len(await events(rig, origin="reconciliation")) == 20_000


SPEED = 120.0  # simulated seconds per real second: a minute passes in half a second


class FastClock(SandboxClock):
    """The sandbox's clock running SPEED times faster than the wall clock (for the sandbox
    and the bridge alike), so budget windows pass without a real minute's wait."""

    def __init__(self) -> None:
        super().__init__()
        self._start = time.time()
        self._t0 = time.monotonic()

    def now(self) -> float:
        return self._start + (time.monotonic() - self._t0) * SPEED + self.offset


async def fast_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds / SPEED)


async def test_a_books_backfill_never_exceeds_the_per_minute_share(
    database_url: str, tmp_path: Any
) -> None:
    """40 invoices backfilled with their full records (one GET each) on an org allowing
    30 Books calls a minute: reconciliation's 20 % share is 6 a minute, and in no 60 s
    window did Zoho see more than 6 calls, nor answer a single 429. A poller fetching
    records as fast as it can would make 40 calls within the first seconds."""
    state = SandboxState()
    clock = FastClock()
    state.clock = clock
    org = state.add_org("acme", books_per_minute=30, books_daily=5000)
    async with run_sandbox(state=state) as sandbox:
        settings = Settings.from_environ(
            {}, database_url=database_url, secret_key=SECRET_KEY, scheduler=False,
            public_url="http://127.0.0.1:9",
        )  # fmt: skip

        def now() -> datetime:
            return datetime.fromtimestamp(int(clock.now()), UTC)

        rt = await open_runtime(settings, clock=now, background=False)
        try:
            body = {**connection_body(sandbox), "limits": {"books_per_minute": 30,
                                                           "books_daily": 5000}}  # fmt: skip
            await connections.add_connection(
                rt.engine, rt.box, connections.NewConnection(**body), now()
            )
            # The runtime's own reconciler, except that its budget waits on the fast
            # clock (as tests/test_budget_replicas.py builds its clients).
            seconds = clock.now
            # 15 simulated seconds of latency slack (125 ms real) keep a counted window
            # (75 s) under the budget's 90 s wait limit.
            budget = Budget(DbBudgetStore(rt.engine), clock=seconds, sleep=fast_sleep,
                            window_slack=15.0, shares=rt.zoho.budget.shares)  # fmt: skip
            tokens = TokenManager(rt.http, DbTokenStore(rt.engine, rt.box), clock=seconds)
            zoho = ZohoClient(rt.http, tokens, budget, sleep=fast_sleep)
            reconciler = Reconciler(rt.engine, rt.box, zoho, now, "fast", (), [],
                                    reconcile_policy(settings))  # fmt: skip
            runs = RunService(rt.engine, reconciler, now)
            await rt.watches.add("acme", "books", "invoices")
            since = now() - timedelta(minutes=1)
            ids = [state.books_create("invoices", {"total": i}) for i in range(40)]
            clock.advance(3600)
            run = await runs.queue(connection="acme", module="invoices", since=since)
            started = clock.now()
            done = await runs.execute(run.id)
            took = clock.now() - started
        finally:
            await rt.close()
    assert done is not None and done.state == "done", done
    assert done.counts["emitted"] == 40 and len(ids) == 40
    assert state.count("GET /books/v3/invoices/{id}") == 40
    assert state.count(status=429) == 0
    assert state.max_in_window("acme", "/books/v3/", 60.0) <= 6
    calls = sum(1 for h in state.hits if h.org == "acme" and "/books/v3/" in h.label)
    assert took >= (calls // 6 - 1) * 60  # it had to wait for the windows to clear
    print(f"\nBooks backfill: {calls} calls in {took / 60:.1f} simulated minutes, at most "
          f"{state.max_in_window('acme', '/books/v3/', 60.0)} in any minute")  # fmt: skip
    assert org.books_per_minute == 30


@pytest.mark.postgres
async def test_two_replicas_run_one_due_watch_once(
    postgres_url: str, sandbox: RunningSandbox
) -> None:
    """Two runtimes on one PostgreSQL tick at the same moments, six intervals in a row: the
    watch runs once per due time (one listing at Zoho, one `runs` count), and each version
    is emitted once. Without the lease both would list and emit, and a cursor written by
    the slower one could move back over what the faster one covered."""
    await _truncate(postgres_url)
    state = sandbox.state
    runtimes: list[Runtime] = []
    for name in ("replica-a", "replica-b"):
        settings = Settings.from_environ(
            {}, database_url=postgres_url, secret_key=SECRET_KEY, scheduler=False,
            public_url="http://127.0.0.1:9", replica_id=name,
        )  # fmt: skip
        runtimes.append(await open_runtime(settings, clock=lambda: sandbox_now(state)))
    a, b = runtimes
    try:
        # Credits to spare: this is about leases, not the budget (a share too small for
        # the schedule would space the runs out: Reconciler._paced).
        body = {**connection_body(sandbox), "limits": {"crm_daily_credits": 100_000}}
        await connections.add_connection(
            a.engine, a.box, connections.NewConnection(**body), a.clock()
        )
        watch = await a.watches.add("acme", "crm", "Leads")
        assert a.reconcile_loop is not None and b.reconcile_loop is not None
        made: list[str] = []
        expected: set[Version] = set()
        lists = []
        for _ in range(6):
            made += [state.crm_create("Leads", {"Last_Name": "x"}) for _ in range(40)]
            state.clock.advance(2)
            for record_id in made[-60::3]:
                state.crm_update("Leads", record_id, {"Last_Name": "y"})
            state.clock.advance(16 * 60)  # due again, past the grace period
            expected |= visible(state)  # no channel: nothing is announced
            before = state.count(LIST)
            ran = await asyncio.gather(a.reconcile_loop.tick(), b.reconcile_loop.tick())
            assert sorted(ran) == [0, 1]  # one ran the watch, the other found it taken
            lists.append(state.count(LIST) - before)
        assert lists == [2] * 6  # one listing page and one `ids=` fetch, per due time
        days = await a.watches.views()
        assert days[0]["id"] == watch.id and sum(d["runs"] for d in await _days(a, watch.id)) == 6
        found = await a.events.find(EventFilter(origin=Origin.RECONCILIATION), limit=10_000)
        got = [Version("crm", e.module, e.record_id, e.occurred_at.astimezone(UTC)) for e in found]
        assert len(got) == len(set(got)) and set(got) == expected
    finally:
        for runtime in runtimes:
            await runtime.close()


async def _days(runtime: Runtime, watch_id: int) -> list[dict[str, Any]]:
    return await watch_store.day_counts(
        runtime.engine, since_day="2000-01-01", watch_ids=[watch_id]
    )


@pytest.mark.postgres
async def test_a_run_longer_than_its_lease_keeps_it(
    postgres_url: str, sandbox: RunningSandbox
) -> None:
    """A run outlasting its 3 s lease (a 2,100-lead backlog, every CRM answer 50 ms late,
    while time runs on) keeps extending it: the other replica, trying again and again,
    never gets the watch, and Zoho sees one listing. With a lease taken once, the other
    replica claims the watch mid-run and lists and fetches everything a second time."""
    await _truncate(postgres_url)
    state = sandbox.state
    state.orgs["acme"].crm_delay = 0.05
    runtimes: list[Runtime] = []
    for name in ("replica-a", "replica-b"):
        settings = Settings.from_environ(
            {}, database_url=postgres_url, secret_key=SECRET_KEY, scheduler=False,
            public_url="http://127.0.0.1:9", replica_id=name, reconcile_lease_seconds=3,
        )  # fmt: skip
        runtimes.append(
            await open_runtime(settings, clock=lambda: sandbox_now(state), background=False)
        )
    a, b = runtimes
    try:
        body = connection_body(sandbox)
        await connections.add_connection(
            a.engine, a.box, connections.NewConnection(**body), a.clock()
        )
        watch = await a.watches.add("acme", "crm", "Leads")
        for i in range(2100):
            state.crm_create("Leads", {"Last_Name": str(i)})
        state.clock.advance(15 * 60)
        running = asyncio.create_task(a.reconciler.run_watch(watch.id, due=False))
        tries = []
        while True:
            await asyncio.sleep(0.25)
            state.clock.advance(0.5)  # two simulated seconds a real one: 3 s pass in 1.5
            if running.done():
                break
            tries.append(await b.reconciler.run_watch(watch.id, due=False))
        report = await running
        assert report.outcome == "ok" and report.emitted == {"not_subscribed": 2100}
        # Skipped while A ran; one try may land between A's commit and its task's end, and
        # then finds nothing to list (a 304) and nothing to emit.
        outcomes = [t.outcome for t in tries]
        assert len(tries) >= 8 and set(outcomes[:-1]) == {"skipped"}, outcomes
        assert tries[-1].outcome == "skipped" or tries[-1].versions == 0, tries[-1]
        assert state.count(LIST, status=200) == 11 + 21  # one walk, one set of fetches
    finally:
        for runtime in runtimes:
            await runtime.close()


async def test_a_share_too_small_for_the_schedule_spreads_the_runs(
    database_url: str, sandbox: RunningSandbox
) -> None:
    """A daily share that cannot pay for a day of 15-minute runs at what a run costs: the
    next run comes later, so the share lasts the (rolling) day, and the status says why.
    Spending it at the floor pace instead ran it dry within hours, and every change missed
    afterwards waited for the window to free up (bench/reconcile.py, default limits)."""
    state = sandbox.state
    small = {"limits": {"crm_daily_credits": 100}}  # 10 credits a day for reconciliation
    async with bridge_rig(database_url, sandbox, connection=small) as rig:
        await rig.create(["Leads.all"])
        watch = next(w for w in await rig.runtime.watches.all() if w.module == "Leads")
        state.drop_rate = 1.0
        for i in range(5):
            state.crm_create("Leads", {"Last_Name": f"L{i}"})
        await state.flush()
        state.clock.advance(15 * 60)
        report = await rig.runtime.reconciler.run_watch(watch.id, due=False)
        assert report.outcome == "ok" and report.emitted == {"missed": 5}
        after = await rig.runtime.watches.get(watch.id)
        # 2 credits a run (a list, an ids= fetch) into the 8 left: one run every 6 h at most,
        # capped at 2 h so a freed window is used again soon.
        assert after.next_run_at - after.last_finished_at >= timedelta(hours=2) - timedelta(
            seconds=1
        )
        assert after.deferred_reason is not None and after.deferred_reason.startswith("budget")
        problems = (await rig.http.get("/admin/status")).json()["problems"]
        assert any("is slowed" in p and "BRIDGE_RECONCILE_DAILY_SHARE" in p for p in problems)
