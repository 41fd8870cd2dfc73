"""`zoho-bridge relay` beside `serve` with BRIDGE_RELAY=false: the web process stores and
queues, a process of its own delivers; two of them share the work without publishing an
event twice; a relay stopped mid-stream leaves its rows to the next. Real processes, a real
Redis, on both databases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
from collections.abc import Iterator
from typing import Any, cast

import httpx
from redis.asyncio import Redis

from tests.support import (
    ADMIN,
    BRIDGE_CMD,
    ROOT,
    bridge_env,
    crm_body,
    free_port,
    serve_process,
    until,
)

TOKEN = "relay-process-token-0123456789"


@contextlib.contextmanager
def relay_process(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [*BRIDGE_CMD, "relay", *args], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


async def _records(redis: Redis, stream: str) -> list[str]:
    entries = await redis.xrange(stream)
    return [json.loads(fields[b"envelope"])["zohorecordid"] for _, fields in entries]


async def test_serve_without_a_relay_and_relay_processes_deliver_each_event_once(
    database_url: str, redis_client: Redis, unique: str
) -> None:
    stream = f"zb.test.relayproc.{unique}"
    env = bridge_env(database_url, BRIDGE_SINKS="pull,redis", BRIDGE_REDIS_STREAM=stream)
    try:
        with serve_process(env | {"BRIDGE_RELAY": "false"}) as url:
            async with httpx.AsyncClient(base_url=url) as http:
                answer = await http.post("/admin/channels/import", headers=ADMIN,
                                         json={"channel_id": "1000000068001", "token": TOKEN})  # fmt: skip
                assert answer.status_code == 201, answer.text

                async def post(*ids: str) -> None:
                    body = crm_body(ids=list(ids), token=TOKEN)
                    answer = await http.post("/hooks/crm", json=body)
                    assert answer.status_code == 200, answer.text

                async def sink() -> dict[str, Any]:
                    status = (await http.get("/admin/status", headers=ADMIN)).json()
                    [redis] = [s for s in status["sinks"] if s["name"] == "redis"]
                    return cast("dict[str, Any]", redis | {"problems": status["problems"]})

                async def pending() -> int:
                    return int((await sink())["pending"])

                # No relay anywhere: stored and queued, not delivered, and status says so.
                await post("a1", "a2", "a3")
                await asyncio.sleep(0.5)
                alone = await sink()
                assert (alone["pending"], alone["relays"]) == (3, 0)
                assert alone["publish_rate_per_second"] is None
                assert alone["problems"] == [
                    "sink redis: no relay is running, 3 deliveries wait "
                    "(BRIDGE_RELAY=false and no `zoho-bridge relay` process?)"
                ]
                assert await redis_client.xlen(stream) == 0

                port = free_port()
                with relay_process(env, "--metrics-port", str(port)), \
                        relay_process(env | {"BRIDGE_REPLICA_ID": "second"}):  # fmt: skip

                    async def drained() -> bool:
                        return await pending() == 0

                    await until(drained)
                    for n in range(40):
                        await post(*(f"b{n}-{i}" for i in range(5)))
                    await until(drained)

                    async def exported() -> bool:  # that relay's own metrics, once started
                        try:
                            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                        except httpx.TransportError:
                            return False
                        return 'bridge_sink_up{sink="redis"} 1.0' in metrics

                    await until(exported)
                    # Both relays report their rates (every 5 s) through the database to
                    # serve's status, summed: 203 events within the last minute.

                    async def rated() -> bool:
                        return bool((await sink())["publish_rate_per_second"])

                    await until(rated)
                    shared = await sink()
                    assert shared["relays"] == 2
                    assert shared["problems"] == []
                records = await _records(redis_client, stream)
                assert sorted(records) == sorted(
                    ["a1", "a2", "a3", *(f"b{n}-{i}" for n in range(40) for i in range(5))]
                )  # each exactly once, between the two relays

                # A relay stopped, events meanwhile, the next relay delivers them.
                await post("c1", "c2")
                await asyncio.sleep(0.3)
                assert await pending() == 2
                with relay_process(env) as proc:
                    await until(drained)
                    proc.send_signal(signal.SIGTERM)
                    assert proc.wait(timeout=15) == 0
                # A relay that stopped takes its rates with it.
                assert (await sink())["relays"] == 0
                assert (await _records(redis_client, stream))[-2:] in (["c1", "c2"], ["c2", "c1"])
    finally:
        await redis_client.delete(stream)


def test_relay_refuses_a_configuration_with_nothing_to_relay(database_url: str) -> None:
    done = subprocess.run(
        [*BRIDGE_CMD, "relay"], env=bridge_env(database_url, BRIDGE_SINKS="pull"), cwd=ROOT,
        capture_output=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert b"no push sink in BRIDGE_SINKS" in done.stderr
