"""Redis Streams specifics: entry fields, MAXLEN trimming, consumer groups, error mapping."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from bridge.domain.envelope import build_envelope, envelope_bytes, message_for
from bridge.sinks import SinkPermanentError, SinkUnavailable
from bridge.sinks.redis import RedisStreamSink
from tests.delivery.test_recovery import own_redis

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
    await sink.publish(message_for(event))
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
        await sink.publish(message_for(event))
    await sink.close()
    kept = [fields[b"id"].decode() for _, fields in await redis_client.xrange(stream)]
    assert kept == [event.id for event in events[-5:]]


async def test_approximate_maxlen_bounds_the_stream(
    redis_client: Redis, stream: str, make_event: EventFactory
) -> None:
    sink = RedisStreamSink(REDIS_URL, stream=stream, maxlen=50)
    await sink.start()
    for _ in range(600):
        await sink.publish(message_for(make_event()))
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
        await sink.publish(message_for(event))
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
        await sink.publish(message_for(make_event()))
    # In a batch, the script's refusal fails every event of it.
    results = await sink.publish_batch([message_for(make_event()) for _ in range(3)])
    await sink.close()
    assert all(isinstance(r, SinkPermanentError) and "WRONGTYPE" in str(r) for r in results)


@pytest.mark.parametrize("approximate", [False, True])
async def test_a_batch_goes_in_one_script_call(
    redis_client: Redis, stream: str, make_event: EventFactory, approximate: bool
) -> None:
    events = [make_event() for _ in range(30)]
    sink = RedisStreamSink(REDIS_URL, stream=stream, maxlen=20, approximate=approximate)
    await sink.start()
    before = await _calls(redis_client)
    assert await sink.publish_batch([message_for(e) for e in events]) == [None] * 30
    after = await _calls(redis_client)
    await sink.close()
    assert after.get("evalsha", 0) - before.get("evalsha", 0) == 1
    assert after.get("xadd", 0) - before.get("xadd", 0) == 30  # run by the script
    entries = await redis_client.xrange(stream)
    if approximate:
        assert 20 <= len(entries) <= 30
    else:
        assert len(entries) == 20
    assert entries[-1][1] == {
        b"id": events[-1].id.encode(),
        b"type": b"com.zoho.crm.record.updated",
        b"subject": b"Leads/5725767000003000010",
        b"envelope": envelope_bytes(events[-1]),
    }
    assert [f[b"id"].decode() for _, f in entries] == [e.id for e in events[-len(entries) :]]


async def test_a_user_without_scripts_gets_a_pipeline(
    redis_client: Redis, stream: str, make_event: EventFactory, unique: str
) -> None:
    user, password = f"zb-noscript-{unique}", "noscript-password-0123"
    await redis_client.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"],
        commands=["+@all", "-@scripting"], reset=True,
    )  # fmt: skip
    try:
        sink = RedisStreamSink(f"redis://{user}:{password}@127.0.0.1:6379/0", stream=stream)
        await sink.start()
        events = [make_event() for _ in range(5)]
        results = await sink.publish_batch([message_for(e) for e in events[:3]])
        assert results == [None] * 3
        assert await sink.publish_batch([message_for(e) for e in events[3:]]) == [None] * 2
        await sink.close()
    finally:
        await redis_client.acl_deluser(user)
    ids = [f[b"id"].decode() for _, f in await redis_client.xrange(stream)]
    assert ids == [e.id for e in events]


async def _calls(client: Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items()}


async def test_out_of_memory_is_an_outage_not_a_refusal(make_event: EventFactory) -> None:
    # Its own server: the shared one must not run out of memory under other tests.
    async with own_redis() as (_, url):
        admin = Redis.from_url(url)
        await admin.config_set("maxmemory-policy", "noeviction")
        await admin.set("ballast", "x" * 2_000_000)
        await admin.config_set("maxmemory", str((await admin.info("memory"))["used_memory"]))
        sink = RedisStreamSink(url, stream="zb.oom")
        await sink.start()
        try:
            results = await sink.publish_batch([message_for(make_event()) for _ in range(3)])
            assert all(isinstance(r, SinkUnavailable) for r in results), results
            with pytest.raises(SinkUnavailable):
                await sink.publish(message_for(make_event()))
            await admin.config_set("maxmemory", "0")
            assert await sink.publish_batch([message_for(make_event())]) == [None]
        finally:
            await sink.close()
            await admin.aclose()
