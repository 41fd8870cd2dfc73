"""ZohoClient's CRM calls against the sandbox: paging, 304/204, watch, 401, budgets."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from bridge.zoho.errors import BudgetExhausted, ZohoApiError, ZohoPartialFailure
from bridge.zoho.watch import WatchSpec

from .conftest import Rig, connect

LIST = "GET /crm/v8/{module}"


async def test_more_than_2000_records_switch_to_page_token(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    ids = [state.crm_create("Leads", {"Last_Name": f"L{i}"}) for i in range(2150)]
    pages = [
        page
        async for page in rig.client.crm_list_records(
            connect(rig.sandbox, "acme"), "Leads", ["Last_Name"]
        )
    ]
    got = [r["id"] for page in pages for r in page]
    assert got == ids  # oldest first, nothing lost or repeated
    assert [len(p) for p in pages] == [200] * 10 + [150]
    # page=11 would have been refused with DISCRETE_PAGINATION_LIMIT_EXCEEDED.
    assert state.count(LIST, status=200) == 11
    assert state.count(LIST) == 11
    assert pages[0][0]["Last_Name"] == "L0"


async def test_304_and_204_are_empty_pages(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    assert [p async for p in rig.client.crm_list_records(connection, "Leads", ["id"])] == []
    assert state.count(LIST, status=204) == 1

    record = state.crm_create("Leads", {"Last_Name": "A"})
    since = state.clock.dt()
    assert [p async for p in rig.client.crm_list_records(connection, "Leads", ["id"], since)] == []
    assert state.count(LIST, status=304) == 1

    state.clock.advance(5)
    state.crm_update("Leads", record, {"Last_Name": "B"})
    pages = [
        p async for p in rig.client.crm_list_records(connection, "Leads", ["Last_Name"], since)
    ]
    assert [[r["Last_Name"] for r in p] for p in pages] == [["B"]]


async def test_deleted_records_since(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    first = state.crm_create("Leads", {})
    second = state.crm_create("Leads", {})
    state.crm_delete("Leads", first)
    since = state.clock.dt()
    state.clock.advance(2)
    state.crm_delete("Leads", second)
    pages = [p async for p in rig.client.crm_list_deleted(connection, "Leads", since)]
    assert [[r["id"] for r in p] for p in pages] == [[second]]
    assert pages[0][0]["type"] == "recycle"
    state.clock.advance(2)
    assert [
        p async for p in rig.client.crm_list_deleted(connection, "Leads", state.clock.dt())
    ] == []


async def test_watch_round_trip(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    expiry = state.clock.dt() + timedelta(days=6, microseconds=5)
    spec = WatchSpec(
        "1000000068001", ["Leads.all", "Deals.edit"], "http://bridge/hooks/crm", "tok", expiry
    )
    [enabled] = await rig.client.crm_watch_enable(connection, [spec])
    assert [e["resource_name"] for e in enabled["details"]["events"]] == ["Leads", "Deals"]
    # Microseconds were stripped before sending, so Zoho kept our expiry.
    assert state.org().channels["1000000068001"].expiry == expiry.replace(microsecond=0)

    later = expiry + timedelta(hours=12)
    await rig.client.crm_watch_patch(connection, [WatchSpec("1000000068001", channel_expiry=later)])
    [listed] = await rig.client.crm_watch_get(connection)
    assert listed["token"] == "tok"  # PATCH keeps what it was not given
    assert listed["channel_expiry"] == later.replace(microsecond=0).isoformat()

    await rig.client.crm_watch_remove_events(connection, "1000000068001", ["Deals.edit"])
    assert state.org().channels["1000000068001"].events == ["Leads.all"]
    [gone] = await rig.client.crm_watch_disable(connection, ["1000000068001"])
    assert gone["details"]["channel_id"] == "1000000068001"
    assert await rig.client.crm_watch_get(connection) == []  # Zoho answers 204


async def test_partial_watch_failure_is_surfaced_per_item(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    good = WatchSpec("1", ["Leads.all"], "http://bridge/hooks/crm")
    bad = WatchSpec("2", ["Leads.explode"], "http://bridge/hooks/crm")
    with pytest.raises(ZohoPartialFailure) as failure:
        await rig.client.crm_watch_enable(connection, [good, bad])
    assert failure.value.status == 202
    [error] = failure.value.errors
    assert (error.index, error.code, error.details) == (1, "INVALID_DATA", {"api_name": "events"})
    assert len(failure.value.succeeded) == 1
    assert set(state.org().channels) == {"1"}

    with pytest.raises(ZohoPartialFailure) as unknown:
        await rig.client.crm_watch_disable(connection, ["404"])
    assert unknown.value.errors[0].code == "NOT_SUBSCRIBED"
    assert unknown.value.status == 400


async def test_overlong_channel_token_is_refused_before_sending(rig: Rig) -> None:
    rig.sandbox.state.add_org("acme")
    spec = WatchSpec("1", ["Leads.all"], "http://bridge/hooks/crm", token="t" * 51)
    with pytest.raises(ValueError, match="50"):
        await rig.client.crm_watch_enable(connect(rig.sandbox, "acme"), [spec])
    assert rig.sandbox.state.count("POST /crm/v8/actions/watch") == 0


async def test_401_refreshes_once_and_retries(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    await rig.client.check(connection, crm=True)
    state.grants.clear()  # Zoho forgot every access token
    result = await rig.client.check(connection)
    assert result.crm_org is not None
    assert result.crm_org["company_name"] == "acme"
    assert state.count("GET /crm/v8/org", status=401) == 1
    assert state.count("POST /oauth/v2/token") == 2


async def test_second_401_is_an_error_not_a_loop(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    state.org().crm_scope = False  # a fresh token will not help either
    with pytest.raises(ZohoApiError) as error:
        await rig.client.check(connection)
    assert error.value.status == 401
    assert error.value.code == "OAUTH_SCOPE_MISMATCH"
    assert state.count("GET /crm/v8/org", status=401) == 2
    assert state.count("POST /oauth/v2/token") == 2


async def test_concurrency_cap_keeps_zoho_from_answering_429(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme", crm_concurrency=2, crm_delay=0.03)
    connection = connect(rig.sandbox, "acme", crm_concurrency=2)
    await asyncio.gather(*(rig.client.check(connection) for _ in range(6)))
    assert state.count("GET /crm/v8/org", status=200) == 6
    assert state.count("GET /crm/v8/org", status=429) == 0


async def test_daily_credit_budget_is_enforced_before_sending(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme", crm_daily_credits=3)
    for _ in range(3):
        await rig.client.check(connection)
    with pytest.raises(BudgetExhausted):
        await rig.client.check(connection)
    assert state.count("GET /crm/v8/org") == 3
    assert (await rig.client.budget_left(connection)).crm_credits_today == 0
    state.clock.advance(86_400)
    await rig.client.check(connection)


async def test_eu_and_us_connections_reach_their_own_hosts(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("us-org", "com")
    state.add_org("eu-org", "eu")
    await rig.client.check(connect(rig.sandbox, "eu-org"))
    await rig.client.check(connect(rig.sandbox, "eu-org"))
    await rig.client.check(connect(rig.sandbox, "us-org"))
    assert state.count("GET /crm/v8/org", dc="eu") == 2
    assert state.count("GET /crm/v8/org", dc="com") == 1
    assert state.count("POST /oauth/v2/token", dc="eu", org="eu-org") == 1
    assert state.count(status=401) == 0
