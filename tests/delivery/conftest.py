"""Fixtures for delivery tests: a bridge with sinks and a fast relay, a recording subscriber.

The broker fixtures (real Redis, NATS, RabbitMQ: failing, never skipping, when one is down)
are the sink tests' own.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from bridge.domain.standard_webhooks import SigningSecret
from bridge.runtime import Runtime, utc_now
from bridge.settings import Settings
from bridge.sinks.factory import SinkConfig
from bridge.web.app import create_app
from tests.sinks.conftest import (  # noqa: F401  (fixtures)
    SubscriberServer,
    amqp_channel,
    nats_client,
    redis_client,
    run_id,
    unique,
)
from tests.sinks.support import closed_port_socket
from tests.support import ADMIN, ADMIN_TOKEN, SECRET_KEY, crm_body

CHANNEL = "1000000068001"
TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"
WEBHOOK_SECRET = SigningSecret(b"d" * 32).serialize()
# Fast retries and polling, so failure paths run in well under a second.
FAST = {
    "relay_poll_seconds": 0.05,
    "retry_base_seconds": 0.02,
    "retry_cap_seconds": 0.1,
    "sink_probe_seconds": 0.02,
    "sink_probe_cap_seconds": 0.1,
}


@dataclass
class Recorder:
    """A webhook subscriber: records each envelope, fails the records it is told to.

    `fail` maps a record id to the status answered for it (503, 410, 400...).
    """

    url: str = ""
    envelopes: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    # The body answered with a failure.
    fail_body: bytes = b""
    attempts: dict[str, int] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    overlaps: int = 0
    # The client ends (address, port) requests came from: one per connection.
    peers: set[tuple[str, int]] = field(default_factory=set)
    delay: float = 0.0
    # Up to this much more, at random: requests sent together finish in any order.
    jitter: float = 0.0

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        if request.client is not None:
            self.peers.add((request.client.host, request.client.port))
        envelope = json.loads(body)
        record, event_id = envelope["zohorecordid"], envelope["id"]
        self.attempts[record] = self.attempts.get(record, 0) + 1
        if self.in_flight.get(event_id):
            self.overlaps += 1  # the same event published twice at once
        self.in_flight[event_id] = self.in_flight.get(event_id, 0) + 1
        try:
            if self.delay or self.jitter:
                await asyncio.sleep(self.delay + random.random() * self.jitter)
            status = self.fail.get(record)
            if status is not None:
                return Response(self.fail_body, status_code=status)
            self.envelopes.append(envelope)
            self.bodies.append(body)
            return Response(status_code=204)
        finally:
            self.in_flight[event_id] -= 1

    def ids(self) -> list[str]:
        return [e["id"] for e in self.envelopes]

    def records(self) -> list[tuple[str, int]]:
        return [(e["zohorecordid"], e["bridgeseq"]) for e in self.envelopes]


@asynccontextmanager
async def recorder_at(sock: socket.socket, recorder: Recorder) -> AsyncIterator[Recorder]:
    async with SubscriberServer(recorder, sock):  # type: ignore[arg-type]
        yield recorder


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    sock = closed_port_socket()
    async with recorder_at(sock, Recorder()) as running:
        yield running
    sock.close()


def webhook_config(url: str, **extra: Any) -> SinkConfig:
    return SinkConfig(sinks=("pull", "webhook"), webhook_url=url,
                      webhook_secrets=(WEBHOOK_SECRET,), webhook_timeout=5, **extra)  # fmt: skip


@dataclass
class Bridge:
    client: httpx.AsyncClient
    runtime: Runtime

    async def post_crm(self, *ids: str, server_time: int = 1718117126473, **kw: Any) -> None:
        r = await self.client.post(
            "/hooks/crm", json=crm_body(ids=list(ids), server_time=server_time, **kw)
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "accepted", r.text

    async def outbox(self, **params: Any) -> list[dict[str, Any]]:
        r = await self.client.get("/admin/outbox", params=params | {"limit": 1000}, headers=ADMIN)
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    async def status(self) -> dict[str, Any]:
        r = await self.client.get("/admin/status", headers=ADMIN)
        assert r.status_code == 200, r.text
        found: dict[str, Any] = r.json()
        return found


BridgeFactory = Callable[..., AbstractAsyncContextManager[Bridge]]


@pytest.fixture
def bridge(database_url: str) -> BridgeFactory:
    """`async with bridge(sink_config, **settings) as b`: the real app, relay running."""

    @asynccontextmanager
    async def start(
        config: SinkConfig | None = None,
        clock: Callable[[], datetime] = utc_now,
        **overrides: Any,
    ) -> AsyncIterator[Bridge]:
        settings = Settings.from_environ(
            {}, database_url=database_url, admin_token=ADMIN_TOKEN, secret_key=SECRET_KEY,
            sink_config=config, **(FAST | overrides),
        )  # fmt: skip
        app = create_app(settings, clock=clock)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
                r = await client.post("/admin/channels/import", headers=ADMIN,
                                      json={"channel_id": CHANNEL, "token": TOKEN})  # fmt: skip
                assert r.status_code in (201, 409), r.text
                yield Bridge(client, app.state.runtime)

    return start


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `check()` holds (the relay works in the background)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
