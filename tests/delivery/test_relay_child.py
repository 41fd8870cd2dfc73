"""`serve` delivers from a child process of its own (BRIDGE_RELAY_PROCESS, on by default):
woken by serve's commits, its metrics in serve's /metrics, its rates in serve's status,
started again when it dies (what it held sent at once, not after the lease), and gone when
serve goes, kill -9 included. Real processes, a real Redis, on both databases."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from tests.support import ADMIN, bridge_env, crm_body, serve_running, until

TOKEN = "relay-child-token-0123456789"


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(word) for word in text.split()]


def niceness(pid: int) -> set[int]:
    """The niceness of each thread of a process (Linux keeps one per thread)."""
    return {
        int(Path(f"{task}/stat").read_text().rsplit(")", 1)[1].split()[16])
        for task in Path(f"/proc/{pid}/task").iterdir()
    }


async def threads_started(pid: int) -> None:
    """Until the process runs more than one thread: its relay runs, and the niceness it
    sets first is set (each thread took it from the main one)."""
    tasks = Path(f"/proc/{pid}/task")
    await until(lambda: asyncio.sleep(0, result=len(list(tasks.iterdir())) > 1))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


class HoldingProxy:
    """A TCP proxy to Redis that, while `holding`, forwards nothing its clients send (and
    drops it): a relay publishing through it waits for confirmations, its rows leased."""

    def __init__(self) -> None:
        self.holding = False
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 6379)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, held: bool
        ) -> None:
            with contextlib.suppress(OSError):
                while data := await source.read(65536):
                    if held and self.holding:
                        while self.holding:
                            await asyncio.sleep(0.05)
                        continue  # what was held is dropped: its sender is dead by now
                    sink.write(data)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))


async def records(redis: Redis, stream: str) -> list[str]:
    entries = await redis.xrange(stream)
    return [json.loads(fields[b"envelope"])["zohorecordid"] for _, fields in entries]


async def test_serve_relays_from_a_child_it_wakes_exports_restarts_and_takes_down(
    database_url: str, redis_client: Redis, unique: str
) -> None:
    stream = f"zb.test.relaychild.{unique}"
    proxy = await HoldingProxy().__aenter__()
    env = bridge_env(
        database_url, BRIDGE_SINKS="pull,redis", BRIDGE_REDIS_STREAM=stream,
        BRIDGE_REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0", BRIDGE_SCHEDULER="false",
        # Only a wake-up from serve delivers within seconds, and only the hand-back of a
        # dead child's rows, not their lease running out, gets them sent again in time.
        BRIDGE_RELAY_POLL_SECONDS="60", BRIDGE_RELAY_LEASE_SECONDS="600",
    )  # fmt: skip
    try:
        with serve_running(env) as (proc, url):
            async with httpx.AsyncClient(base_url=url, headers=ADMIN) as http:
                answer = await http.post(
                    "/admin/channels/import", json={"channel_id": "1000000068001", "token": TOKEN}
                )
                assert answer.status_code == 201, answer.text
                [child] = children(proc.pid)

                async def post(*ids: str) -> None:
                    answer = await http.post(
                        "/hooks/crm", json=crm_body(ids=list(ids), token=TOKEN)
                    )
                    assert answer.status_code == 200, answer.text

                async def delivered(count: int) -> bool:
                    return await redis_client.xlen(stream) >= count

                # Woken by serve's commit: delivered long before the 60 s poll.
                started = time.monotonic()
                await post("a1", "a2", "a3")
                await until(lambda: delivered(3), timeout=10)
                assert time.monotonic() - started < 10

                # serve's /metrics holds the child's relay metrics, each family once.
                async def exported() -> dict[str, Any]:
                    text = (await http.get("/metrics")).text
                    families = list(text_string_to_metric_families(text))
                    names = [f.name for f in families]
                    assert len(names) == len(set(names)), "a metric family twice"
                    return {s.name + json.dumps(s.labels, sort_keys=True): s.value
                            for f in families for s in f.samples}  # fmt: skip

                async def counted() -> bool:
                    samples = await exported()
                    key = 'bridge_deliveries_total{"outcome": "delivered", "sink": "redis"}'
                    return samples.get(key) == 3.0

                await until(counted)
                samples = await exported()
                assert samples['bridge_sink_up{"sink": "redis"}'] == 1.0
                assert "bridge_webhook_requests_total" in "".join(samples)  # serve's own

                async def sink() -> dict[str, Any]:
                    status = (await http.get("/admin/status")).json()
                    [redis] = [s for s in status["sinks"] if s["name"] == "redis"]
                    return dict(redis) | {"problems": status["problems"]}

                assert (await sink())["relays"] == 1

                # The child dies (kill -9) holding rows: serve says so, starts another,
                # and hands those rows back, so they go out without waiting 600 s.
                proxy.holding = True  # the child claims, publishes, waits for Redis
                await post("b1", "b2", "b3")

                async def leased() -> bool:
                    return (await sink())["pending"] == 3 and not await delivered(4)

                await until(leased)
                await asyncio.sleep(0.5)
                os.kill(child, signal.SIGKILL)
                proxy.holding = False

                async def reported() -> list[str]:
                    return [p for p in (await sink())["problems"] if "relay process exited" in p]

                [problem] = await until(reported, timeout=5)
                assert "exited with code -9" in problem

                async def replaced() -> list[int]:
                    return [pid for pid in children(proc.pid) if pid != child]

                [second] = await until(replaced)
                await until(lambda: delivered(6), timeout=15)
                assert sorted(await records(redis_client, stream)) == [
                    "a1", "a2", "a3", "b1", "b2", "b3"
                ]  # fmt: skip

                async def settled() -> bool:
                    now = await sink()
                    return now["relays"] == 1 and now["pending"] == 0 and not now["problems"]

                await until(settled)

            # serve killed outright: its child notices and stops by itself.
            proc.kill()
            proc.wait(timeout=10)

            async def gone() -> bool:
                return not alive(second)

            await until(gone, timeout=15)
    finally:
        await proxy.__aexit__()
        await redis_client.delete(stream)


async def test_serve_stopped_stops_its_child_and_false_keeps_the_relay_in_serve(
    database_url: str, redis_client: Redis, unique: str
) -> None:
    stream = f"zb.test.relaychild.{unique}"
    env = bridge_env(database_url, BRIDGE_SINKS="pull,redis", BRIDGE_REDIS_STREAM=stream)
    try:
        with serve_running(env) as (proc, _):
            [child] = children(proc.pid)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)  # uvicorn shuts down, then ends by the signal it caught
            assert not alive(child)
        with serve_running(env | {"BRIDGE_RELAY_PROCESS": "false"}) as (proc, url):
            assert children(proc.pid) == []
            status = httpx.get(f"{url}/admin/status", headers=ADMIN).json()
            assert [s["relays"] for s in status["sinks"]] == [1]  # the relay in serve
        with serve_running(env | {"BRIDGE_SINKS": "pull"}) as (proc, _):
            assert children(proc.pid) == []  # nothing to relay
    finally:
        await redis_client.delete(stream)


async def test_the_child_runs_nicer_in_serves_session_and_leaves_ctrl_c_to_serve(
    database_url: str, redis_client: Redis, unique: str
) -> None:
    """Delivery yields the CPU to answering webhooks: the child runs BRIDGE_RELAY_NICE
    (10) steps nicer than `serve`, every thread of it, and in `serve`'s session (under
    the kernel's autogroups a session of its own would get an equal share whatever its
    niceness). Ctrl-C reaches the whole process group: the child leaves it to `serve`,
    which stops it in order."""
    stream = f"zb.test.relaychild.{unique}"
    env = bridge_env(
        database_url, BRIDGE_SINKS="pull,redis", BRIDGE_REDIS_STREAM=stream,
        BRIDGE_SCHEDULER="false", BRIDGE_RELAY_POLL_SECONDS="60",
    )  # fmt: skip
    try:
        with serve_running(env, session=True) as (proc, url):
            [child] = children(proc.pid)
            await threads_started(child)
            assert niceness(child) == {min(19, os.getpriority(os.PRIO_PROCESS, proc.pid) + 10)}
            assert os.getsid(child) == os.getsid(proc.pid) == proc.pid

            os.kill(child, signal.SIGINT)  # as Ctrl-C reaches it: ignored
            async with httpx.AsyncClient(base_url=url, headers=ADMIN) as http:
                answer = await http.post(
                    "/admin/channels/import", json={"channel_id": "1000000068001", "token": TOKEN}
                )
                assert answer.status_code == 201, answer.text
                answer = await http.post("/hooks/crm", json=crm_body(ids=["c1"], token=TOKEN))
                assert answer.status_code == 200, answer.text

                async def delivered() -> bool:
                    return await redis_client.xlen(stream) == 1

                await until(delivered, timeout=10)  # woken by serve: the child still runs
            assert children(proc.pid) == [child]

            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in serve's terminal
            proc.wait(timeout=30)
            await until(lambda: asyncio.sleep(0, result=not alive(child)), timeout=15)
        with serve_running(env | {"BRIDGE_RELAY_NICE": "0"}) as (proc, _):
            [child] = children(proc.pid)
            await threads_started(child)
            assert niceness(child) == {os.getpriority(os.PRIO_PROCESS, proc.pid)}
    finally:
        await redis_client.delete(stream)
