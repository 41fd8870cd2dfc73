"""Reconciliation spends at most its share of each budget, channel renewal keeps its
headroom, and replicas sharing a store share the shares (reconciliation.md e #11)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bridge.sandbox import RunningSandbox
from bridge.zoho.budget import DAY
from bridge.zoho.errors import BudgetExhausted
from bridge.zoho.memory import MemoryBudgetStore
from bridge.zoho.shares import Shares

from .conftest import Rig, connect, make_rig

LIST = "GET /crm/v8/{module}"


async def _versions(rig: Rig, org: str, **limits: int) -> None:
    async for _page in rig.client.crm_versions(connect(rig.sandbox, org, **limits), "Deals"):
        pass


async def test_books_reconcile_calls_stay_inside_the_per_minute_share(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme", books_per_minute=10)  # share: 2 a minute
    for _ in range(5):
        async for _page in rig.client.books_pages(connection, "invoices", "scan"):
            pass
    assert state.count("GET /books/v3/invoices", status=200) == 5
    assert state.max_in_window("acme", "/books/v3", 60.0) == 2
    assert len(rig.slept) == 2
    assert sum(rig.slept) >= 2 * 60
    for _ in range(8):  # other purposes are not held to the share: no waiting
        await rig.client.check(connection, crm=False)
    assert len(rig.slept) == 2
    assert state.max_in_window("acme", "/books/v3", 60.0) == 1 + 8


async def test_spent_daily_share_defers_reconciliation_with_retry_after(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme", books_daily=30)  # share: 3 a day
    started = state.clock.now()
    for _ in range(3):
        async for _page in rig.client.books_pages(connection, "invoices", "scan"):
            pass
    state.clock.advance(600)
    with pytest.raises(BudgetExhausted) as refused:
        async for _page in rig.client.books_pages(connection, "invoices", "scan"):
            pass
    assert refused.value.retry_after == pytest.approx(started + DAY - state.clock.now(), abs=1)
    assert state.count("GET /books/v3/invoices") == 3
    await rig.client.check(connection, crm=False)  # the rest of the day is still there
    left = await rig.client.budget_left(connection)
    assert (left.reconcile_books_today, left.books_today) == (0, 26)


async def test_crm_credit_share_keeps_renewal_headroom(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme", crm_daily_credits=50)  # share: 5
    for _ in range(5):
        await _versions(rig, "acme", crm_daily_credits=50)
    with pytest.raises(BudgetExhausted) as refused:
        await _versions(rig, "acme", crm_daily_credits=50)
    assert 0 < refused.value.retry_after <= DAY
    with pytest.raises(BudgetExhausted):  # COQL too: 3 credits at LIMIT 2000
        await rig.client.crm_coql_versions(connection, "Deals", since=state.clock.dt())
    assert await rig.client.crm_watch_get(connection) == []  # renewal still runs
    assert state.crm_credits("acme") == 6
    assert (await rig.client.budget_left(connection)).reconcile_crm_credits_today == 0


async def test_reconciliation_takes_one_crm_slot_of_a_small_org(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    state = sandbox.state
    state.add_org("acme", crm_concurrency=1, crm_delay=0.02)  # Zoho allows one at a time
    rig = make_rig(sandbox, http)
    # Our limits say 5 slots; reconciliation's 20 % share is still one slot.
    await asyncio.gather(*(_versions(rig, "acme", crm_concurrency=5) for _ in range(4)))
    assert state.count(LIST, status=204) == 4
    assert state.count(LIST, status=429) == 0


async def test_replicas_sharing_a_store_share_the_daily_share(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    sandbox.state.add_org("acme")
    store = MemoryBudgetStore()
    replicas = [make_rig(sandbox, http, store=store, shares=Shares(daily=0.5)) for _ in range(2)]
    for i in range(4):  # crm_daily_credits=8 → share 4, spent by both replicas together
        await _versions(replicas[i % 2], "acme", crm_daily_credits=8)
    for replica in replicas:
        with pytest.raises(BudgetExhausted):
            await _versions(replica, "acme", crm_daily_credits=8)
    assert sandbox.state.crm_credits("acme") == 4


async def test_books_headroom_stops_reconciliation_until_the_reset(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    state = sandbox.state
    state.add_org("acme", books_daily=55)  # Zoho's count, reported in X-Rate-Limit-*
    rig = make_rig(sandbox, http, shares=Shares(books_headroom=50))
    connection = connect(sandbox, "acme")
    for _ in range(4):
        async for _page in rig.client.books_pages(connection, "invoices", "scan"):
            pass
    latest = rig.client.books_rate_limit(connection)
    assert latest is not None
    assert (latest.limit, latest.remaining) == (55, 51)
    async for _page in rig.client.books_pages(connection, "invoices", "scan"):
        pass  # remaining 50: at the headroom now
    with pytest.raises(BudgetExhausted) as refused:
        async for _page in rig.client.books_pages(connection, "invoices", "scan"):
            pass
    assert refused.value.retry_after == pytest.approx(DAY, abs=5)
    assert state.count("GET /books/v3/invoices") == 5
    await rig.client.check(connection, crm=False)  # other purposes may still use the rest
