"""Two replicas (two ZohoClients, each with its own DB-backed stores and engine) on one
PostgreSQL database share one Books per-minute budget against one sandbox org."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from bridge.sandbox import run_sandbox
from bridge.sandbox.state import SandboxState
from bridge.secretbox import SecretBox
from bridge.store.budget_store import DbBudgetStore
from bridge.store.database import create_engine
from bridge.store.token_store import DbTokenStore
from bridge.zoho.budget import Budget
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection, Limits
from bridge.zoho.oauth import TokenManager
from tests.support import SECRET_KEY

SPEED = 20.0  # virtual seconds per real second: a minute window passes in 3 s
LIMIT = 6


class FastClock:
    """Time running SPEED times faster than the wall clock, for the sandbox and clients
    alike, so nothing waits a real minute and in-flight requests still take real time."""

    def __init__(self) -> None:
        self._start = time.time()
        self._t0 = time.monotonic()
        self.offset = 0.0

    def now(self) -> float:
        return self._start + (time.monotonic() - self._t0) * SPEED + self.offset

    def dt(self) -> datetime:
        return datetime.fromtimestamp(int(self.now()), UTC)

    def advance(self, seconds: float) -> None:
        self.offset += seconds


async def fast_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds / SPEED)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.mark.postgres
async def test_two_replicas_never_exceed_the_books_per_minute_limit(
    postgres_url: str, http: httpx.AsyncClient
) -> None:
    # PostgreSQL only: replicas share it; SQLite serves one process by design.
    state = SandboxState()
    clock = FastClock()
    state.clock = clock  # type: ignore[assignment]
    org = state.add_org("acme", books_per_minute=LIMIT, books_daily=1000)
    state.books_create("invoices", {"invoice_number": "INV-1"})
    async with run_sandbox(state=state) as sandbox:
        connection = Connection(
            name=f"acme-{uuid.uuid4().hex[:8]}", dc="com", client_id=org.client_id, client_secret=org.client_secret,
            refresh_token=next(iter(org.refresh_tokens)), organization_id=org.organization_id,
            accounts_url=sandbox.accounts_url("com"),
            limits=Limits(books_per_minute=LIMIT, books_daily=1000),
        )  # fmt: skip
        engines = [create_engine(postgres_url), create_engine(postgres_url)]
        box = SecretBox(SECRET_KEY)
        clients = [
            ZohoClient(
                http,
                TokenManager(http, DbTokenStore(engine, box), clock=clock.now),
                # One real second of latency slack, as in production, is SPEED virtual ones.
                Budget(
                    DbBudgetStore(engine), clock=clock.now, sleep=fast_sleep, window_slack=SPEED
                ),
                sleep=fast_sleep,
            )
            for engine in engines
        ]

        async def worker(client: ZohoClient) -> int:
            pages = 0
            for _ in range(2):
                async for _page in client.books_list(connection, "invoices"):
                    pages += 1
            return pages

        started = clock.now()
        try:
            done = await asyncio.gather(*(worker(c) for c in clients for _ in range(3)))
        finally:
            for engine in engines:
                await engine.dispose()
        elapsed = clock.now() - started

    calls = sum(done)
    assert calls == 2 * LIMIT
    assert state.count("GET /books/v3/invoices", status=429) == 0
    assert state.max_in_window("acme", "/books/v3/", 60.0) <= LIMIT
    assert elapsed >= 60.0  # the second half had to wait for the window to clear
    assert state.count("POST /oauth/v2/token") == 1  # one token, shared through the DB
