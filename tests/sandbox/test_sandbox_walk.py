"""Edits between the pages of a walk (`state.on_page`): newest-first walks pick the
edited record up next run; oldest-first page-number walks skip records for good
(reconciliation.md a.1, Nango and Activepieces rows; e #3)."""

from __future__ import annotations

from bridge.sandbox.model import PageServed

from .conftest import Api

DESC = {"fields": "Last_Name", "sort_by": "Modified_Time", "sort_order": "desc", "per_page": "2"}


async def test_newest_first_walk_defers_an_edited_record_to_the_next_run(api: Api) -> None:
    state = api.state
    ids = []
    for i in range(6):
        ids.append(state.crm_create("Leads", {"Last_Name": f"r{i}"}))
        state.clock.advance(1)
    served: list[PageServed] = []

    def edit_oldest(page: PageServed) -> None:
        served.append(page)
        if page.page == 1:
            state.crm_update("Leads", ids[0], {"Last_Name": "edited"})

    remove = state.on_page(edit_oldest)
    seen: list[str] = []
    answer = (await api.crm("Leads", **DESC)).json()
    seen += [r["id"] for r in answer["data"]]
    while answer["info"]["more_records"]:
        token = answer["info"]["next_page_token"]
        answer = (await api.crm("Leads", **DESC, page_token=token)).json()
        seen += [r["id"] for r in answer["data"]]
    remove()
    assert [p.page for p in served] == [1, 2, 3]
    assert served[0] == PageServed("acme", "Leads", "list", 1, [ids[5], ids[4]])
    # The edited record jumped above the walk: not in it, a neighbour came twice.
    assert ids[0] not in seen
    assert seen.count(ids[4]) == 2
    assert set(seen) == set(ids[1:])
    assert (await api.crm("Leads", **DESC)).json()["data"][0]["id"] == ids[0]  # next run
    assert len(served) == 3  # the hook is gone


async def test_oldest_first_page_number_walk_loses_a_record(api: Api) -> None:
    state = api.state
    ids = []
    for i in range(6):
        ids.append(state.crm_create("Leads", {"Last_Name": f"r{i}"}))
        state.clock.advance(1)

    def edit_served(page: PageServed) -> None:
        if page.page == 1:
            state.crm_update("Leads", ids[1], {"Last_Name": "edited"})

    state.on_page(edit_served)
    asc = {**DESC, "sort_order": "asc"}
    seen = []
    for page in (1, 2, 3):
        seen += [r["id"] for r in (await api.crm("Leads", **asc, page=str(page))).json()["data"]]
    # r1 moved to the end and came again; r2 slid onto page 1 after it was read: lost,
    # with an old Modified_Time no later run will look behind.
    assert ids[2] not in seen
    assert seen.count(ids[1]) == 2


async def test_coql_pages_call_the_hook_too(api: Api) -> None:
    state = api.state
    record = state.crm_create("Leads", {})
    pages: list[PageServed] = []
    state.on_page(pages.append)
    await api.coql("select id from Leads limit 10")
    assert pages == [PageServed("acme", "Leads", "coql", 1, [record])]
