"""RabbitMQ specifics: message properties, publisher confirms, routing, declaration errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractExchange

from bridge.domain.envelope import envelope_bytes, message_for
from bridge.sinks import SinkPermanentError, SinkTransientError
from bridge.sinks.amqp import AmqpSink

from .conftest import EventFactory
from .support import AMQP_URL

pytestmark = pytest.mark.broker


@pytest.fixture
async def exchange(amqp_channel: AbstractChannel, unique: str) -> AsyncIterator[AbstractExchange]:
    declared = await amqp_channel.declare_exchange(
        f"zoho-bridge.test.{unique}", aio_pika.ExchangeType.TOPIC, durable=True
    )
    yield declared
    await declared.delete()


async def test_message_properties_and_routing_key(
    amqp_channel: AbstractChannel, exchange: AbstractExchange, make_event: EventFactory
) -> None:
    queue = await amqp_channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "zoho.*.Leads.*")
    event = make_event(source="acme.eu")
    sink = AmqpSink(AMQP_URL, exchange=exchange.name)
    await sink.start()
    await sink.publish(message_for(event))
    await sink.publish(message_for(make_event(module="Deals")))  # not bound: must not arrive
    await sink.close()
    message = await queue.get(no_ack=True)
    assert message.body == envelope_bytes(event)
    assert message.routing_key == "zoho.acme_eu.Leads.updated"
    assert message.message_id == event.id
    assert message.content_type == "application/cloudevents+json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert message.type == "com.zoho.crm.record.updated"
    assert await queue.get(no_ack=True, fail=False) is None


async def test_broker_nack_is_transient(
    amqp_channel: AbstractChannel, exchange: AbstractExchange, make_event: EventFactory
) -> None:
    # A full queue that rejects publishes makes RabbitMQ nack; only a publisher waiting
    # for confirms can see that, so this fails if confirms are off.
    queue = await amqp_channel.declare_queue(
        exclusive=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    await queue.bind(exchange, "#")
    sink = AmqpSink(AMQP_URL, exchange=exchange.name)
    await sink.start()
    await sink.publish(message_for(make_event()))
    with pytest.raises(SinkTransientError):
        await sink.publish(message_for(make_event()))
    await sink.close()


async def test_unroutable_is_transient_when_a_route_is_required(
    exchange: AbstractExchange, make_event: EventFactory
) -> None:
    sink = AmqpSink(AMQP_URL, exchange=exchange.name, require_route=True)
    await sink.start()
    with pytest.raises(SinkTransientError):
        await sink.publish(message_for(make_event()))
    await sink.close()


async def test_unroutable_is_accepted_by_default(
    exchange: AbstractExchange, make_event: EventFactory
) -> None:
    sink = AmqpSink(AMQP_URL, exchange=exchange.name)
    await sink.start()
    await sink.publish(message_for(make_event()))
    await sink.close()


@pytest.fixture
async def direct_exchange(
    amqp_channel: AbstractChannel, unique: str
) -> AsyncIterator[AbstractExchange]:
    declared = await amqp_channel.declare_exchange(
        f"zoho-bridge.test.{unique}", aio_pika.ExchangeType.DIRECT, durable=True
    )
    yield declared
    await declared.delete()


async def test_exchange_of_another_type_is_permanent(direct_exchange: AbstractExchange) -> None:
    sink = AmqpSink(AMQP_URL, exchange=direct_exchange.name)
    with pytest.raises(SinkPermanentError, match="PRECONDITION_FAILED"):
        await sink.start()
    await sink.close()


async def test_exchange_is_declared_durable_topic(
    amqp_channel: AbstractChannel, unique: str
) -> None:
    name = f"zoho-bridge.test.{unique}"
    sink = AmqpSink(AMQP_URL, exchange=name)
    await sink.start()
    await sink.close()
    # Passive declare with the same type and durability succeeds only if they match.
    existing = await amqp_channel.declare_exchange(
        name, aio_pika.ExchangeType.TOPIC, durable=True, passive=True
    )
    await existing.delete()


async def test_wrong_password_is_permanent(exchange: AbstractExchange) -> None:
    sink = AmqpSink("amqp://guest:wrong@127.0.0.1:5672/", exchange=exchange.name)
    with pytest.raises(SinkPermanentError, match="login"):
        await sink.start()
