"""The long-poll cap: at most BRIDGE_LONG_POLLS_PER_SUBSCRIPTION reads of one subscription
and BRIDGE_LONG_POLLS_TOTAL in all wait at once; one more is answered 429 at once, with
Retry-After. Reads without `wait` are never capped, and a commit wakes only the waiting
reads whose filter it matches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bridge.settings import Settings
from bridge.web.app import create_app
from tests.support import ADMIN, crm_body

CHANNEL, TOKEN = "1000000068001", "TOKEN_FOR_VERIFICATION_OF_1000000068001"


@pytest.fixture
async def capped(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        settings.model_copy(update={"long_polls_per_subscription": 2, "long_polls_total": 3})
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            r = await client.post("/admin/channels/import", headers=ADMIN,
                                  json={"channel_id": CHANNEL, "token": TOKEN})  # fmt: skip
            assert r.status_code == 201
            yield client


async def _subscribe(client: httpx.AsyncClient, name: str, **body: Any) -> dict[str, str]:
    r = await client.post("/admin/subscriptions", json={"name": name, **body}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def _read(
    client: httpx.AsyncClient, name: str, auth: dict[str, str], wait: int, **params: Any
) -> Any:
    return client.get(
        f"/v1/subscriptions/{name}/events", params={"wait": wait, **params}, headers=auth
    )


async def _held(client: httpx.AsyncClient, count: int) -> None:
    for _ in range(500):
        metrics = (await client.get("/metrics")).text
        if f"bridge_long_polls {float(count)}" in metrics:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {count} long-polls held")


async def test_reads_past_the_caps_are_refused_at_once_and_the_rest_still_work(
    capped: httpx.AsyncClient,
) -> None:
    client = capped
    billing, audit = await _subscribe(client, "billing"), await _subscribe(client, "audit")
    first = [asyncio.create_task(_read(client, "billing", billing, 20)) for _ in range(2)]
    await _held(client, 2)

    refused = await _read(client, "billing", billing, 20)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "5"
    body = refused.json()
    assert body["error"] == "too_many_requests"
    assert "BRIDGE_LONG_POLLS_PER_SUBSCRIPTION" in body["message"]
    # A read that does not wait is never capped.
    now = await _read(client, "billing", billing, 0)
    assert (now.status_code, now.json()["items"]) == (200, [])

    other = asyncio.create_task(_read(client, "audit", audit, 20))
    await _held(client, 3)
    over_total = await _read(client, "audit", audit, 20)
    assert over_total.status_code == 429
    assert "BRIDGE_LONG_POLLS_TOTAL" in over_total.json()["message"]
    metrics = (await client.get("/metrics")).text
    assert "bridge_long_polls_refused_total" in metrics

    # A new event answers every waiting read, and their places are free again.
    assert (await client.post("/hooks/crm", json=crm_body(ids=["1"]))).status_code == 200
    for answer in await asyncio.gather(*first, other):
        assert answer.status_code == 200
        assert [e["zohorecordid"] for e in answer.json()["items"]] == ["1"]
    await _held(client, 0)
    again = asyncio.create_task(_read(client, "billing", billing, 20, after=1))
    await _held(client, 1)
    assert (await client.post("/hooks/crm", json=crm_body(ids=["2"]))).status_code == 200
    assert (await again).status_code == 200


async def test_a_commit_wakes_the_reads_its_events_match(capped: httpx.AsyncClient) -> None:
    client = capped
    deals = await _subscribe(client, "deals", module="Deals")
    waiting = asyncio.create_task(_read(client, "deals", deals, 20))
    await _held(client, 1)
    leads = await client.post("/hooks/crm", json=crm_body(ids=["lead"], module="Leads"))
    assert leads.status_code == 200
    await asyncio.sleep(0.2)
    assert not waiting.done()  # nothing for it: it goes on waiting
    deal = await client.post(
        "/hooks/crm", json=crm_body(ids=["deal"], module="Deals", server_time=1718117126999)
    )
    assert deal.status_code == 200
    answer = await asyncio.wait_for(waiting, 5)
    assert [e["zohorecordid"] for e in answer.json()["items"]] == ["deal"]
