"""COQL through ZohoClient: rows, LIMIT/OFFSET, and credits costed by LIMIT (zoho.md §4.2)."""

from __future__ import annotations

import pytest

from bridge.zoho.crm import coql_limit
from bridge.zoho.errors import BudgetExhausted, ZohoApiError

from .conftest import Rig, connect


async def test_coql_pages_by_offset_and_costs_credits_by_limit(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    since = state.clock.dt()
    state.clock.advance(1)
    ids = [state.crm_create("Leads", {"Last_Name": str(i)}) for i in range(250)]
    connection = connect(rig.sandbox, "acme", crm_daily_credits=100)
    query = (
        "select id, Last_Name from Leads where Modified_Time >= '{since}' "
        "order by Modified_Time asc limit {limit} offset {offset}"
    )
    first = await rig.client.crm_coql(
        connection, query.format(since=since.isoformat(), limit=1000, offset=0)
    )
    assert [r["id"] for r in first.rows] == ids
    assert first.more_records is False
    assert (await rig.client.budget_left(connection)).crm_credits_today == 98  # LIMIT 1000 → 2

    page = await rig.client.crm_coql(
        connection, query.format(since=since.isoformat(), limit=200, offset=200)
    )
    assert [r["id"] for r in page.rows] == ids[200:]
    assert (await rig.client.budget_left(connection)).crm_credits_today == 97  # LIMIT 200 → 1

    state.clock.advance(5)
    later = state.clock.dt().isoformat()
    empty = await rig.client.crm_coql(connection, query.format(since=later, limit=2000, offset=0))
    assert empty.rows == []
    assert (await rig.client.budget_left(connection)).crm_credits_today == 94  # LIMIT 2000 → 3


async def test_coql_errors_and_budget(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme", crm_daily_credits=3)
    with pytest.raises(ZohoApiError) as error:
        await rig.client.crm_coql(connection, "delete from Leads")
    assert error.value.code == "SYNTAX_ERROR"
    with pytest.raises(BudgetExhausted):
        await rig.client.crm_coql(connection, "select id from Leads limit 2000")  # needs 3, 2 left
    assert state.count("POST /crm/v8/coql") == 1


def test_coql_limit_is_read_from_the_query() -> None:
    assert coql_limit("select id from Leads") == 200
    assert coql_limit("select id from Leads LIMIT 1500 offset 4000") == 1500
    assert coql_limit("select id from Leads limit 10, 500") == 500
