"""Fixtures: every storage-backed test runs on SQLite and on PostgreSQL.

PostgreSQL comes from BRIDGE_TEST_POSTGRES_URL (default: the local server's `test`
database). A fresh database is created for the session and dropped after. If the server
cannot be reached the PostgreSQL tests fail; they never skip. Deselect them on purpose with
`-m "not postgres"`.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from alembic import command

from bridge.sandbox import RunningSandbox, run_sandbox
from bridge.settings import Settings
from bridge.store.migrate import alembic_config
from bridge.web.app import create_app
from tests.support import ADMIN_TOKEN, SECRET_KEY, run_in_thread

POSTGRES_URL = os.environ.get(
    "BRIDGE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TABLES = (
    "delivery_attempts",
    "deliveries",
    "events",
    "inbound_requests",
    "books_sources",
    "crm_channels",
    "connections",
    "zoho_tokens",
    "budget_keys",
    "budget_spend",
    "budget_slots",
    "channel_gaps",
    "subscriptions",
    "sink_states",
    "reconcile_days",
    "sweep_records",
    "reconcile_watches",
    "reconcile_runs",
    "heartbeats",
    "downtime",
)


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(_dsn(POSTGRES_URL), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def migrate(url: str) -> None:
    # Alembic's env.py runs its own event loop, so it gets a thread of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(command.upgrade, alembic_config(url), "head").result()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "bridge.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"zb_test_{uuid.uuid4().hex[:12]}"
    try:
        run_in_thread(_admin_sql(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}: {exc}")
    url = _with_database(POSTGRES_URL, name)
    migrate(url)
    yield url
    run_in_thread(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate(url: str) -> None:
    conn = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "bridge.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    await _truncate(url)
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings.from_environ(
        {},
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
        max_body_bytes=64 * 1024,
        scheduler=False,  # tests run scheduled work themselves, at the times they choose
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    """A fake Zoho on a free port (modules needing orgs or a frozen clock override this)."""
    async with run_sandbox() as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The real app, lifespan and all, over ASGI."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge.test") as c:
            yield c


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """With BRIDGE_TEST_FORBID_SKIPS=1 (CI), a skipped test is a failed test."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("BRIDGE_TEST_FORBID_SKIPS") == "1":
        report.outcome = "failed"
        report.longrepr = f"skipped, and skips are forbidden here: {report.longrepr}"
