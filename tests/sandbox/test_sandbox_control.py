"""The `/_sandbox/` JSON control API drives the same state as the Python API."""

from __future__ import annotations

import httpx

from bridge.sandbox import RunningSandbox

from .conftest import Receiver


async def test_control_api_end_to_end(
    sandbox: RunningSandbox, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    base = f"{sandbox.url}/_sandbox"
    created = await http.post(
        f"{base}/orgs", json={"name": "acme", "dc": "eu", "books_per_minute": 7}
    )
    assert created.status_code == 201
    org = created.json()
    assert org["accounts_url"] == sandbox.accounts_url("eu")
    assert org["api_domain"] == sandbox.api_domain("eu")
    assert sandbox.state.org("acme").books_per_minute == 7

    await http.post(
        f"{base}/orgs/acme/books-webhooks", json={"entity": "invoices", "url": receiver.url}
    )
    await http.put(f"{base}/delivery", json={"drop_rate": 0.0, "delay": 0.0, "seed": 3})
    invoice = (
        await http.post(f"{base}/orgs/acme/books/invoices", json={"fields": {"total": 5}})
    ).json()
    await http.patch(
        f"{base}/orgs/acme/books/invoices/{invoice['id']}", json={"fields": {"total": 6}}
    )
    lead = (
        await http.post(f"{base}/orgs/acme/crm/Leads", json={"fields": {"Last_Name": "X"}})
    ).json()
    await http.patch(
        f"{base}/orgs/acme/crm/Leads/{lead['id']}", json={"fields": {"Last_Name": "Y"}}
    )
    assert (await http.delete(f"{base}/orgs/acme/crm/Leads/{lead['id']}")).status_code == 200
    assert (await http.delete(f"{base}/orgs/acme/crm/Leads/{lead['id']}")).status_code == 404
    await sandbox.state.flush()
    assert [r["invoice"]["total"] for r in receiver.received] == [5, 6]

    before = sandbox.state.clock.now()
    await http.post(f"{base}/clock/advance", json={"seconds": 120})
    assert sandbox.state.clock.now() - before >= 120

    counters = (await http.get(f"{base}/counters")).json()
    assert counters["deliveries"] == {"delivered": 2}
    assert sandbox.state.org("acme").crm_deleted["Leads"][0]["id"] == lead["id"]
    assert [o["name"] for o in (await http.get(f"{base}/orgs")).json()] == ["acme"]
