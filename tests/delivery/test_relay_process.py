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

import httpx
from redis.asyncio import Redis

from tests.support import ADMIN, BRIDGE_CMD, ROOT, bridge_env, crm_body, free_port, serve_process

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


async def _until(check: object, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)


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

                async def pending() -> int:
                    status = (await http.get("/admin/status", headers=ADMIN)).json()
                    [redis] = [s for s in status["sinks"] if s["name"] == "redis"]
                    assert redis["publish_rate_per_second"] is None  # no relay in serve
                    return int(redis["pending"])

                # No relay anywhere: stored and queued, not delivered.
                await post("a1", "a2", "a3")
                await asyncio.sleep(0.5)
                assert await pending() == 3
                assert await redis_client.xlen(stream) == 0

                port = free_port()
                with relay_process(env, "--metrics-port", str(port)), \
                        relay_process(env | {"BRIDGE_REPLICA_ID": "second"}):  # fmt: skip

                    async def drained() -> bool:
                        return await pending() == 0

                    await _until(drained)
                    for n in range(40):
                        await post(*(f"b{n}-{i}" for i in range(5)))
                    await _until(drained)

                    async def exported() -> bool:  # that relay's own metrics, once started
                        try:
                            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                        except httpx.TransportError:
                            return False
                        return 'bridge_sink_up{sink="redis"} 1.0' in metrics

                    await _until(exported)
                records = await _records(redis_client, stream)
                assert sorted(records) == sorted(
                    ["a1", "a2", "a3", *(f"b{n}-{i}" for n in range(40) for i in range(5))]
                )  # each exactly once, between the two relays

                # A relay stopped, events meanwhile, the next relay delivers them.
                await post("c1", "c2")
                await asyncio.sleep(0.3)
                assert await pending() == 2
                with relay_process(env) as proc:
                    await _until(drained)
                    proc.send_signal(signal.SIGTERM)
                    assert proc.wait(timeout=15) == 0
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
