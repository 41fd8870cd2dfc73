from __future__ import annotations

import httpx

from tests.support import ADMIN, crm_body


async def test_crm_callback_becomes_an_event(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/admin/channels/import",
        json={"channel_id": "1000000068001", "token": "TOKEN_FOR_VERIFICATION_OF_1000000068001",
              "events": ["Leads.all"], "source": "acme-eu"},
        headers=ADMIN,
    )
    assert r.status_code == 201, r.text
    r = await client.post("/hooks/crm", json=crm_body())
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"
    assert r.json()["events"] == 1
    r = await client.post("/hooks/crm", json=crm_body())
    assert r.json()["status"] == "duplicate"
    events = (await client.get("/admin/events", headers=ADMIN)).json()["items"]
    assert [(e["module"], e["operation"], e["source"]) for e in events] == [
        ("Leads", "created", "acme-eu")
    ]
