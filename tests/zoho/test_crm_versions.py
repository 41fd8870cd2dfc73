"""ZohoClient's reconciliation reads on CRM against the sandbox: newest-first versions
with Zoho's Date, idle modules, page-token restarts, deleted records and `?ids=`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bridge.sandbox.model import PageServed
from bridge.zoho.errors import ZohoApiError
from bridge.zoho.meter import CallMeter

from .conftest import Rig, connect

LIST = "GET /crm/v8/{module}"


async def test_versions_walk_newest_first_with_zohos_clock(rig: Rig) -> None:
    state = rig.sandbox.state
    state.clock.freeze()
    state.add_org("acme")
    state.date_skew = 7
    ids = []
    for i in range(5):
        ids.append(state.crm_create("Leads", {"Last_Name": str(i)}))
        state.clock.advance(10)
    state.crm_convert(ids[0])  # still a lead version, not a delete
    meter = CallMeter()
    pages = [
        p async for p in rig.client.crm_versions(connect(rig.sandbox, "acme"), "Leads", meter=meter)
    ]
    [page] = pages
    assert [r["id"] for r in page.rows] == [ids[0], *reversed(ids[1:])]
    assert set(page.rows[0]) == {"id", "Modified_Time", "Created_Time"}
    assert page.status == 200
    assert page.server_time == state.clock.dt() + timedelta(seconds=7)
    assert meter.calls == meter.crm_credits == 1


async def test_idle_module_costs_one_empty_page_that_still_has_a_date(rig: Rig) -> None:
    state = rig.sandbox.state
    state.clock.freeze()
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    empty = [p async for p in rig.client.crm_versions(connection, "Deals")]
    assert [(p.rows, p.status) for p in empty] == [([], 204)]
    state.crm_create("Deals", {})
    since = state.clock.dt()
    state.clock.advance(30)
    [idle] = [p async for p in rig.client.crm_versions(connection, "Deals", since=since)]
    assert (idle.rows, idle.status, idle.server_time) == ([], 304, state.clock.dt())
    assert state.count(LIST) == 2


async def test_caller_breaks_out_at_its_checkpoint(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    for _ in range(450):
        state.crm_create("Deals", {})
    async for page in rig.client.crm_versions(connect(rig.sandbox, "acme"), "Deals"):
        assert len(page.rows) == 200
        break  # reached the checkpoint on page 1
    assert state.count(LIST) == 1


async def test_expired_page_token_restarts_the_walk_at_page_one(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    ids = {state.crm_create("Deals", {}) for _ in range(2300)}

    def expire_once(page: PageServed) -> None:
        if page.page == 11:  # the first page read with a token
            state.expire_page_tokens()
            remove()

    remove = state.on_page(expire_once)
    pages = [p async for p in rig.client.crm_versions(connect(rig.sandbox, "acme"), "Deals")]
    restarted = [i for i, p in enumerate(pages) if p.restarted]
    assert restarted == [11]  # page 12's token was refused; page 1 came again
    assert {r["id"] for p in pages for r in p.rows} == ids
    assert len(pages) == 11 + 12
    assert state.count(LIST, status=400) == 1


async def test_restarts_are_bounded(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    for _ in range(2100):
        state.crm_create("Deals", {})
    state.on_page(lambda page: state.expire_page_tokens() if page.page == 10 else None)
    with pytest.raises(ZohoApiError) as refused:
        async for _page in rig.client.crm_versions(connect(rig.sandbox, "acme"), "Deals"):
            pass
    assert (refused.value.status, refused.value.code) == (400, "EXPIRED_VALUE")
    assert state.count(LIST, status=400) == 3  # two restarts, then the error


async def test_deleted_pages_carry_the_date(rig: Rig) -> None:
    state = rig.sandbox.state
    state.clock.freeze()
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    record = state.crm_create("Leads", {})
    since = state.clock.dt()
    state.clock.advance(2)
    state.crm_delete("Leads", record)
    [page] = [p async for p in rig.client.crm_deleted_pages(connection, "Leads", since)]
    assert ([r["id"] for r in page.rows], page.server_time) == ([record], state.clock.dt())
    [idle] = [p async for p in rig.client.crm_deleted_pages(connection, "Leads", state.clock.dt())]
    assert (idle.status, idle.rows) == (304, [])
    legacy = [p async for p in rig.client.crm_list_deleted(connection, "Leads", since)]
    assert [[r["id"] for r in p] for p in legacy] == [[record]]


async def test_get_records_by_ids_in_batches_of_100(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    ids = [state.crm_create("Leads", {"Last_Name": str(i), "Email": f"{i}@x"}) for i in range(250)]
    state.crm_convert(ids[0])
    meter = CallMeter()
    rows = await rig.client.crm_get_records(
        connect(rig.sandbox, "acme"), "Leads", [*ids, ids[3], "404"], meter=meter
    )
    assert [r["id"] for r in rows] == ids  # the converted lead too; unknown ids absent
    assert rows[7]["Email"] == "7@x"
    assert state.count(LIST) == meter.calls == 3
    assert await rig.client.crm_get_records(connect(rig.sandbox, "acme"), "Leads", ["404"]) == []
