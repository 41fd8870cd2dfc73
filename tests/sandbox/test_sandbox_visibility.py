"""Changes that reach the read APIs late: Modified_Time is t, but list and COQL return
the change only later (reconciliation.md C15, a.2 #2)."""

from __future__ import annotations

from datetime import timedelta

from bridge.sandbox.model import Channel

from .conftest import Api, Receiver

PARAMS = {"fields": "Last_Name", "sort_by": "Modified_Time", "sort_order": "desc"}


async def test_global_delay_hides_a_new_record_with_an_old_time(api: Api) -> None:
    state = api.state
    state.visibility_delay = 60
    created_at = state.clock.dt()
    record = state.crm_create("Leads", {"Last_Name": "late"})
    assert (await api.crm("Leads", **PARAMS)).status_code == 204
    assert (await api.coql("select id from Leads limit 10")).status_code == 204
    state.clock.advance(59)
    assert (await api.crm("Leads", **PARAMS)).status_code == 204
    state.clock.advance(1)
    [row] = (await api.crm("Leads", **PARAMS)).json()["data"]
    # It shows up a minute late, stamped with the time it was made.
    assert (row["id"], row["Modified_Time"]) == (record, created_at.isoformat())


async def test_update_shows_the_previous_version_until_visible(
    api: Api, receiver: Receiver
) -> None:
    state = api.state
    state.org().channels["7"] = Channel(
        "7", ["Leads.edit"], receiver.url, state.clock.dt() + timedelta(hours=1)
    )
    record = state.crm_create("Leads", {"Last_Name": "old"})
    before = state.clock.dt()
    state.clock.advance(5)
    changed_at = state.clock.dt()
    state.crm_update("Leads", record, {"Last_Name": "new"}, visible_after=30)
    await state.flush()
    assert [r["operation"] for r in receiver.received] == ["update"]  # not held back
    [row] = (await api.crm("Leads", **PARAMS)).json()["data"]
    assert (row["Last_Name"], row["Modified_Time"]) == ("old", before.isoformat())
    since = {"If-Modified-Since": before.isoformat()}
    assert (await api.crm("Leads", headers=since, **PARAMS)).status_code == 304
    [coql_row] = (await api.coql("select Last_Name from Leads limit 5")).json()["data"]
    assert coql_row["Last_Name"] == "old"
    state.clock.advance(30)
    [row] = (await api.crm("Leads", headers=since, **PARAMS)).json()["data"]
    assert (row["Last_Name"], row["Modified_Time"]) == ("new", changed_at.isoformat())


async def test_two_quick_updates_keep_the_last_visible_version(api: Api) -> None:
    state = api.state
    record = state.crm_create("Leads", {"Last_Name": "v1"})
    state.crm_update("Leads", record, {"Last_Name": "v2"}, visible_after=10)
    state.clock.advance(5)
    state.crm_update("Leads", record, {"Last_Name": "v3"}, visible_after=10)
    assert (await api.crm("Leads", **PARAMS)).json()["data"][0]["Last_Name"] == "v1"
    state.clock.advance(10)
    assert (await api.crm("Leads", **PARAMS)).json()["data"][0]["Last_Name"] == "v3"
