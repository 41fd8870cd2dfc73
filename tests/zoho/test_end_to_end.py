"""A channel enabled through ZohoClient delivers the sandbox's callbacks to a receiver."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.sandbox import serve_app
from bridge.zoho.watch import WatchSpec

from .conftest import Rig, connect


@pytest.fixture
async def inbox() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    async def hook(request: Request) -> Response:
        received.append(await request.json())
        return Response(status_code=200)

    async with serve_app(Starlette(routes=[Route("/hooks/crm", hook, methods=["POST"])])) as url:
        yield url, received


async def test_enabled_channel_receives_until_it_expires_and_drops_are_recorded(
    rig: Rig, inbox: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = inbox
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    spec = WatchSpec("42", ["Leads.all"], f"{url}/hooks/crm?source=acme", "s3cret-token")
    await rig.client.crm_watch_enable(connection, [spec])  # no expiry → one hour

    state.drop_rate = 0.5
    ids = [state.crm_create("Leads", {"Last_Name": str(i)}) for i in range(20)]
    await state.flush()
    dropped = [d.payload["ids"][0] for d in state.delivered("dropped")]
    assert 0 < len(dropped) < 20
    assert sorted([r["ids"][0] for r in received] + dropped) == sorted(ids)
    assert {r["token"] for r in received} == {"s3cret-token"}
    assert {r["query_params"]["source"] for r in received} == {"acme"}

    state.drop_rate = 0.0
    state.clock.advance(3600)  # the channel is dead; Zoho sends nothing and says nothing
    state.crm_create("Leads", {})
    await state.flush()
    assert len(received) == 20 - len(dropped)
    assert await rig.client.crm_watch_get(connection) == []
