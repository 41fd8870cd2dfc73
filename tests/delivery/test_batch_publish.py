"""Batches published at once keep each record's order and never count as delivered what
the broker did not confirm, even when the broker stops in the middle of a batch.

The brokers here are processes each test starts and stops itself, with their data on disk
(Redis with an fsynced append-only file, JetStream with file storage, RabbitMQ with a
durable queue and persistent messages), so after a restart the stream or queue shows what
the broker had taken before it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aio_pika
import httpx
import pytest
from nats.aio.client import Client as NatsClient
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.domain.backoff import BackoffPolicy
from bridge.domain.delivery import DeliveryStatus
from bridge.domain.envelope import Message
from bridge.domain.events import Event, Operation, Origin, Product
from bridge.domain.ids import new_ulid
from bridge.domain.standard_webhooks import SigningSecret
from bridge.runtime import utc_now
from bridge.services.relay import Relay, RelayOptions
from bridge.sinks.amqp import AmqpSink
from bridge.sinks.base import BatchSink, SinkUnavailable
from bridge.sinks.nats import JetStreamSink
from bridge.sinks.redis import RedisStreamSink
from bridge.sinks.webhook import WebhookSink
from bridge.store.database import create_engine
from bridge.store.models import DeliveryRow, EventRow
from bridge.store.outbox import OutboxHook
from bridge.store.writer import EventWriter, backend_for
from tests.support import free_port

from .conftest import Recorder
from .test_recovery import Server

pytestmark = pytest.mark.broker

RECORDS, PER_RECORD = 40, 25  # 1,000 events, each record's interleaved with the others'
FAST_PROBE = BackoffPolicy(base=0.05, cap=0.2)
SECRET = SigningSecret(b"t" * 32)
# Debian's, without the wrappers that switch to the rabbitmq user (and its Erlang cookie).
RABBITMQ_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQCTL = "/usr/lib/rabbitmq/bin/rabbitmqctl"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def _store(
    engine: AsyncEngine, sink: str, tag: str, records: int = RECORDS, per_record: int = PER_RECORD
) -> None:
    writer = EventWriter(
        backend_for(engine.url.render_as_string(hide_password=False)),
        in_transaction=[OutboxHook((sink,))],
    )
    await writer.start()
    now = datetime.now(UTC)
    for n in range(per_record):
        events = [
            Event(Product.CRM, "test", "Leads", Operation.UPDATED, f"{tag}-{r}", now,
                  Origin.WEBHOOK, f"{tag}:{r}:{n}", {"n": n}, id=new_ulid(now), received_at=now)
            for r in range(records)
        ]  # fmt: skip
        await writer.write(None, events)
    await writer.stop()


async def _rows(engine: AsyncEngine, sink: str) -> dict[str, tuple[str, int, str]]:
    """Event id -> (status, seq, record id) of `sink`'s rows."""
    query = (
        select(EventRow.id, DeliveryRow.status, EventRow.seq, EventRow.record_id)
        .join(EventRow, EventRow.seq == DeliveryRow.event_seq)
        .where(DeliveryRow.sink == sink)
    )
    async with engine.connect() as conn:
        return {r[0]: (r[1], r[2], r[3]) for r in (await conn.execute(query)).all()}


def _in_order(published: list[str], rows: dict[str, tuple[str, int, str]]) -> bool:
    """Whether every record's events reached the broker in seq order (a repeat of an event
    right after itself, at least once, is fine; an earlier event after a later one is not)."""
    last: dict[str, int] = {}
    for event_id in published:
        _, seq, record = rows[event_id]
        if seq < last.get(record, 0):
            return False
        last[record] = seq
    return True


async def _wait(check: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def _redis(
    store: str,
) -> AsyncIterator[tuple[Server, str, Callable[[], Awaitable[list[str]]]]]:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def ping() -> None:
        client = Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            await client.ping()
        finally:
            await client.aclose()

    async def published() -> list[str]:
        client = Redis.from_url(url)
        try:
            return [f[b"id"].decode() for _, f in await client.xrange("zb.test")]
        finally:
            await client.aclose()

    # appendfsync always: Redis writes and fsyncs an XADD before it replies to it.
    server = Server(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                     "--dir", store, "--appendonly", "yes", "--appendfsync", "always"],
                    ping)  # fmt: skip
    await server.start()
    try:
        yield server, url, published
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def _nats(
    store: str,
) -> AsyncIterator[tuple[Server, str, Callable[[], Awaitable[list[str]]]]]:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"

    async def ready() -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()

    async def published() -> list[str]:
        nc = NatsClient()
        await nc.connect(url)
        try:
            js = nc.jetstream()
            sub = await js.subscribe("zbtest.>", stream="ZB_TEST", ordered_consumer=True)
            ids = []
            pending = (await js.stream_info("ZB_TEST")).state.messages
            while len(ids) < pending:
                msg = await sub.next_msg(timeout=5)
                assert msg.headers is not None
                ids.append(msg.headers["Nats-Msg-Id"])
            return ids
        finally:
            await nc.close()

    server = Server(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
                    ready)  # fmt: skip
    await server.start()
    try:
        yield server, url, published
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def _amqp(
    store: str,
) -> AsyncIterator[tuple[Server, str, Callable[[], Awaitable[list[str]]]]]:
    """A RabbitMQ node of its own (data in `store`), with the exchange the sink publishes
    to and a durable queue bound to it, so what the broker confirmed survives a restart."""
    port, dist = free_port(), free_port()
    url = f"amqp://guest:guest@127.0.0.1:{port}/"
    config, plugins = Path(store, "rabbitmq.conf"), Path(store, "enabled_plugins")
    config.write_text(f"listeners.tcp.1 = 127.0.0.1:{port}\nloopback_users = none\n")
    plugins.write_text("[].\n")
    env = {**os.environ, "RABBITMQ_CONFIG_FILE": str(config),
           "RABBITMQ_NODENAME": f"zbtest{port}@localhost", "RABBITMQ_DIST_PORT": str(dist),
           "RABBITMQ_MNESIA_BASE": f"{store}/mnesia", "RABBITMQ_LOG_BASE": f"{store}/log",
           "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins), "RABBITMQ_PID_FILE": f"{store}/pid"}  # fmt: skip

    async def ready() -> None:
        # Built, then connected: `aio_pika.connect` drops a connection whose first attempt
        # failed (the node is still starting) unclosed, and its `__del__` leaves an
        # un-awaited `Connection.close` coroutine to whichever later test the GC runs in.
        connection = aio_pika.Connection(aio_pika.connection.make_url(url))
        try:
            await connection.connect(timeout=1)
        finally:
            await connection.close()

    async def published() -> list[str]:
        connection = await aio_pika.connect(url)
        try:
            queue = await (await connection.channel()).declare_queue("zb.test.q", durable=True)
            ids = []
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                assert message.message_id is not None
                ids.append(message.message_id)
            return ids
        finally:
            await connection.close()  # unacknowledged: all back in the queue, in order

    server = Server([RABBITMQ_SERVER], ready, env=env, group=True, startup=60)
    await server.start()
    try:
        connection = await aio_pika.connect(url)
        channel = await connection.channel()
        exchange = await channel.declare_exchange("zb.test", aio_pika.ExchangeType.TOPIC,
                                                  durable=True)  # fmt: skip
        await (await channel.declare_queue("zb.test.q", durable=True)).bind(exchange, "#")
        await connection.close()
        yield server, url, published
    finally:
        server.stop()


def _sink(broker: str, url: str) -> BatchSink:
    if broker == "redis":
        return RedisStreamSink(url, stream="zb.test", timeout=1.0, name=broker)
    if broker == "nats":
        return JetStreamSink(url, stream="ZB_TEST", subject_prefix="zbtest", timeout=1.0,
                             name=broker)  # fmt: skip
    return AmqpSink(url, exchange="zb.test", routing_prefix="zbtest", timeout=1.0, name=broker)


BROKERS = {"redis": _redis, "nats": _nats, "amqp": _amqp}


@pytest.mark.parametrize("broker", ["redis", "nats", "amqp"])
async def test_a_broker_stopped_mid_batch_leaves_nothing_delivered_it_did_not_take(
    engine: AsyncEngine, broker: str
) -> None:
    with tempfile.TemporaryDirectory() as store:
        async with BROKERS[broker](store) as (server, url, published):
            sink = _sink(broker, url)
            await _store(engine, broker, "r")
            relay = Relay(
                engine, [sink], RelayOptions(owner="test", batch=200, probe=FAST_PROBE,
                                             lease=timedelta(minutes=5), poll=0.05),
                utc_now,
            )  # fmt: skip
            await relay.start()
            try:

                async def some_delivered() -> bool:
                    statuses = [s for s, _, _ in (await _rows(engine, broker)).values()]
                    return statuses.count(DeliveryStatus.DELIVERED.value) >= 200

                await _wait(some_delivered)
                server.stop()  # while the next batches are on their way
                await _wait(lambda: _true(relay.health(broker).down_since is not None))
                rows = await _rows(engine, broker)
                delivered = {i for i, (s, _, _) in rows.items() if s == "delivered"}
                assert 200 <= len(delivered) < len(rows)
                await server.start()
                taken = await published()
                assert delivered <= set(taken)
                # Back up: the relay resumes and the rest arrives, each record in order.

                async def drained() -> bool:
                    statuses = [s for s, _, _ in (await _rows(engine, broker)).values()]
                    return statuses.count(DeliveryStatus.PENDING.value) == 0

                await _wait(drained)
            finally:
                await relay.stop()
            taken = await published()
            assert set(taken) == set(rows)
            assert _in_order(taken, rows)


async def _true(value: bool) -> bool:
    return value


async def test_two_relays_batching_concurrently_keep_each_records_order(
    engine: AsyncEngine,
) -> None:
    with tempfile.TemporaryDirectory() as store:
        async with _redis(store) as (_, url, published):
            await _store(engine, "redis", "o")
            relays = [
                Relay(engine, [RedisStreamSink(url, stream="zb.test", name="redis")],
                      RelayOptions(owner=f"relay-{n}", batch=7, poll=0.01), utc_now)
                for n in range(2)
            ]  # fmt: skip
            for relay in relays:
                await relay.start()
            try:

                async def drained() -> bool:
                    statuses = [s for s, _, _ in (await _rows(engine, "redis")).values()]
                    return statuses.count(DeliveryStatus.PENDING.value) == 0

                await _wait(drained)
            finally:
                for relay in relays:
                    await relay.stop()
            rows = await _rows(engine, "redis")
            taken = await published()
            assert sorted(taken) == sorted(rows)  # each exactly once: no crash, no repeat
            assert _in_order(taken, rows)


async def test_batches_posted_concurrently_keep_each_records_order(
    engine: AsyncEngine, recorder: Recorder
) -> None:
    recorder.jitter = 0.005  # requests of one batch finish in any order
    await _store(engine, "webhook", "w", records=4, per_record=100)
    async with httpx.AsyncClient() as http:
        relays = [
            Relay(engine, [WebhookSink(recorder.url, [SECRET], http, name="webhook")],
                  RelayOptions(owner=f"relay-{n}", batch=50, poll=0.01), utc_now)
            for n in range(2)
        ]  # fmt: skip
        for relay in relays:
            await relay.start()
        try:
            await _wait(lambda: _true(len(recorder.envelopes) >= 400))
        finally:
            for relay in relays:
                await relay.stop()
    rows = await _rows(engine, "webhook")
    assert sorted(recorder.ids()) == sorted(rows)
    assert _in_order(recorder.ids(), rows)


async def test_without_a_batch_setting_each_sink_gets_its_default(
    engine: AsyncEngine, recorder: Recorder
) -> None:
    unique = uuid.uuid4().hex[:8]
    await _store(engine, "redis", f"dr{unique}", records=600, per_record=1)
    await _store(engine, "webhook", f"dw{unique}", records=150, per_record=1)
    async with httpx.AsyncClient() as http:
        redis = RedisStreamSink(
            "redis://127.0.0.1:6379/0", stream=f"zb.test.{unique}", name="redis"
        )
        webhook = WebhookSink(recorder.url, [SECRET], http, name="webhook")
        relay = Relay(engine, [redis, webhook], RelayOptions(owner="test"), utc_now)
        await redis.start()
        try:
            # The first batch of each: a broker's is 500 rows, a subscriber's 100.
            assert (await relay.deliver_batch(redis))[0] == 500
            assert (await relay.deliver_batch(webhook))[0] == 100
        finally:
            await relay.stop()  # gives back the batches claimed ahead
            client = Redis.from_url("redis://127.0.0.1:6379/0")
            await client.delete(f"zb.test.{unique}")
            await client.aclose()
    assert len(recorder.envelopes) == 100
    # A full batch's settlement may still be running when `deliver_batch` returns; the
    # relay's stop waits for it: every published row is delivered, none left leased.
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                select(DeliveryRow.sink, DeliveryRow.status, DeliveryRow.lease_until.is_(None))
                .join(EventRow, EventRow.seq == DeliveryRow.event_seq)
                .where(EventRow.record_id.like(f"d_{unique}-%"))
            )
        ).all()
    counts = Counter((sink, status, free) for sink, status, free in found)
    assert counts == {("redis", "delivered", True): 500, ("redis", "pending", True): 100,
                      ("webhook", "delivered", True): 100, ("webhook", "pending", True): 50}  # fmt: skip


async def test_a_rabbitmq_that_blocks_publishers_fails_the_batch_in_time() -> None:
    """A memory or disk alarm blocks publishers: RabbitMQ takes and confirms nothing. The
    batch fails as unavailable within the sink's timeout (so the relay pauses the sink and
    probes it) instead of waiting, and once the alarm clears the next batch is confirmed."""
    with tempfile.TemporaryDirectory() as store:
        async with _amqp(store) as (_, url, published):
            node = f"zbtest{url.rsplit(':', 1)[1].strip('/')}@localhost"
            sink = AmqpSink(url, exchange="zb.test", routing_prefix="zbtest", timeout=1.0)
            await sink.start()
            try:
                await _rabbitmqctl(node, "set_vm_memory_high_watermark", "0")
                started = asyncio.get_running_loop().time()
                results = await sink.publish_batch([_message(n) for n in range(5)])
                took = asyncio.get_running_loop().time() - started
                assert all(isinstance(r, SinkUnavailable) for r in results), results
                assert took < 3.0
                await _rabbitmqctl(node, "set_vm_memory_high_watermark", "0.4")
                # Unblocked: what was held is taken, and the next batch is confirmed.
                assert await sink.publish_batch([_message(n) for n in range(5, 8)]) == [None] * 3
            finally:
                await sink.close()
            assert {f"blocked-{n}" for n in range(5, 8)} <= set(await published())


def _message(n: int) -> Message:
    return Message(f"blocked-{n}", n, "com.zoho.crm.record.updated", "test", "Leads",
                   "updated", f"r{n}", b'{"n": %d}' % n)  # fmt: skip


async def _rabbitmqctl(node: str, *args: str) -> None:
    process = await asyncio.create_subprocess_exec(
        RABBITMQCTL, "-n", node, *args,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()
