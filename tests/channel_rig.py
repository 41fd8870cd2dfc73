"""A bridge served by uvicorn on 127.0.0.1, wired to a sandbox Zoho over real HTTP and
sharing the sandbox's clock (tests move time with `state.clock.advance`)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bridge.runtime import Runtime
from bridge.sandbox import RunningSandbox, run_sandbox, serve_app
from bridge.sandbox.model import SandboxClock
from bridge.sandbox.state import SandboxState
from bridge.settings import Settings
from bridge.web.app import create_app
from tests.support import ADMIN, ADMIN_TOKEN, SECRET_KEY, free_port


class FrozenClock(SandboxClock):
    """The sandbox's clock, standing still unless a test advances it: exact times."""

    def __init__(self) -> None:
        super().__init__()
        self._base = float(int(time.time()))

    def now(self) -> float:
        return self._base + self.offset


@dataclass
class Rig:
    url: str
    runtime: Runtime
    http: httpx.AsyncClient
    sandbox: RunningSandbox

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    async def create(self, events: list[str] | None = None, **extra: Any) -> str:
        answer = await self.http.post(
            "/admin/channels",
            json={"connection": "acme", "events": events or ["Leads.all"], **extra},
        )
        assert answer.status_code == 201, answer.text
        channel_id: str = answer.json()["channel_id"]
        return channel_id

    async def view(self, channel_id: str) -> dict[str, Any]:
        items = (await self.http.get("/admin/channels")).json()["items"]
        found: dict[str, Any] = next(i for i in items if i["channel_id"] == channel_id)
        return found

    def hours(self, hours: float) -> None:
        self.state.clock.advance(hours * 3600)

    def watch_posts(self) -> int:
        return self.state.count("POST /crm/v8/actions/watch", status=201)


@asynccontextmanager
async def frozen_sandbox(org: str = "acme") -> AsyncIterator[RunningSandbox]:
    """A sandbox whose clock moves only when a test advances it, with one org."""
    state = SandboxState()
    state.clock = FrozenClock()
    async with run_sandbox(state=state) as running:
        running.state.add_org(org)
        yield running


def sandbox_now(state: SandboxState) -> datetime:
    return datetime.fromtimestamp(int(state.clock.now()), UTC)


def connection_body(sandbox: RunningSandbox, org: str = "acme") -> dict[str, Any]:
    found = sandbox.state.orgs[org]
    return {
        "name": org,
        "dc": found.dc,
        "client_id": found.client_id,
        "client_secret": found.client_secret,
        "refresh_token": next(iter(found.refresh_tokens)),
        "organization_id": found.organization_id,
        "accounts_url": sandbox.accounts_url(found.dc),
    }


@asynccontextmanager
async def bridge_rig(
    database_url: str,
    sandbox: RunningSandbox,
    *,
    connection: dict[str, Any] | None = None,
    clock_skew: float = 0.0,
    **settings: Any,
) -> AsyncIterator[Rig]:
    """`connection`: extra fields of the connection's body (e.g. `limits`); `clock_skew`:
    seconds the bridge's clock is ahead of the sandbox's (negative: behind)."""
    port = free_port()
    values: dict[str, Any] = {
        "database_url": database_url,
        "admin_token": ADMIN_TOKEN,
        "secret_key": SECRET_KEY,
        "public_url": f"http://127.0.0.1:{port}",
        "scheduler": False,
        "lookup_cache_seconds": 0,
    }
    config = Settings.from_environ({}, **{**values, **settings})
    state = sandbox.state
    skew = timedelta(seconds=clock_skew)
    app = create_app(config, clock=lambda: sandbox_now(state) + skew)
    async with (
        serve_app(app, port=port) as url,
        httpx.AsyncClient(base_url=url, headers=ADMIN, timeout=10) as http,
    ):
        body = {**connection_body(sandbox), **(connection or {})}
        added = await http.post("/admin/connections", json=body)
        assert added.status_code in (201, 409), added.text
        yield Rig(url, app.state.runtime, http, sandbox)
