"""Fixtures for the sink tests: sample events, real brokers, a local HTTP subscriber.

The brokers are the real servers on 127.0.0.1 (Redis 6379, NATS 4222, RabbitMQ 5672). A
broker that is down makes its tests fail, never skip: a green run must mean "delivered".
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import pytest
import uvicorn
from aio_pika.abc import AbstractChannel
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.domain.events import StoredEvent

from .support import AMQP_URL, NATS_URL, REDIS_URL, closed_port_socket, sample_event

EventFactory = Callable[..., StoredEvent]


@pytest.fixture(scope="session")
def run_id() -> str:
    """Unique per test run, for stream/exchange/subject names that must not collide."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_event() -> EventFactory:
    """Distinct events: each call gets a fresh id and the next sequence number."""
    counter = iter(range(1, 1_000_000))

    def make(**overrides: Any) -> StoredEvent:
        seq = next(counter)
        defaults: dict[str, Any] = {"id": f"01TEST{uuid.uuid4().hex[:20].upper()}", "seq": seq}
        return sample_event(**(defaults | overrides))

    return make


@pytest.fixture
def closed_port() -> Iterator[int]:
    sock = closed_port_socket()
    yield sock.getsockname()[1]
    sock.close()


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Subscriber:
    """A webhook subscriber that records requests and answers from a script.

    `answers` is consumed first to last; once empty every request gets 204.
    """

    url: str = ""
    received: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0

    def reset(self) -> None:
        self.received, self.answers, self.delay = [], [], 0.0

    async def endpoint(self, request: Request) -> Response:
        self.received.append(Received(dict(request.headers), await request.body()))
        # Answer chosen before sleeping: a slow request outliving its test must not take
        # the next test's scripted answer.
        status, headers = self.answers.pop(0) if self.answers else (204, {})
        if self.delay:
            await asyncio.sleep(self.delay)
        return Response(status_code=status, headers=headers)


class SubscriberServer:
    """Runs a Subscriber under uvicorn on an already bound socket."""

    def __init__(self, subscriber: Subscriber, sock: socket.socket) -> None:
        app = Starlette(routes=[Route("/hook", subscriber.endpoint, methods=["POST"])])
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, ws="none")
        self._server = uvicorn.Server(config)
        self._sock = sock
        self._task: asyncio.Task[None] | None = None
        host, port = sock.getsockname()
        subscriber.url = f"http://{host}:{port}/hook"

    async def __aenter__(self) -> SubscriberServer:
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


@pytest.fixture(scope="session")
async def subscriber_server() -> AsyncIterator[Subscriber]:
    # One server for the session: starting and stopping uvicorn costs ~0.15 s a test.
    sub = Subscriber()
    sock = closed_port_socket()
    async with SubscriberServer(sub, sock):
        yield sub
    sock.close()


@pytest.fixture
def subscriber(subscriber_server: Subscriber) -> Subscriber:
    """The running local subscriber at `subscriber.url`, with nothing received yet."""
    subscriber_server.reset()
    return subscriber_server


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.ping()  # fails the test, not skips it, when Redis is down
    yield client
    await client.aclose()


@pytest.fixture
async def nats_client() -> AsyncIterator[NatsClient]:
    client = NatsClient()
    await client.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
    yield client
    await client.close()


@pytest.fixture
async def amqp_channel() -> AsyncIterator[AbstractChannel]:
    connection = await aio_pika.connect(AMQP_URL)
    channel = await connection.channel()
    yield channel
    await connection.close()


@pytest.fixture
def unique(run_id: str) -> str:
    """A name part unique to this test in this run."""
    return f"{run_id}{uuid.uuid4().hex[:6]}"
