"""The HTML dashboard: served with a strict policy, and reading fields the API really has."""

from __future__ import annotations

import re

import httpx

from tests.support import ADMIN, crm_body


async def test_page_and_assets_are_served_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/admin/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self'" in csp
    assert "<script>" not in page.text  # no inline code: the policy would refuse it
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        asset = await client.get(f"/admin/static/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(kind)
    assert (await client.get("/admin/static/../app.py")).status_code == 404
    assert (await client.get("/admin/static/secrets.txt")).status_code == 404


async def test_the_script_reads_fields_the_api_has(client: httpx.AsyncClient) -> None:
    await client.post(
        "/admin/channels/import",
        json={"channel_id": "1000000068001", "token": "TOKEN_FOR_VERIFICATION_OF_1000000068001"},
        headers=ADMIN,
    )
    await client.post("/hooks/crm", json=crm_body())
    await client.post("/hooks/crm", json=crm_body(token="wrong-token-wrong-token"))
    script = (await client.get("/admin/static/dashboard.js")).text
    status = (await client.get("/admin/status", headers=ADMIN)).json()
    event = (await client.get("/admin/events", headers=ADMIN)).json()["items"][0]
    rejected = (await client.get("/admin/requests?status=rejected", headers=ADMIN)).json()["items"][
        0
    ]
    for path in ("events.count", "events.last_received_at", "channels.at_risk"):
        node = status
        for key in path.split("."):
            assert key in node, path
            node = node[key]
    assert isinstance(status["sinks"], list)
    assert isinstance(status["problems"], list)
    for field in set(re.findall(r"\be\.(\w+)", script)):
        assert field in event, field
    for field in set(re.findall(r"\br\.(\w+)", script)):
        assert field in rejected, field


async def test_the_reconciliation_section_reads_fields_the_api_has(
    client: httpx.AsyncClient,
) -> None:
    connection = {
        "name": "acme", "dc": "eu", "client_id": "1000.ID", "client_secret": "secret",
        "refresh_token": "1000.refresh",
    }  # fmt: skip
    assert (
        await client.post("/admin/connections", json=connection, headers=ADMIN)
    ).status_code == 201
    watch = {"connection": "acme", "product": "crm", "module": "Leads"}
    added = await client.post("/admin/reconciliation/watches", json=watch, headers=ADMIN)
    assert added.status_code == 201, added.text
    overview = (await client.get("/admin/reconciliation", headers=ADMIN)).json()
    script = (await client.get("/admin/static/dashboard.js")).text
    (view,) = overview["watches"]
    (budget,) = overview["budgets"]
    assert set(re.findall(r"\bw\.(\w+)", script)) <= set(view)
    assert set(re.findall(r"\bb\.(\w+)", script)) <= set(budget)
    for day in view["misses"]:
        assert {"day", "missed", "gap", "not_subscribed", "delivery_failed"} <= set(day)
    assert {"calls", "credits"} <= set(view["today"])
