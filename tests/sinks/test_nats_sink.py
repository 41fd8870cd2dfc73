"""NATS JetStream specifics: stream creation, subject and headers, server-side dedup."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from bridge.domain.envelope import envelope_bytes, message_for
from bridge.sinks.nats import JetStreamSink

from .conftest import EventFactory
from .support import NATS_URL

pytestmark = pytest.mark.broker


@dataclass
class Names:
    stream: str
    prefix: str


@pytest.fixture
async def js(nats_client: NatsClient) -> JetStreamContext:
    return nats_client.jetstream()


@pytest.fixture
async def names(js: JetStreamContext, unique: str) -> AsyncIterator[Names]:
    # Streams may not share subjects, so each test gets its own prefix as well.
    created = Names(stream=f"ZBT_{unique}", prefix=f"zt{unique}")
    yield created
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(created.stream)


async def started(names: Names, duplicate_window: float = 120.0) -> JetStreamSink:
    sink = JetStreamSink(
        NATS_URL,
        stream=names.stream,
        subject_prefix=names.prefix,
        duplicate_window=duplicate_window,
    )
    await sink.start()
    return sink


async def test_creates_the_stream_when_missing(js: JetStreamContext, names: Names) -> None:
    sink = await started(names, duplicate_window=30.0)
    await sink.close()
    config = (await js.stream_info(names.stream)).config
    assert config.subjects == [f"{names.prefix}.>"]
    assert config.duplicate_window == 30.0


async def test_uses_an_existing_stream_as_it_is(js: JetStreamContext, names: Names) -> None:
    await js.add_stream(
        StreamConfig(name=names.stream, subjects=[f"{names.prefix}.>"], duplicate_window=5.0)
    )
    sink = await started(names, duplicate_window=30.0)
    await sink.close()
    assert (await js.stream_info(names.stream)).config.duplicate_window == 5.0


async def test_subject_payload_and_headers(
    js: JetStreamContext, names: Names, make_event: EventFactory
) -> None:
    event = make_event(source="acme eu", module="Leads")
    sink = await started(names)
    await sink.publish(message_for(event))
    await sink.close()
    message = await js.get_msg(names.stream, 1)
    assert message.subject == f"{names.prefix}.acme_eu.Leads.updated"
    assert message.data == envelope_bytes(event)
    assert message.headers is not None
    assert message.headers["Nats-Msg-Id"] == event.id
    assert message.headers["Content-Type"] == "application/cloudevents+json"


async def test_same_event_twice_is_stored_once(
    js: JetStreamContext, names: Names, make_event: EventFactory
) -> None:
    event = make_event()
    sink = await started(names)
    await sink.publish(message_for(event))
    await sink.publish(message_for(event))  # a relay retrying after a lost ack
    await sink.close()
    assert (await js.stream_info(names.stream)).state.messages == 1


async def test_distinct_events_are_all_stored(
    js: JetStreamContext, names: Names, make_event: EventFactory
) -> None:
    sink = await started(names)
    for _ in range(3):
        await sink.publish(message_for(make_event()))
    await sink.close()
    assert (await js.stream_info(names.stream)).state.messages == 3


async def test_a_subscriber_consumes_by_subject_filter(
    js: JetStreamContext, names: Names, make_event: EventFactory
) -> None:
    leads, deals = make_event(module="Leads"), make_event(module="Deals")
    sink = await started(names)
    await sink.publish(message_for(leads))
    await sink.publish(message_for(deals))
    await sink.close()
    pull = await js.pull_subscribe(f"{names.prefix}.*.Deals.>", durable="billing")
    [message] = await pull.fetch(1, timeout=2)
    await message.ack()
    assert message.data == envelope_bytes(deals)
