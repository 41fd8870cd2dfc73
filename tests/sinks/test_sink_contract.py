"""One contract every sink meets, run against the real Redis, NATS, RabbitMQ and HTTP.

Each harness builds a sink on fresh, uniquely named broker resources and a `read` that
fetches what a subscriber would receive, using the broker's own client.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from redis.asyncio import Redis

from bridge.domain.envelope import envelope_bytes, message_for
from bridge.domain.events import StoredEvent
from bridge.domain.standard_webhooks import SigningSecret
from bridge.sinks import Sink, SinkNotStarted, SinkTransientError
from bridge.sinks.amqp import AmqpSink
from bridge.sinks.nats import JetStreamSink
from bridge.sinks.redis import RedisStreamSink
from bridge.sinks.webhook import WebhookSink

from .conftest import EventFactory, Subscriber
from .support import AMQP_URL, NATS_URL, REDIS_URL

KINDS = ["redis", "nats", "amqp", "webhook"]
BROKERS = ["redis", "nats", "amqp"]
SECRET = SigningSecret(b"s" * 32)


@dataclass
class Harness:
    sink: Sink
    read: Callable[[], Awaitable[list[bytes]]]
    unreachable: Sink


@pytest.fixture
async def harness(
    request: pytest.FixtureRequest,
    unique: str,
    closed_port: int,
    redis_client: Redis,
    nats_client: NatsClient,
    amqp_channel: AbstractChannel,
    subscriber: Subscriber,
) -> AsyncIterator[Harness]:
    kind: str = request.param
    http = httpx.AsyncClient()
    cleanup: list[Callable[[], Awaitable[object]]] = [http.aclose]
    if kind == "redis":
        stream = f"zoho-bridge.test.{unique}"

        async def read_redis() -> list[bytes]:
            return [fields[b"envelope"] for _, fields in await redis_client.xrange(stream)]

        cleanup.append(lambda: redis_client.delete(stream))
        built = Harness(
            RedisStreamSink(REDIS_URL, stream=stream),
            read_redis,
            RedisStreamSink(f"redis://127.0.0.1:{closed_port}/0", stream=stream, timeout=1),
        )
    elif kind == "nats":
        stream, prefix = f"ZBT_{unique}", f"zt{unique}"
        js = nats_client.jetstream()

        async def read_nats() -> list[bytes]:
            count = (await js.stream_info(stream)).state.messages
            return [(await js.get_msg(stream, seq)).data or b"" for seq in range(1, count + 1)]

        async def delete_stream() -> None:
            with contextlib.suppress(NotFoundError):  # tests that never start create none
                await js.delete_stream(stream)

        cleanup.append(delete_stream)
        built = Harness(
            JetStreamSink(NATS_URL, stream=stream, subject_prefix=prefix),
            read_nats,
            JetStreamSink(f"nats://127.0.0.1:{closed_port}", stream=stream, timeout=0.5),
        )
    elif kind == "amqp":
        name = f"zoho-bridge.test.{unique}"
        exchange = await amqp_channel.declare_exchange(
            name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await amqp_channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")

        async def read_amqp() -> list[bytes]:
            bodies = []
            while (message := await queue.get(no_ack=True, fail=False)) is not None:
                bodies.append(message.body)
            return bodies

        cleanup.append(exchange.delete)
        built = Harness(
            AmqpSink(AMQP_URL, exchange=name),
            read_amqp,
            AmqpSink(f"amqp://guest:guest@127.0.0.1:{closed_port}/", exchange=name, timeout=1),
        )
    else:

        async def read_http() -> list[bytes]:
            return [received.body for received in subscriber.received]

        built = Harness(
            WebhookSink(subscriber.url, [SECRET], http),
            read_http,
            WebhookSink(f"http://127.0.0.1:{closed_port}/hook", [SECRET], http, timeout=1),
        )
    yield built
    await built.sink.close()
    await built.unreachable.close()
    for step in reversed(cleanup):
        await step()


async def start_and_publish(sink: Sink, event: StoredEvent) -> None:
    # Brokers fail at start, HTTP at the first request: either is fine for the contract.
    await sink.start()
    await sink.publish(message_for(event))


@pytest.mark.broker
@pytest.mark.parametrize("harness", KINDS, indirect=True)
async def test_delivers_the_exact_envelope(harness: Harness, make_event: EventFactory) -> None:
    event = make_event()
    await harness.sink.start()
    await harness.sink.publish(message_for(event))
    assert await harness.read() == [envelope_bytes(event)]


@pytest.mark.broker
@pytest.mark.parametrize("harness", KINDS, indirect=True)
async def test_delivers_in_publish_order(harness: Harness, make_event: EventFactory) -> None:
    events = [make_event(module=module) for module in ("Leads", "Deals", "Contacts")]
    await harness.sink.start()
    for event in events:
        await harness.sink.publish(message_for(event))
    assert await harness.read() == [envelope_bytes(event) for event in events]


@pytest.mark.broker
@pytest.mark.parametrize("harness", KINDS, indirect=True)
async def test_unreachable_is_transient(harness: Harness, make_event: EventFactory) -> None:
    with pytest.raises(SinkTransientError):
        await start_and_publish(harness.unreachable, make_event())


@pytest.mark.broker
@pytest.mark.parametrize("harness", KINDS, indirect=True)
async def test_is_a_sink_and_closes_twice(harness: Harness) -> None:
    assert isinstance(harness.sink, Sink)
    assert harness.sink.name in KINDS
    await harness.sink.close()  # before start
    await harness.sink.start()
    await harness.sink.close()
    await harness.sink.close()


@pytest.mark.broker
@pytest.mark.parametrize("harness", BROKERS, indirect=True)
async def test_publish_needs_start(harness: Harness, make_event: EventFactory) -> None:
    with pytest.raises(SinkNotStarted):
        await harness.sink.publish(message_for(make_event()))
    await harness.sink.start()
    await harness.sink.close()
    with pytest.raises(SinkNotStarted):
        await harness.sink.publish(message_for(make_event()))
