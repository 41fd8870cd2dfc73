"""Which changes' callbacks were dropped, asked from Python and over `/_sandbox/`; and a
burst of changes for demos (reconciliation tests assert `missed` equals these)."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from bridge.sandbox.model import Channel

from .conftest import Api, Receiver


def _channel(api: Api, channel_id: str, url: str) -> None:
    expiry = api.state.clock.dt() + timedelta(hours=1)
    api.state.org().channels[channel_id] = Channel(channel_id, ["Leads.all"], url, expiry)


async def test_dropped_versions_are_exactly_the_unannounced_changes(
    api: Api, receiver: Receiver
) -> None:
    state = api.state
    _channel(api, "1", receiver.url)
    state.books_webhook("invoices", receiver.url)
    state.drop_rate = 0.5
    created_at = state.clock.dt()
    leads = [state.crm_create("Leads", {"Last_Name": str(i)}) for i in range(10)]
    state.clock.advance(3)
    for lead in leads[:5]:
        state.crm_update("Leads", lead, {"Phone": "1"})
    invoices = [state.books_create("invoices", {}) for _ in range(6)]
    await state.flush()

    everything = {("crm", i, "insert") for i in leads}
    everything |= {("crm", i, "update") for i in leads[:5]}
    everything |= {("books", i, "insert") for i in invoices}
    received = {
        ("crm", r["ids"][0], r["operation"])
        if "ids" in r
        else ("books", r["invoice"]["invoice_id"], "insert")
        for r in receiver.received
    }
    dropped = state.dropped_versions()
    dropped_keys = {(c.product, c.record_id, c.operation) for c in dropped}
    assert 0 < len(dropped) < len(everything)
    assert received | dropped_keys == everything
    assert not received & dropped_keys
    for change in dropped:
        assert change.org == "acme"
        early = change.product == "crm" and change.operation == "insert"
        expected = created_at if early else state.clock.dt()
        assert change.modified == expected  # the version a poller would find
        assert change.module == ("Leads" if change.product == "crm" else "invoice")
    assert {c.product for c in state.dropped_versions(product="books")} <= {"books"}
    assert state.unannounced_versions() == dropped  # nothing failed for other reasons


async def test_a_change_delivered_by_another_channel_is_not_dropped(
    api: Api, receiver: Receiver
) -> None:
    state = api.state
    _channel(api, "1", receiver.url)
    _channel(api, "2", "http://127.0.0.1:9/down")
    state.drop_rate = 1.0
    state.crm_create("Leads", {})
    state.drop_rate = 0.0
    lead = state.crm_create("Leads", {})
    await state.flush()
    # The first change: dropped on both channels. The second: delivered to one, failed
    # on the other: announced, so neither dropped nor unannounced.
    [dropped] = state.dropped_versions()
    assert dropped.record_id != lead
    assert state.unannounced_versions() == {dropped}


async def test_control_endpoints_set_drops_make_a_burst_and_list_drops(
    api: Api, receiver: Receiver, http: httpx.AsyncClient
) -> None:
    base = f"{api.sandbox.url}/_sandbox"
    _channel(api, "1", receiver.url)
    await http.post(
        f"{base}/orgs/acme/books-webhooks", json={"entity": "invoices", "url": receiver.url}
    )
    faults = await http.put(f"{base}/faults", json={"drop_rate": 0.4, "seed": 7, "date_skew": 2})
    assert (faults.json()["drop_rate"], faults.json()["date_skew"]) == (0.4, 2.0)
    made = await http.post(
        f"{base}/orgs/acme/burst", json={"crm": {"Leads": 8}, "books": {"invoices": 4}, "edits": 6}
    )
    assert made.status_code == 201
    assert (len(made.json()["crm"]["Leads"]), len(made.json()["books"]["invoices"])) == (8, 4)
    await api.state.flush()
    listed = (await http.get(f"{base}/dropped")).json()
    expected = api.state.dropped_versions()
    assert len(listed) == len(expected) > 0
    assert {
        (r["product"], r["record_id"], r["operation"], datetime.fromisoformat(r["modified"]))
        for r in listed
    } == {(c.product, c.record_id, c.operation, c.modified) for c in expected}
    assert len(receiver.received) + len(listed) == 8 + 4 + 6
    crm_only = (await http.get(f"{base}/dropped", params={"product": "crm"})).json()
    assert {r["product"] for r in crm_only} <= {"crm"}


async def test_control_endpoints_for_late_changes_conversion_and_throttling(
    api: Api, http: httpx.AsyncClient
) -> None:
    base = f"{api.sandbox.url}/_sandbox"
    made = await http.post(
        f"{base}/orgs/acme/crm/Leads", json={"fields": {"Last_Name": "L"}, "visible_after": 30}
    )
    lead = made.json()["id"]
    assert (await api.crm("Leads", fields="id")).status_code == 204  # not visible yet
    bad = await http.post(f"{base}/orgs/acme/crm/Leads", json={"visible_after": "soon"})
    assert bad.status_code == 400
    converted = (await http.post(f"{base}/orgs/acme/crm/Leads/{lead}/convert", json={})).json()
    assert api.state.org().crm_records["Leads"][lead].converted
    assert converted["contact_id"] in api.state.org().crm_records["Contacts"]
    assert (await http.post(f"{base}/orgs/acme/crm/Leads/404/convert")).status_code == 404
    faults = (await http.put(f"{base}/faults", json={"crm_throttle": 1})).json()
    assert faults["crm_throttle"] == 1
    assert (await api.crm("Deals", fields="id")).status_code == 429
    refused = await http.put(f"{base}/books-settings/invoices", json={"filter": "later"})
    assert refused.status_code == 400
    ok = await http.put(f"{base}/books-settings/invoice", json={"filter": "equal"})
    assert ok.json() == {"filter": "equal", "sortable": True}
    assert api.state.settings_for("invoices").filter == "equal"
