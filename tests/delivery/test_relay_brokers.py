"""The relay to the real brokers: the exact envelope, and a harmless duplicate after a crash."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.envelope import build_envelope
from bridge.runtime import relay_options
from bridge.services.relay import Relay
from bridge.settings import Settings
from bridge.sinks.factory import SinkConfig
from bridge.sinks.nats import JetStreamSink
from bridge.store import event_queries, events_envelopes, outbox
from bridge.store.database import create_engine
from bridge.store.outbox import OutboxHook
from bridge.store.writer import EventWriter, backend_for
from tests.sinks.support import NATS_URL
from tests.test_storage import _event, _request

from .conftest import WEBHOOK_SECRET, BridgeFactory, Recorder, eventually

pytestmark = pytest.mark.broker


async def test_every_sink_gets_the_exact_envelope(
    bridge: BridgeFactory,
    recorder: Recorder,
    redis_client: Redis,
    nats_client: NatsClient,
    amqp_channel: AbstractChannel,
    unique: str,
) -> None:
    stream, nats_stream, prefix = f"zb.delivery.{unique}", f"ZBD_{unique}", f"zd{unique}"
    exchange = await amqp_channel.declare_exchange(
        f"zoho-bridge.delivery.{unique}", aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await amqp_channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "#")
    js = nats_client.jetstream()
    config = SinkConfig(
        sinks=("pull", "redis", "nats", "amqp", "webhook"), redis_stream=stream,
        nats_stream=nats_stream, nats_subject_prefix=prefix, amqp_exchange=exchange.name,
        webhook_url=recorder.url, webhook_secrets=(WEBHOOK_SECRET,),
    )  # fmt: skip
    try:
        async with bridge(config) as b:
            await b.post_crm("5725767000003000010", "5725767000003000011")
            await eventually(lambda: len(recorder.envelopes) == 2)
            for _ in range(200):
                if not await b.outbox(status="pending"):
                    break
            assert await b.outbox(status="pending") == []
            events = await event_queries.list_events(
                b.runtime.engine, event_queries.EventFilter(), after_seq=0
            )
            page, _ = await events_envelopes.envelope_page(
                b.runtime.engine, event_queries.EventFilter(), after_seq=0, limit=10
            )
        # Every sink sends the bytes the pull API serves; the document is `build_envelope`'s
        # (`data` keeps the spacing the database stores it with).
        expected = page
        assert [json.loads(body) for body in expected] == [
            build_envelope(event_queries.stored_event(e)) for e in events
        ]
        assert sorted(recorder.bodies) == sorted(expected)
        redis_bodies = [f[b"envelope"] for _, f in await redis_client.xrange(stream)]
        assert sorted(redis_bodies) == sorted(expected)
        pull = await js.pull_subscribe(f"{prefix}.>", durable="test")
        nats_bodies = [m.data for m in await pull.fetch(2, timeout=2)]
        assert sorted(nats_bodies) == sorted(expected)
        amqp_bodies = [(await queue.get(no_ack=True)).body for _ in range(2)]
        assert sorted(amqp_bodies) == sorted(expected)
    finally:
        await redis_client.delete(stream)
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(nats_stream)
        await exchange.delete()


async def test_republish_after_a_crash_is_dropped_by_jetstream(
    database_url: str, nats_client: NatsClient, unique: str
) -> None:
    """A relay that published and died before marking the row delivered: the lease runs
    out, another relay publishes again with the same id, JetStream drops the copy."""
    now = datetime.now(UTC)
    engine: AsyncEngine = create_engine(database_url)
    writer = EventWriter(
        backend_for(engine.url.render_as_string(hide_password=False)),
        in_transaction=[OutboxHook(("nats",))],
    )
    stream, prefix = f"ZBC_{unique}", f"zc{unique}"
    js = nats_client.jetstream()
    try:
        await writer.start()
        await writer.write(_request(), [_event("crash-1", "42")])
        [claimed] = await outbox.claim(engine, "nats", "crashed-relay", now=now,
                                       lease=timedelta(seconds=30), limit=10)  # fmt: skip
        first = JetStreamSink(NATS_URL, stream=stream, subject_prefix=prefix)
        await first.start()
        await first.publish(claimed.message)
        await first.close()  # ...and the relay dies here, the row still pending and leased
        assert await outbox.claim(engine, "nats", "other", now=now + timedelta(seconds=5),
                                  lease=timedelta(seconds=30), limit=10) == []  # fmt: skip
        settings = Settings.from_environ({}, database_url=database_url)
        later = now + timedelta(seconds=31)
        second = JetStreamSink(NATS_URL, stream=stream, subject_prefix=prefix)
        relay = Relay(engine, [second], relay_options(settings), clock=lambda: later)
        await second.start()
        assert await relay.deliver_batch(second) == (1, None)
        await second.close()
        info = await js.stream_info(stream)
        assert info.state.messages == 1  # the second publish was a duplicate
        rows = await outbox.claim(engine, "nats", "x", now=later + timedelta(hours=1),
                                  lease=timedelta(seconds=30), limit=10)  # fmt: skip
        assert rows == []  # delivered
    finally:
        await writer.stop()
        await engine.dispose()
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
