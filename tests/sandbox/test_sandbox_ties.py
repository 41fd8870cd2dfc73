"""Same-second ties: many records share one Modified_Time; the order is (time, id), also
across page boundaries (reconciliation.md a.2 #1, C2)."""

from __future__ import annotations

from bridge.zoho.coql import CoqlKey, keyset_query

from .conftest import Api


async def test_ties_are_ordered_by_id_across_a_page_boundary(api: Api) -> None:
    state = api.state
    ids = [state.crm_create("Leads", {"Last_Name": str(i)}) for i in range(250)]
    state.clock.advance(1)
    newest = state.crm_create("Leads", {"Last_Name": "newest"})
    params = {"fields": "Last_Name", "sort_by": "Modified_Time", "sort_order": "desc"}
    first = (await api.crm("Leads", **params)).json()
    second = (await api.crm("Leads", **params, page_token=first["info"]["next_page_token"])).json()
    got = [r["id"] for r in first["data"] + second["data"]]
    assert got == [newest, *sorted(ids, key=int, reverse=True)]
    assert len({r["Modified_Time"] for r in first["data"][1:] + second["data"]}) == 1
    assert second["info"]["more_records"] is False

    ascending = (await api.crm("Leads", **{**params, "sort_order": "asc"})).json()
    assert [r["id"] for r in ascending["data"]] == sorted(ids, key=int)[:200]


async def test_coql_keyset_walk_crosses_ties_without_loss_or_repeat(api: Api) -> None:
    state = api.state
    start = state.clock.dt()
    expected: list[str] = []
    for _second in range(3):
        expected += [state.crm_create("Deals", {}) for _ in range(150)]  # 150 at one second
        state.clock.advance(1)
    seen: list[str] = []
    query = keyset_query("Deals", since=start, limit=200)
    while True:
        answer = (await api.coql(query)).json()
        seen += [r["id"] for r in answer["data"]]
        if not answer["info"]["more_records"]:
            break
        after = CoqlKey.of(answer["data"][-1])
        assert after is not None
        query = keyset_query("Deals", after=after, limit=200)
    assert seen == expected  # ids grow within each second, so this is (time, id) order
    assert api.state.count("POST /crm/v8/coql", status=200) == 3


async def test_coql_upper_bound_and_operators(api: Api) -> None:
    state = api.state
    start = state.clock.dt()
    early = state.crm_create("Leads", {"Last_Name": "a"})
    state.clock.advance(10)
    bound = state.clock.dt()
    middle = state.crm_create("Leads", {"Last_Name": "b"})
    state.clock.advance(10)
    state.crm_create("Leads", {"Last_Name": "c"})
    query = keyset_query("Leads", since=start, until=bound)
    assert [r["id"] for r in (await api.coql(query)).json()["data"]] == [early, middle]
    answer = await api.coql(
        f"select id, Last_Name from Leads where Last_Name != 'a' and id >= {middle} "
        "order by Last_Name desc limit 5"
    )
    assert [r["Last_Name"] for r in answer.json()["data"]] == ["c", "b"]
    bad = await api.coql("select id from Leads where (Modified_Time > '2025-01-01T00:00:00+00:00'")
    assert (bad.status_code, bad.json()["code"]) == (400, "SYNTAX_ERROR")
    naive = await api.coql("select id from Leads where Modified_Time > '2025-01-01T00:00:00'")
    assert naive.json()["code"] == "INVALID_QUERY"
