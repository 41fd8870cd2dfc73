"""Two renewal workers (two runtimes, two engines) on one PostgreSQL database keep one
channel alive through a simulated week: Zoho sees each renewal once, the channel never
lapses, and a crashed worker's lease is taken over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bridge.runtime import Runtime, open_runtime
from bridge.sandbox import RunningSandbox
from bridge.services import connections
from bridge.services.managed_channels import ChannelRequest
from bridge.settings import Settings
from bridge.store import managed_channels as store
from bridge.store.managed_channels import list_gaps
from tests.channel_rig import connection_body, frozen_sandbox, sandbox_now
from tests.conftest import _truncate
from tests.support import SECRET_KEY

pytestmark = pytest.mark.postgres


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        yield running


@pytest.fixture
async def workers(postgres_url: str, sandbox: RunningSandbox) -> AsyncIterator[list[Runtime]]:
    await _truncate(postgres_url)
    runtimes = []
    for name in ("replica-a", "replica-b"):
        settings = Settings.from_environ(
            {}, database_url=postgres_url, secret_key=SECRET_KEY, scheduler=False,
            public_url="http://127.0.0.1:9", replica_id=name,
        )  # fmt: skip
        runtimes.append(await open_runtime(settings, clock=lambda: sandbox_now(sandbox.state)))
    try:
        body = connection_body(sandbox)
        await connections.add_connection(
            runtimes[0].engine, runtimes[0].box,
            connections.NewConnection(**{**body, "name": "acme"}), runtimes[0].clock(),
        )  # fmt: skip
        yield runtimes
    finally:
        for runtime in runtimes:
            await runtime.close()


async def test_a_week_of_renewals_by_two_workers_each_renewal_once(
    workers: list[Runtime], sandbox: RunningSandbox
) -> None:
    state = sandbox.state
    a, b = workers
    created = await a.managed_channels.create(ChannelRequest("acme", ["Leads.all"]))
    channel_id = created.channel_id
    for hour in range(1, 7 * 24 + 1):
        state.clock.advance(3600)
        await asyncio.gather(a.keeper.renew_due(), b.keeper.renew_due())
        if hour % 6 == 0:
            await asyncio.gather(a.keeper.compare_with_zoho(), b.keeper.compare_with_zoho())
        at_zoho = state.orgs["acme"].channels[channel_id]
        assert at_zoho.expiry - sandbox_now(state) > timedelta(days=5), hour  # never close
    # One enable at creation, then one renewal per day: never two for the same day.
    assert state.count("POST /crm/v8/actions/watch") == 1 + 7
    assert (await store.get_managed(a.engine, channel_id)).renewals == 7  # type: ignore[union-attr]
    assert await list_gaps(a.engine) == []


async def test_a_crashed_workers_lease_expires_and_the_other_takes_over(
    workers: list[Runtime], sandbox: RunningSandbox
) -> None:
    a, b = workers
    created = await a.managed_channels.create(ChannelRequest("acme", ["Deals.all"]))
    sandbox.state.clock.advance(24 * 3600)
    now = a.clock()
    # Worker A claims the channel and dies before renewing it.
    assert await store.claim(
        a.engine, created.channel_id, a.replica, now, now + a.keeper.lease, due=True
    )
    assert await b.keeper.renew_due() == {"skipped": 1}
    sandbox.state.clock.advance(a.keeper.lease.total_seconds() + 1)
    assert await b.keeper.renew_due() == {"renewed": 1}
    assert sandbox.state.count("POST /crm/v8/actions/watch") == 2


async def test_work_decided_on_a_stale_read_is_refused(
    workers: list[Runtime], sandbox: RunningSandbox
) -> None:
    a, b = workers
    created = await a.managed_channels.create(ChannelRequest("acme", ["Deals.all"]))
    sandbox.state.clock.advance(24 * 3600)
    listed_at = b.clock()  # B read the channel as due (or as missing) here ...
    sandbox.state.clock.advance(1)
    assert await a.keeper.renew(created.channel_id, due=True) == "renewed"  # ... A renewed
    assert await b.keeper.renew(created.channel_id, due=True) == "skipped"
    repair = await b.keeper.renew(
        created.channel_id, reason="missing at Zoho", confirmed_before=listed_at
    )
    assert repair == "skipped"
    assert sandbox.state.count("POST /crm/v8/actions/watch") == 2
