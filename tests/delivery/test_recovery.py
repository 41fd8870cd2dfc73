"""Broker outages, with a Redis and a NATS server each test starts and stops itself (never
the shared ones): loud within seconds in status, readiness detail, metrics and the log, the
waiting rows untouched (no attempt counted, no backoff), and drained at once when the
broker is back."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from structlog.testing import capture_logs

from bridge.runtime import open_runtime
from bridge.sinks.factory import SinkConfig
from tests.support import ADMIN, free_port

from .conftest import Bridge, BridgeFactory, Recorder, eventually, webhook_config

pytestmark = pytest.mark.broker

# Outages must show within 30 s with the defaults; with these, within a second.
QUICK = {"health_check_seconds": 0.1, "sink_probe_seconds": 0.05, "sink_probe_cap_seconds": 0.2}


class Server:
    """A broker process on its own port, stopped and started again by the test.

    With `group=True` it runs in a process group of its own and `stop` ends the whole
    group (for brokers started through wrapper scripts, such as RabbitMQ's)."""

    def __init__(
        self,
        command: list[str],
        ready: Callable[[], Any],
        *,
        env: dict[str, str] | None = None,
        group: bool = False,
        startup: float = 10.0,
    ) -> None:
        self._command = command
        self._ready = ready
        self._env = env
        self._group = group
        self._startup = startup
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self._proc = subprocess.Popen(
            self._command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self._env,
            start_new_session=self._group,
        )
        deadline = asyncio.get_running_loop().time() + self._startup
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(Exception):
                await self._ready()
                return
            await asyncio.sleep(0.05)
        self.stop()
        raise AssertionError(f"{self._command[0]} did not start")

    def stop(self) -> None:
        if self._proc is not None:
            if self._group:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, signal.SIGTERM)
            else:
                self._proc.terminate()
            self._proc.wait(timeout=30)
            self._proc = None


@contextlib.asynccontextmanager
async def own_redis() -> AsyncIterator[tuple[Server, str]]:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"

    async def ping() -> None:
        client = Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            await client.ping()
        finally:
            await client.aclose()

    server = Server(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no"], ping)  # fmt: skip
    await server.start()
    try:
        yield server, url
    finally:
        server.stop()


async def _stream_ids(url: str, stream: str) -> list[bytes]:
    client = Redis.from_url(url)
    try:
        return [fields[b"id"] for _, fields in await client.xrange(stream)]
    finally:
        await client.aclose()


async def _problems(b: Bridge) -> list[str]:
    problems: list[str] = (await b.status())["problems"]
    return problems


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


async def test_a_broker_outage_is_loud_and_the_backlog_drains_when_it_is_back(
    bridge: BridgeFactory, unique: str
) -> None:
    stream = f"zb.outage.{unique}"
    with capture_logs() as logs:
        async with own_redis() as (server, url):
            config = SinkConfig(sinks=("pull", "redis"), redis_url=SecretStr(url),
                                redis_stream=stream, broker_timeout=1)  # fmt: skip
            async with bridge(config, **QUICK) as b:
                await b.post_crm("before")
                await eventually(lambda: b.runtime.relay is not None)
                for _ in range(200):
                    if not await b.outbox(status="pending"):
                        break
                server.stop()
                # 300 events from 30 deliveries while Redis is down.
                for t in range(30):
                    await b.post_crm(*[f"r{n}" for n in range(10)], server_time=5000 + t)

                # Loud: status, readiness detail (still ready), metric, one log line.
                for _ in range(300):
                    problems = await _problems(b)
                    if any(p.startswith("sink redis is unreachable") for p in problems):
                        break
                    await asyncio.sleep(0.01)
                [problem] = [p for p in problems if p.startswith("sink redis")]
                assert "since" in problem
                assert "deliveries wait in the outbox" in problem
                [sink] = (await b.status())["sinks"]
                assert (sink["state"], sink["pending"], sink["dead"]) == ("unreachable", 300, 0)
                assert sink["unreachable_since"] and "redis" in sink["unreachable_reason"]
                ready = await b.client.get("/readyz")
                assert ready.status_code == 200
                assert ready.json()["checks"]["sinks"].startswith("redis is unreachable")
                metrics = (await b.client.get("/metrics")).text
                assert _metric(metrics, 'bridge_sink_up{sink="redis"}') == 0.0
                await asyncio.sleep(1.0)  # several probes fail meanwhile
                # A one-shot CLI process (no relay) reads the same outage from the database.
                cli = await open_runtime(b.runtime.settings, background=False)
                try:
                    served = await _problems(b)
                    assert (await cli.status.overview())["problems"] == served
                finally:
                    await cli.close()
                assert any(p.startswith("sink redis is unreachable") for p in served)
                pending = await b.outbox(status="pending")
                assert len(pending) == 300
                # No attempt counted, no backoff left behind: each waits as it was queued.
                assert {p["attempts"] for p in pending} == {0}
                assert await b.outbox(status="dead") == []

                await server.start()
                for _ in range(1000):  # drained within seconds of recovery
                    if not await b.outbox(status="pending"):
                        break
                    await asyncio.sleep(0.01)
                assert await b.outbox(status="pending") == []
                delivered = await b.outbox(status="delivered")
                assert len(delivered) == 301
                assert {d["attempts"] for d in delivered} == {1}
                assert not any(p.startswith("sink redis") for p in await _problems(b))
                [sink] = (await b.status())["sinks"]
                assert sink["state"] == "ok"
                assert (await b.client.get("/readyz")).json()["checks"]["sinks"] == "ok"
                metrics = (await b.client.get("/metrics")).text
                assert _metric(metrics, 'bridge_sink_up{sink="redis"}') == 1.0
                ids = await _stream_ids(url, stream)
                # At least once: a publish cut by the outage may be repeated, never lost.
                assert len(set(ids)) == 300  # ("before" went to the first Redis process)
    events = [e["event"] for e in logs if e.get("sink") == "redis"]
    assert events.count("sink unreachable: its deliveries wait in the outbox") == 1
    assert events.count("sink reachable again: delivering") == 1


async def test_a_nats_outage_pauses_the_sink_and_it_resumes(
    bridge: BridgeFactory, unique: str
) -> None:
    port = free_port()
    url = f"nats://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as store:

        async def ready() -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()

        server = Server(["nats-server", "-js", "-a", "127.0.0.1", "-p", str(port),
                         "-sd", store], ready)  # fmt: skip
        await server.start()
        try:
            config = SinkConfig(sinks=("pull", "nats"), nats_url=SecretStr(url),
                                nats_stream=f"ZBR_{unique}", broker_timeout=0.5)  # fmt: skip
            async with bridge(config, **QUICK) as b:
                await b.post_crm("before")
                for _ in range(300):
                    if (await b.status())["sinks"][0]["pending"] == 0:
                        break
                    await asyncio.sleep(0.01)
                server.stop()
                await b.post_crm(*[f"n{n}" for n in range(20)])
                for _ in range(500):
                    if (await b.status())["sinks"][0]["state"] == "unreachable":
                        break
                    await asyncio.sleep(0.01)
                [sink] = (await b.status())["sinks"]
                assert (sink["state"], sink["pending"]) == ("unreachable", 20)
                await server.start()
                for _ in range(1500):
                    if (await b.status())["sinks"][0]["pending"] == 0:
                        break
                    await asyncio.sleep(0.01)
                [sink] = (await b.status())["sinks"]
                assert (sink["state"], sink["pending"], sink["dead"]) == ("ok", 0, 0)
                r = await b.client.get("/admin/outbox", params={"status": "delivered"},
                                       headers=ADMIN)  # fmt: skip
                assert {d["attempts"] for d in r.json()["items"]} == {1}
        finally:
            server.stop()


async def test_lease_owners_are_the_replica_id(bridge: BridgeFactory, recorder: Recorder) -> None:
    async with bridge(webhook_config(recorder.url), replica_id="replica-eu-1") as b:
        assert b.runtime.replica == "replica-eu-1"
        await b.post_crm("1", "2")
        await eventually(lambda: len(recorder.envelopes) == 2)
        for _ in range(200):
            delivered = await b.outbox(status="delivered")
            if len(delivered) == 2:
                break
        assert {d["lease_owner"] for d in delivered} == {"replica-eu-1"}
