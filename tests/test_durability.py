"""`kill -9` under load loses no acknowledged event: every 2xx was committed first."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import httpx
from sqlalchemy import select

from bridge.store.database import create_engine
from bridge.store.models import EventRow
from tests.support import ADMIN, BRIDGE_CMD, ROOT, bridge_env, crm_body, free_port

TOKEN = "TOKEN_FOR_VERIFICATION_OF_1000000068001"


async def _wait_ready(url: str) -> None:
    async with httpx.AsyncClient() as c:
        for _ in range(150):
            try:
                if (await c.get(f"{url}/readyz", timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("serve did not become ready")


async def test_kill_9_loses_no_acknowledged_event(database_url: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [*BRIDGE_CMD, "serve", "--port", str(port)], env=bridge_env(database_url), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    acked: list[str] = []
    try:
        await _wait_ready(url)
        async with httpx.AsyncClient(base_url=url, timeout=5) as c:
            r = await c.post(
                "/admin/channels/import", json={"channel_id": "1000000068001", "token": TOKEN},
                headers=ADMIN,
            )  # fmt: skip
            assert r.status_code == 201

            async def sender(n: int) -> None:
                for i in range(10_000):
                    try:
                        r = await c.post(
                            "/hooks/crm", json=crm_body(server_time=i, ids=[f"{n}-{i}"])
                        )
                    except httpx.TransportError:
                        return  # the server is gone
                    if r.status_code == 200:
                        acked.extend(r.json()["event_ids"])

            senders = [asyncio.create_task(sender(n)) for n in range(16)]
            deadline = time.monotonic() + 10
            while len(acked) < 300 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(asyncio.gather(*senders), timeout=30)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert len(acked) >= 300
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored = set((await conn.execute(select(EventRow.id))).scalars())
    finally:
        await engine.dispose()
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged events were lost"
