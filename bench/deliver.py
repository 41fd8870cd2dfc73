"""Outbox delivery throughput per sink and end-to-end latency, beside the raw broker clients.

    python bench/deliver.py [--events 2000] [--samples 200] [--sinks redis,nats,amqp,webhook]
                            [--rounds 3] [--database-url URL | --postgres]
    python bench/deliver.py --sustained [bench/sustained.py's options]

`--sustained` runs the end-to-end part instead: CRM callbacks at fixed rates for 60 s into
a `serve` with a Redis sink and a pull consumer, on both databases (see bench/sustained.py).

For each sink, in one process on 127.0.0.1 (SQLite in a temporary directory unless a
database URL is given; `--postgres`: a database of its own on 127.0.0.1:5432, vacuumed
after each sink's run as autovacuum would, dropped at the end):

1. throughput: N events are stored with their outbox rows, then a relay drains them;
   events/s is N over the drain time. Beside it, the broker's own client publishes the
   same N envelopes with the same concurrency and durability, as the sink would write
   them (redis XADD with the sink's fields and trim; JetStream publish with the sink's
   headers, waiting for each ack; AMQP persistent messages with the sink's properties,
   with confirms, on a durable exchange with a durable queue bound, as the relay's;
   httpx POST). No consumer runs in this process meanwhile.
2. latency: the real app (lifespan, relay and all) takes CRM webhooks one at a time over
   ASGI; a consumer on the broker notes when each event arrives. p50/p99 in ms.

Rounds are interleaved (every sink once per round) and the table shows medians over them;
relay/raw is the median of each round's own ratio. Bounded by the counts; stops by itself.
Streams, exchanges and queues it makes are deleted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
import uvicorn
from nats.aio.client import Client as NatsClient
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.domain.envelope import (  # noqa: E402
    CONTENT_TYPE,
    envelope_bytes,
    message_for,
    subject_for,
)
from bridge.domain.events import Event, Operation, Origin, Product, StoredEvent  # noqa: E402
from bridge.domain.ids import new_ulid  # noqa: E402
from bridge.domain.standard_webhooks import SigningSecret  # noqa: E402
from bridge.runtime import utc_now  # noqa: E402
from bridge.services.relay import Relay, RelayOptions  # noqa: E402
from bridge.settings import Settings  # noqa: E402
from bridge.sinks.config import REDIS_DEFAULT_MAXLEN as DEFAULT_MAXLEN  # noqa: E402
from bridge.sinks.factory import SinkConfig, build_sinks  # noqa: E402
from bridge.store.database import create_relay_engine  # noqa: E402
from bridge.store.migrate import upgrade  # noqa: E402
from bridge.store.outbox import OutboxHook  # noqa: E402
from bridge.store.writer import EventWriter, backend_for  # noqa: E402
from bridge.web.app import create_app  # noqa: E402

REDIS_URL, NATS_URL = "redis://127.0.0.1:6379/0", "nats://127.0.0.1:4222"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN, CHANNEL, TOKEN = "bench-admin-0123456789", "1000000068001", "bench-channel-token-0123"
SECRET = SigningSecret(b"b" * 32)
CONCURRENCY = 32


class Subscriber:
    """Where each sink's consumer reports arrivals: record id -> arrival time."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.count = 0

    def note(self, envelope: bytes) -> None:
        self.count += 1
        self.arrived[json.loads(envelope)["zohorecordid"]] = time.perf_counter()


async def _consume_redis(stream: str, sub: Subscriber, stop: asyncio.Event) -> None:
    client = Redis.from_url(REDIS_URL)
    last = "$"
    with contextlib.suppress(asyncio.CancelledError):
        while not stop.is_set():
            for _, entries in await client.xread({stream: last}, block=200) or []:
                for entry_id, fields in entries:
                    last = entry_id
                    sub.note(fields[b"envelope"])
    await client.aclose()


def _sink_config(sink: str, names: dict[str, str], webhook_url: str) -> SinkConfig:
    return SinkConfig(
        sinks=("pull", sink),  # type: ignore[arg-type]
        redis_stream=names["redis"], nats_stream=names["nats"],
        nats_subject_prefix=names["prefix"], amqp_exchange=names["amqp"],
        webhook_url=webhook_url, webhook_secrets=(SECRET.serialize(),),  # type: ignore[arg-type]
    )  # fmt: skip


async def _store_events(engine: Any, sink: str, count: int, tag: str) -> None:
    writer = EventWriter(
        backend_for(engine.url.render_as_string(hide_password=False)),
        max_batch=500,
        in_transaction=[OutboxHook((sink,))],
    )
    await writer.start()
    now = datetime.now(UTC)
    events = [
        Event(
            Product.CRM, "bench", "Leads", Operation.UPDATED, f"{tag}-{i}", now,
            Origin.WEBHOOK, f"bench:{tag}:{i}", {"Last_Name": "Müller", "n": i},
            id=new_ulid(now), received_at=now)
        for i in range(count)
    ]  # fmt: skip
    await asyncio.gather(*(writer.write(None, events[i : i + 50]) for i in range(0, count, 50)))
    await writer.stop()


async def _throughput(sink: str, config: SinkConfig, db_url: str, count: int) -> float:
    engine = create_relay_engine(db_url)  # as in `serve`
    await _store_events(engine, sink, count, uuid.uuid4().hex[:6])
    async with httpx.AsyncClient() as http:
        [adapter] = build_sinks(config, http_client=http)
        # Each sink's own batch size, as in `serve` (500 for brokers, 100 for webhooks).
        options = RelayOptions(owner="bench", concurrency=CONCURRENCY, poll=0.01)
        relay = Relay(engine, [adapter], options, utc_now)
        await adapter.start()
        target = _delivered(adapter.name) + count
        started = time.perf_counter()
        await relay.start()
        # Done when the relay has settled every row as delivered: its own counter, read in
        # this process, so waiting costs the database (and the relay) nothing.
        while _delivered(adapter.name) < target:  # noqa: ASYNC110  (a counter, not an event)
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        await relay.stop()
    await engine.dispose()
    return count / elapsed


def _delivered(sink: str) -> float:
    """Rows the relay settled as delivered to `sink` so far (`bridge_deliveries_total`)."""
    labels = {"sink": sink, "outcome": "delivered"}
    return REGISTRY.get_sample_value("bridge_deliveries_total", labels) or 0.0


async def _raw_throughput(publish: Callable[[bytes], Awaitable[Any]], bodies: list[bytes]) -> float:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(body: bytes) -> None:
        async with gate:
            await publish(body)

    started = time.perf_counter()
    await asyncio.gather(*(one(b) for b in bodies))
    return len(bodies) / (time.perf_counter() - started)


async def _latency(settings: Settings, sub: Subscriber, samples: int) -> tuple[float, float]:
    app = create_app(settings)
    latencies: list[float] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            channel = {"channel_id": CHANNEL, "token": TOKEN}
            auth = {"Authorization": f"Bearer {ADMIN}"}
            await client.post("/admin/channels/import", json=channel, headers=auth)
            tag = uuid.uuid4().hex[:6]
            for i in range(samples):
                record = f"lat-{tag}-{i}"
                body = {"server_time": 1_700_000_000_000 + i, "module": "Leads", "ids": [record],
                        "operation": "update", "channel_id": CHANNEL, "token": TOKEN}  # fmt: skip
                sent = time.perf_counter()
                r = await client.post("/hooks/crm", json=body)
                assert r.status_code == 200, r.text
                while record not in sub.arrived:
                    if time.perf_counter() - sent > 10:
                        raise RuntimeError(f"event {record} did not arrive within 10 s")
                    await asyncio.sleep(0.0002)
                latencies.append((sub.arrived[record] - sent) * 1000)
    latencies.sort()
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]


class _Http:
    """A local webhook subscriber under uvicorn."""

    def __init__(self, sub: Subscriber) -> None:
        async def hook(request: Request) -> Response:
            sub.note(await request.body())
            return Response(status_code=204)

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                                    lifespan="off", ws="none"))  # fmt: skip
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Http:
        self.task = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        while not self.server.started:  # noqa: ASYNC110  (uvicorn offers no event)
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.sock.close()


async def bench_sink(sink: str, db_url: str, count: int, samples: int) -> dict[str, Any]:
    unique = uuid.uuid4().hex[:8]
    names = {"redis": f"zb.bench.{unique}", "nats": f"ZBB_{unique}", "prefix": f"zb{unique}",
             "amqp": f"zoho-bridge.bench.{unique}"}  # fmt: skip
    sub, stop = Subscriber(), asyncio.Event()
    http_sub = _Http(sub)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(http_sub)
        config = _sink_config(sink, names, http_sub.url)
        sample = await _sample_event()
        bodies = [envelope_bytes(sample) for _ in range(count)]
        raw, cleanup = await _raw_publisher(sink, names, http_sub.url, sample)
        stack.push_async_callback(cleanup)
        relay_rate = await _throughput(sink, config, db_url, count)
        raw_rate = await _raw_throughput(raw, bodies)
        # Only now: a consumer in this process would take CPU from the relay's run alone.
        consumer = await _consumer(sink, names, sub, stop)
        stack.push_async_callback(consumer)
        settings = Settings.from_environ({}, database_url=db_url, admin_token=ADMIN,
                                         sink_config=config, relay_poll_seconds=1.0)  # fmt: skip
        p50, p99 = await _latency(settings, sub, samples)
    return {"sink": sink, "relay": relay_rate, "raw": raw_rate, "p50": p50, "p99": p99}


async def _sample_event() -> StoredEvent:
    """The product.md example event."""
    return StoredEvent(
        id=new_ulid(datetime.now(UTC)), seq=1042, product=Product.CRM, source="bench",
        module="Leads", operation=Operation.UPDATED, record_id="5725767000003000010",
        occurred_at=datetime.now(UTC), origin=Origin.WEBHOOK,
        data={"Last_Name": "Müller", "Lead_Status": "Contacted"},
    )  # fmt: skip


async def _raw_publisher(
    sink: str, names: dict[str, str], url: str, sample: Any
) -> tuple[Callable[[bytes], Awaitable[Any]], Callable[[], Awaitable[None]]]:
    message = message_for(sample)
    if sink == "redis":
        client = Redis.from_url(REDIS_URL)
        fields = {"id": message.id, "type": message.type, "subject": message.subject}

        async def drop_redis() -> None:
            await client.delete(names["redis"], names["redis"] + ".raw")
            await client.aclose()

        # As the sink writes: the same fields, the same approximate trim.
        return (
            lambda b: client.xadd(
                names["redis"] + ".raw",
                {**fields, "envelope": b},
                maxlen=DEFAULT_MAXLEN,
                approximate=True,
            )
        ), drop_redis
    if sink == "nats":
        nc = NatsClient()
        await nc.connect(NATS_URL)
        js = nc.jetstream()
        raw_stream = names["nats"] + "_RAW"
        await js.add_stream(name=raw_stream, subjects=[f"raw{names['prefix']}.>"])
        subject = "raw" + subject_for(message, names["prefix"])

        async def drop_nats() -> None:
            for stream in (raw_stream, names["nats"]):
                with contextlib.suppress(Exception):
                    await js.delete_stream(stream)
            await nc.close()

        # The sink's headers: message id, content type, expected stream.
        return (
            lambda b: js.publish(
                subject,
                b,
                stream=raw_stream,
                headers={"Nats-Msg-Id": uuid.uuid4().hex, "Content-Type": CONTENT_TYPE},
            )
        ), drop_nats
    if sink == "amqp":
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel(publisher_confirms=True)
        # Both exchanges durable, each with a durable queue bound, so RabbitMQ stores the
        # persistent messages of both sides alike before it confirms them.
        exchanges, queues = [], []
        for name in (names["amqp"], names["amqp"] + ".raw"):
            exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC,
                                                      durable=True)  # fmt: skip
            queue = await channel.declare_queue(name + ".q", durable=True)
            await queue.bind(exchange, "#")
            exchanges.append(exchange)
            queues.append(queue)
        routing_key = subject_for(message, names["prefix"])

        async def drop_amqp() -> None:
            for queue in queues:
                await queue.delete(if_unused=False, if_empty=False)
            for exchange in exchanges:
                await exchange.delete()
            await connection.close()

        def amqp_message(body: bytes) -> aio_pika.Message:
            return aio_pika.Message(
                body, content_type=CONTENT_TYPE, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=uuid.uuid4().hex, type=message.type, app_id="zoho-bridge")  # fmt: skip

        return (lambda b: exchanges[1].publish(amqp_message(b), routing_key=routing_key)), drop_amqp
    client = httpx.AsyncClient()

    async def drop_http() -> None:
        await client.aclose()

    return (lambda b: client.post(url, content=b)), drop_http


async def _consumer(
    sink: str, names: dict[str, str], sub: Subscriber, stop: asyncio.Event
) -> Callable[[], Awaitable[None]]:
    """Start the subscriber side of `sink`; returns how to stop it."""
    if sink == "redis":
        task = asyncio.create_task(_consume_redis(names["redis"], sub, stop))

        async def stop_redis() -> None:
            stop.set()
            await task

        return stop_redis
    if sink == "nats":
        nc = NatsClient()
        await nc.connect(NATS_URL)

        async def on_message(msg: Any) -> None:
            sub.note(msg.data)

        await nc.subscribe(f"{names['prefix']}.>", cb=on_message)
        return nc.close
    if sink == "amqp":
        connection = await aio_pika.connect(AMQP_URL)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(names["amqp"], aio_pika.ExchangeType.TOPIC,
                                                  durable=True)  # fmt: skip
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, "#")

        async def on_amqp(message: Any) -> None:
            sub.note(message.body)

        await queue.consume(on_amqp, no_ack=True)
        return connection.close
    return _nothing


async def _nothing() -> None:
    return None


@contextlib.asynccontextmanager
async def _database(args: argparse.Namespace, tmp: str) -> AsyncIterator[str]:
    if not args.postgres:
        yield args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        return
    name = f"zb_deliver_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _vacuum(db_url: str) -> None:
    """On PostgreSQL, what autovacuum would have done between two runs (it may be off, as
    on the test machines): the outbox's dead rows and index entries cleared."""
    if db_url.startswith("postgresql"):
        conn = await asyncpg.connect(db_url.replace("postgresql+asyncpg", "postgresql"))
        await conn.execute("VACUUM ANALYZE deliveries, events, delivery_attempts")
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--sinks", default="redis,nats,amqp,webhook")
    parser.add_argument("--database-url")
    parser.add_argument("--postgres", action="store_true",
                        help="a new database on 127.0.0.1:5432, dropped at the end")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sinks = args.sinks.split(",")
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in sinks}
    with tempfile.TemporaryDirectory() as tmp:
        async with _database(args, tmp) as db_url:
            await upgrade(db_url)
            for _ in range(args.rounds):
                for s in sinks:
                    runs[s].append(await bench_sink(s, db_url, args.events, args.samples))
                    await _vacuum(db_url)
    print(f"\n{args.events} events per sink, {args.samples} latency samples, "
          f"database {db_url.split(':')[0]}, publish concurrency {CONCURRENCY}, "
          f"medians of {args.rounds} interleaved rounds")  # fmt: skip
    print(f"{'sink':<8} {'relay ev/s':>11} {'raw ev/s':>10} {'relay/raw':>9} "
          f"{'e2e p50 ms':>11} {'e2e p99 ms':>11}")  # fmt: skip
    for s, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in ("relay", "raw", "p50", "p99")}
        ratio = statistics.median(r["relay"] / r["raw"] for r in rs)
        print(f"{s:<8} {med['relay']:>11.0f} {med['raw']:>10.0f} {ratio:>9.2f} "
              f"{med['p50']:>11.2f} {med['p99']:>11.2f}")  # fmt: skip


if __name__ == "__main__":
    if "--sustained" in sys.argv[1:]:
        from bench.sustained import main as sustained

        asyncio.run(sustained([a for a in sys.argv[1:] if a != "--sustained"]))
    else:
        asyncio.run(main())
