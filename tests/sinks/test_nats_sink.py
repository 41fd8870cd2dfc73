"""NATS JetStream specifics: stream creation, subject and headers, server-side dedup."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from bridge.domain.envelope import envelope_bytes, message_for
from bridge.sinks.base import SinkPermanentError, SinkUnavailable
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


async def test_a_batch_is_stored_in_order_and_once(
    js: JetStreamContext, names: Names, make_event: EventFactory
) -> None:
    messages = [message_for(make_event()) for _ in range(300)]
    sink = await started(names)
    try:
        assert await sink.publish_batch(messages) == [None] * 300
        # Sent again (a relay that lost its acks): acked, and not stored twice.
        assert await sink.publish_batch(messages[:10]) == [None] * 10
    finally:
        await sink.close()
    assert (await js.stream_info(names.stream)).state.messages == 300
    for seq in (1, 150, 300):
        stored = await js.get_msg(names.stream, seq)
        assert stored.data == messages[seq - 1].body
        assert stored.headers is not None
        assert stored.headers["Nats-Msg-Id"] == messages[seq - 1].id


async def test_a_batch_another_stream_would_capture_is_refused_for_good(
    js: JetStreamContext, names: Names, make_event: EventFactory
) -> None:
    sink = await started(names)
    try:
        # The operator replaced the stream by one of another name over the same subjects:
        # publishing names the expected stream, so nothing lands in the wrong one.
        await js.delete_stream(names.stream)
        await js.add_stream(StreamConfig(name=f"{names.stream}_X", subjects=[f"{names.prefix}.>"]))
        results = await sink.publish_batch([message_for(make_event()) for _ in range(5)])
    finally:
        await sink.close()
        await js.delete_stream(f"{names.stream}_X")
    assert all(isinstance(r, SinkPermanentError) for r in results), results
    assert "expected stream does not match" in str(results[0])


async def test_a_batch_no_stream_takes_is_unavailable(
    js: JetStreamContext, names: Names, make_event: EventFactory
) -> None:
    sink = JetStreamSink(NATS_URL, stream=names.stream, subject_prefix=names.prefix, timeout=2.0)
    await sink.start()
    try:
        await js.delete_stream(names.stream)  # no stream listens on the subjects now
        started_at = asyncio.get_running_loop().time()
        results = await sink.publish_batch([message_for(make_event()) for _ in range(5)])
        took = asyncio.get_running_loop().time() - started_at
    finally:
        await sink.close()
    # The server answers each at once ("no responders"): no waiting for the timeout.
    assert all(isinstance(r, SinkUnavailable) for r in results), results
    assert "no responders" in str(results[0])
    assert took < 1.0


async def test_a_message_over_the_servers_size_limit_fails_alone(
    js: JetStreamContext, names: Names, make_event: EventFactory
) -> None:
    messages = [message_for(make_event()) for _ in range(5)]
    messages[2] = dataclasses.replace(messages[2], body=b" " * 2_000_000)  # limit: 1 MB
    sink = await started(names)
    try:
        results = await sink.publish_batch(messages)
    finally:
        await sink.close()
    assert isinstance(results[2], SinkPermanentError)
    assert results[:2] + results[3:] == [None] * 4
    assert (await js.stream_info(names.stream)).state.messages == 4
