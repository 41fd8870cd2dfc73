"""Redis Streams specifics: entry fields, MAXLEN trimming, consumer groups, error mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bridge.domain.envelope import build_envelope, envelope_bytes
from bridge.sinks import SinkPermanentError
from bridge.sinks.redis import RedisStreamSink

from .conftest import EventFactory
from .support import REDIS_URL

pytestmark = pytest.mark.broker


@pytest.fixture
async def stream(redis_client: Redis, unique: str) -> AsyncIterator[str]:
    name = f"zoho-bridge.test.{unique}"
    yield name
    await redis_client.delete(name)


async def test_entry_fields(redis_client: Redis, stream: str, make_event: EventFactory) -> None:
    event = make_event()
    sink = RedisStreamSink(REDIS_URL, stream=stream)
    await sink.start()
    await sink.publish(event)
    await sink.close()
    [(_, fields)] = await redis_client.xrange(stream)
    assert fields == {
        b"id": event.id.encode(),
        b"type": b"com.zoho.crm.record.updated",
        b"subject": b"Leads/5725767000003000010",
        b"envelope": envelope_bytes(event),
    }
    assert json.loads(fields[b"envelope"]) == build_envelope(event)


async def test_exact_maxlen_keeps_the_newest(
    redis_client: Redis, stream: str, make_event: EventFactory
) -> None:
    events = [make_event() for _ in range(12)]
    sink = RedisStreamSink(REDIS_URL, stream=stream, maxlen=5, approximate=False)
    await sink.start()
    for event in events:
        await sink.publish(event)
    await sink.close()
    kept = [fields[b"id"].decode() for _, fields in await redis_client.xrange(stream)]
    assert kept == [event.id for event in events[-5:]]


async def test_approximate_maxlen_bounds_the_stream(
    redis_client: Redis, stream: str, make_event: EventFactory
) -> None:
    sink = RedisStreamSink(REDIS_URL, stream=stream, maxlen=50)
    await sink.start()
    for _ in range(600):
        await sink.publish(make_event())
    await sink.close()
    # `~` trims whole radix-tree nodes (stream-node-max-entries, 100 by default), so the
    # length stays within one node of the bound instead of growing with every event.
    length = await redis_client.xlen(stream)
    assert 50 <= length <= 50 + 100


async def test_consumer_group_reads_and_acks(
    redis_client: Redis, stream: str, make_event: EventFactory
) -> None:
    # The usage the module docstring documents, done with redis-py.
    await redis_client.xgroup_create(stream, "billing", id="$", mkstream=True)
    sink = RedisStreamSink(REDIS_URL, stream=stream)
    await sink.start()
    events = [make_event(), make_event()]
    for event in events:
        await sink.publish(event)
    await sink.close()
    [(_, entries)] = await redis_client.xreadgroup(
        "billing", "worker-1", {stream: ">"}, count=10, block=1000
    )
    assert [fields[b"id"].decode() for _, fields in entries] == [e.id for e in events]
    assert await redis_client.xack(stream, "billing", *[entry_id for entry_id, _ in entries]) == 2
    assert (await redis_client.xpending(stream, "billing"))["pending"] == 0


async def test_wrong_key_type_is_permanent(
    redis_client: Redis, stream: str, make_event: EventFactory
) -> None:
    await redis_client.set(stream, "not a stream")
    sink = RedisStreamSink(REDIS_URL, stream=stream)
    await sink.start()
    with pytest.raises(SinkPermanentError, match="WRONGTYPE"):
        await sink.publish(make_event())
    await sink.close()
