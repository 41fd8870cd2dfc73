"""Outages are loud: a connection needing a new consent, the database unreachable, the
database's disk full. Each shows in `/admin/status` problems (and `zoho-bridge status`
says the same), in `/readyz` (failing it only when deliveries cannot be stored), in a
metric, and in one log line per change of state; each clears by itself once fixed.

(Broker outages: tests/delivery/test_recovery.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from bridge.sandbox import RunningSandbox, run_sandbox
from bridge.settings import Settings
from bridge.web.app import create_app
from tests.conftest import _truncate
from tests.support import ADMIN, ADMIN_TOKEN, BRIDGE_CMD, ROOT, SECRET_KEY, bridge_env, crm_body

QUICK = {"health_check_seconds": 0.1, "scheduler": False}
CHANNEL, TOKEN = "1000000068001", "TOKEN_FOR_VERIFICATION_OF_1000000068001"


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as client:
            yield client


async def until(check: Callable[[], Any], timeout: float = 30.0) -> None:
    """Wait for an async `check()` to hold: every outage must show within 30 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("not reached within 30 s")
        await asyncio.sleep(0.02)


async def problems(client: httpx.AsyncClient) -> list[str]:
    answer = await client.get("/admin/status", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    found: list[str] = answer.json()["problems"]
    return found


async def metric(client: httpx.AsyncClient, name: str) -> float | None:
    for line in (await client.get("/metrics")).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def logged(logs: list[dict[str, Any]], event: str) -> int:
    return sum(1 for entry in logs if entry["event"] == event)


def cli_status(database_url: str) -> dict[str, Any]:
    done = subprocess.run([*BRIDGE_CMD, "status", "--json"], env=bridge_env(database_url),
                          capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


# -- a connection needs re-authorisation ---------------------------------------------------


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with run_sandbox() as found:
        found.state.add_org("acme", "eu")
        yield found


async def test_needs_reauth_is_named_with_the_command_that_fixes_it(
    settings: Settings, sandbox: RunningSandbox
) -> None:
    org = sandbox.state.orgs["acme"]
    body = {"name": "acme-eu", "dc": "eu", "client_id": org.client_id,
            "client_secret": org.client_secret, "refresh_token": next(iter(org.refresh_tokens)),
            "accounts_url": sandbox.accounts_url("eu")}  # fmt: skip
    with capture_logs() as logs:
        async with running(settings.model_copy(update=QUICK)) as client:
            assert (
                await client.post("/admin/connections", json=body, headers=ADMIN)
            ).status_code == 201
            org.refresh_tokens.clear()  # the customer revoked the consent
            sandbox.state.grants.clear()
            refused = await client.post("/admin/connections/acme-eu/check", headers=ADMIN)
            assert refused.status_code == 502

            fix = "`zoho-bridge connections update acme-eu --refresh-token <token>`"
            [problem] = await problems(client)
            assert problem.startswith("connection acme-eu is needs_reauth: Zoho refused")
            assert fix in problem
            status = (await client.get("/admin/status", headers=ADMIN)).json()
            assert status["connections"] == {"needs_reauth": ["acme-eu"]}
            ready = await client.get("/readyz")
            assert ready.status_code == 200  # webhooks are still stored
            assert ready.json()["checks"]["connections"] == f"1 needs_reauth: acme-eu (run {fix})"
            name = 'bridge_connection_needs_reauth{connection="acme-eu"}'
            await until(lambda: _equals(metric(client, name), 1.0))
            # The CLI, a process of its own with no background work, says the same.
            cli = await asyncio.to_thread(cli_status, settings.database_url)
            assert cli["problems"] == [problem]
            assert cli["connections"] == status["connections"]
            await asyncio.sleep(0.5)  # a few monitor rounds: still one warning

            org.refresh_tokens.add("1000.new-consent")
            fixed = await client.patch("/admin/connections/acme-eu", headers=ADMIN,
                                       json={"refresh_token": "1000.new-consent"})  # fmt: skip
            assert fixed.json()["status"] == "active"
            await until(lambda: _equals(metric(client, name), 0.0))
            assert await problems(client) == []
            assert (await client.get("/readyz")).json()["checks"]["connections"] == "ok"
    assert logged(logs, "connection needs re-authorisation") == 1
    assert logged(logs, "connection re-authorised") == 1


async def _equals(value: Any, expected: float) -> bool:
    return bool(await value == expected)


# -- the database cannot be reached (PostgreSQL behind a proxy the test cuts) --------------


class Proxy:
    """A TCP proxy to PostgreSQL: `cut` closes every connection and refuses new ones,
    as a database server going away does; `restore` listens again on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._writers.discard(writer)


async def _webhook(client: httpx.AsyncClient, record: str) -> int:
    answer = await client.post("/hooks/crm", json=crm_body(ids=[record]))
    return answer.status_code


@pytest.mark.postgres
async def test_database_down_fails_readiness_and_says_so_then_recovers(
    postgres_url: str,
) -> None:
    await _truncate(postgres_url)
    url = make_url(postgres_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    await proxy.restore()
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    settings = Settings.from_environ({}, database_url=proxied, admin_token=ADMIN_TOKEN,
                                     secret_key=SECRET_KEY, **QUICK)  # fmt: skip
    try:
        with capture_logs() as logs:
            async with running(settings) as client:
                imported = await client.post("/admin/channels/import", headers=ADMIN,
                                             json={"channel_id": CHANNEL, "token": TOKEN})  # fmt: skip
                assert imported.status_code == 201
                assert await _webhook(client, "1") == 200
                assert (await client.get("/readyz")).status_code == 200
                await until(lambda: _equals(metric(client, "bridge_database_up"), 1.0))

                await proxy.cut()
                await until(lambda: _status_is(client, 503))
                checks = (await client.get("/readyz")).json()["checks"]
                assert checks["database"] != "ok"
                [problem] = await problems(client)  # answered, though nothing can be read
                assert problem.startswith("the database cannot be reached")
                assert "webhooks are answered 503" in problem
                await until(lambda: _equals(metric(client, "bridge_database_up"), 0.0))
                assert await _webhook(client, "2") == 503
                await asyncio.sleep(0.5)  # a few monitor rounds: still one warning

                await proxy.restore()
                await until(lambda: _status_is(client, 200))
                await until(lambda: _equals(metric(client, "bridge_database_up"), 1.0))
                assert await problems(client) == []
                await until(lambda: _accepted(client, "3"))
    finally:
        await proxy.cut()
    assert logged(logs, "the database cannot store deliveries") == 1
    assert logged(logs, "the database takes writes again") == 1


async def _status_is(client: httpx.AsyncClient, status: int) -> bool:
    return (await client.get("/readyz")).status_code == status


async def _accepted(client: httpx.AsyncClient, record: str) -> bool:
    return await _webhook(client, record) == 200


# -- the database's disk is full (SQLite on a small tmpfs) ---------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs (needs the right to mount, as root in CI's container)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write to `path` until the disk is full (unbuffered: nothing is left to flush)."""
    with path.open("wb", buffering=0) as ballast, contextlib.suppress(OSError):
        while True:
            ballast.write(b"\0" * 65536)
            os.fsync(ballast.fileno())


async def test_a_full_disk_fails_readiness_and_says_so_then_recovers_without_a_restart(
    small_disk: Path, sqlite_template: Path
) -> None:
    shutil.copy(sqlite_template, small_disk / "bridge.db")
    database_url = f"sqlite+aiosqlite:///{small_disk / 'bridge.db'}"
    settings = Settings.from_environ({}, database_url=database_url, admin_token=ADMIN_TOKEN,
                                     secret_key=SECRET_KEY, **QUICK)  # fmt: skip
    with capture_logs() as logs:
        async with running(settings) as client:
            imported = await client.post("/admin/channels/import", headers=ADMIN,
                                         json={"channel_id": CHANNEL, "token": TOKEN})  # fmt: skip
            assert imported.status_code == 201
            assert await _webhook(client, "before") == 200
            await asyncio.to_thread(_fill, small_disk / "ballast")
            statuses = [await _webhook(client, f"r{n}") for n in range(50)]
            assert statuses[-1] == 503  # nothing stored, nothing acknowledged
            assert set(statuses) <= {200, 503}

            await until(lambda: _status_is(client, 503))
            assert (await client.get("/readyz")).json()["checks"]["database"].startswith("full:")
            [problem] = await problems(client)
            assert problem.startswith("the database is full")
            assert "free disk space" in problem
            await until(lambda: _equals(metric(client, "bridge_database_up"), 0.0))
            status = (await client.get("/admin/status", headers=ADMIN)).json()
            assert status["database"]["state"] == "full"
            await asyncio.sleep(0.5)  # a few monitor rounds: still one warning

            (small_disk / "ballast").unlink()
            await until(lambda: _status_is(client, 200))
            await until(lambda: _accepted(client, "after"))
            await until(lambda: _equals(metric(client, "bridge_database_up"), 1.0))
            assert await problems(client) == []
            events = (await client.get("/admin/events", headers=ADMIN)).json()["items"]
            assert {"before", "after"} <= {e["record_id"] for e in events}
    assert logged(logs, "the database cannot store deliveries") == 1
    assert logged(logs, "the database takes writes again") == 1
