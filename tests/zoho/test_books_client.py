"""ZohoClient's Books calls against the sandbox: paging, org id, per-minute and daily budgets."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from bridge.sandbox import RunningSandbox
from bridge.zoho.errors import BudgetExhausted, ZohoTransientError
from bridge.zoho.retry import RetryPolicy

from .conftest import Rig, connect, make_rig

INVOICES = "GET /books/v3/invoices"


async def test_pages_until_has_more_page_is_false(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    ids = [state.books_create("invoices", {"invoice_number": f"INV-{i}"}) for i in range(450)]
    connection = connect(rig.sandbox, "acme")
    pages = [p async for p in rig.client.books_list(connection, "invoices")]
    assert [len(p) for p in pages] == [200, 200, 50]
    assert [r["invoice_id"] for p in pages for r in p] == ids
    # Without organization_id on every call the sandbox would have answered 400.
    assert state.count(INVOICES, status=200) == 3


async def test_last_modified_time_filter(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    old = state.books_create("invoices", {})
    state.clock.advance(60)
    since = datetime.fromtimestamp(int(state.clock.now()), UTC)
    new = state.books_create("invoices", {})
    state.books_update("invoices", old, {"status": "paid"})
    pages = [
        p async for p in rig.client.books_list(connect(rig.sandbox, "acme"), "invoices", since)
    ]
    assert sorted(r["invoice_id"] for p in pages for r in p) == sorted([old, new])
    state.clock.advance(60)
    later = datetime.fromtimestamp(int(state.clock.now()), UTC)
    assert [
        p async for p in rig.client.books_list(connect(rig.sandbox, "acme"), "invoices", later)
    ] == []


async def test_per_minute_budget_is_never_exceeded(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme", books_per_minute=5)
    for _ in range(23):
        await rig.client.check(connection, crm=False)
    assert state.count("GET /books/v3/organizations", status=200) == 23
    assert state.max_in_window("acme", "/books/v3", 60.0) == 5
    assert state.count(status=429) == 0
    assert sum(rig.slept) >= 4 * 60  # 23 calls at 5/min need four full waits


async def test_429_storm_backs_off_with_growing_jittered_delays(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme", books_per_minute=3)  # Zoho tighter than our budget thinks
    connection = connect(rig.sandbox, "acme")
    for _ in range(10):
        await rig.client.check(connection, crm=False)
    assert state.count("GET /books/v3/organizations", status=200) == 10
    assert state.count("GET /books/v3/organizations", status=429) > 0
    assert state.max_in_window("acme", "/books/v3", 60.0) <= 3
    policy = RetryPolicy()
    assert all(policy.base_delay / 2 <= s <= policy.max_delay for s in rig.slept)


async def test_429_until_retries_run_out_is_transient(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    state = sandbox.state
    state.add_org("acme", books_per_minute=1)
    rig = make_rig(sandbox, http, RetryPolicy(attempts=3, base_delay=0.5, max_delay=1.0))
    connection = connect(sandbox, "acme")
    await rig.client.check(connection, crm=False)
    with pytest.raises(ZohoTransientError, match="HTTP 429"):
        await rig.client.check(connection, crm=False)
    assert state.count("GET /books/v3/organizations", status=429) == 3


async def test_daily_share_stops_calls_before_they_are_sent(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme", books_daily=4)
    for _ in range(4):
        await rig.client.check(connection, crm=False)
    assert (await rig.client.budget_left(connection)).books_today == 0
    with pytest.raises(BudgetExhausted):
        await rig.client.check(connection, crm=False)
    assert state.count("GET /books/v3/organizations") == 4
