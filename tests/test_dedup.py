"""Concurrent duplicates yield exactly one event: the unique constraint decides, not a cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from bridge.settings import Settings
from bridge.web.app import create_app
from tests.support import ADMIN, crm_body, sample

TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"


@asynccontextmanager
async def _bridge(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def _setup(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/admin/channels/import", json={"channel_id": "1000000068001", "token": TOKEN},
        headers=ADMIN,
    )  # fmt: skip
    assert r.status_code == 201
    r = await client.post(
        "/admin/sources", json={"name": "acme", "tokens": ["books-token-0123456789"]},
        headers=ADMIN,
    )  # fmt: skip
    assert r.status_code == 201


async def test_fifty_concurrent_copies_make_one_event(client: httpx.AsyncClient) -> None:
    await _setup(client)
    answers = await asyncio.gather(
        *(client.post("/hooks/crm", json=sample("crm-update-several-ids.json")) for _ in range(50))
    )
    assert [a.status_code for a in answers] == [200] * 50
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses == ["accepted"] + ["duplicate"] * 49
    assert sum(a.json()["events"] for a in answers) == 3
    events = (await client.get("/admin/events", headers=ADMIN)).json()["items"]
    assert len(events) == 3
    requests = (await client.get("/admin/requests", params={"limit": 100}, headers=ADMIN)).json()
    assert len(requests["items"]) == 50  # every delivery is on record


async def test_mixed_concurrent_deliveries_keep_distinct_events(client: httpx.AsyncClient) -> None:
    await _setup(client)
    bodies = [crm_body(server_time=1000 + i % 10, ids=[str(i % 10)]) for i in range(100)]
    answers = await asyncio.gather(*(client.post("/hooks/crm", json=b) for b in bodies))
    assert sum(a.json()["events"] for a in answers) == 10
    assert sum(a.json()["duplicates"] for a in answers) == 90


async def test_two_bridges_on_one_database_race_to_one_event(settings: Settings) -> None:
    async with _bridge(settings) as first, _bridge(settings) as second:
        await _setup(first)
        body = sample("books-invoice.json")
        answers = await asyncio.gather(
            *(
                (first if i % 2 else second).post(
                    "/hooks/books/acme", params={"token": "books-token-0123456789"}, json=body
                )
                for i in range(40)
            )
        )
        assert [a.status_code for a in answers] == [200] * 40
        assert sum(a.json()["events"] for a in answers) == 1
        events = (await first.get("/admin/events", headers=ADMIN)).json()["items"]
        assert len(events) == 1
