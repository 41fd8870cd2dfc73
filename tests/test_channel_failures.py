"""Zoho's per-item errors (HTTP 202 partial failure, zoho.md §1.1) on create and renewal,
with an `httpx.MockTransport` Zoho: shown verbatim, the row rolled back, renewal retried
with backoff until it succeeds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bridge.runtime import Runtime, open_runtime
from bridge.services import connections
from bridge.services.managed_channels import ChannelRequest
from bridge.settings import Settings
from bridge.store import managed_channels as store
from bridge.zoho.errors import ZohoPartialFailure
from tests.support import SECRET_KEY


class FakeZoho:
    """Answers the token grant, and watch POSTs with success or a 202 item error."""

    def __init__(self) -> None:
        self.fail_with: str | None = None
        self.posts: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/v2/token"):
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        item = json.loads(request.content)["watch"][0]
        self.posts.append(item)
        if self.fail_with:
            error = {"code": self.fail_with, "details": {"api_name": "channel_expiry"},
                     "message": "the channel limit is reached", "status": "error"}  # fmt: skip
            return httpx.Response(202, json={"watch": [error]})
        details = {"events": [{"channel_expiry": item["channel_expiry"]}]}
        success = {"code": "SUCCESS", "details": details, "status": "success", "message": "ok"}
        return httpx.Response(201, json={"watch": [success]})


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def rig(database_url: str) -> AsyncIterator[tuple[Runtime, FakeZoho, Clock]]:
    zoho, clock = FakeZoho(), Clock()
    settings = Settings.from_environ(
        {}, database_url=database_url, secret_key=SECRET_KEY, scheduler=False,
        public_url="https://bridge.example",
    )  # fmt: skip
    runtime = await open_runtime(settings, clock=clock, transport=httpx.MockTransport(zoho))
    new = connections.NewConnection("acme", "eu", "1000.ID", "secret", "1000.refresh")
    await connections.add_connection(runtime.engine, runtime.box, new, clock())
    try:
        yield runtime, zoho, clock
    finally:
        await runtime.close()


async def test_item_error_on_create_is_shown_verbatim_and_nothing_is_kept(
    rig: tuple[Runtime, FakeZoho, Clock],
) -> None:
    runtime, zoho, _ = rig
    zoho.fail_with = "LIMIT_REACHED"
    with pytest.raises(ZohoPartialFailure, match="LIMIT_REACHED the channel limit is reached"):
        await runtime.managed_channels.create(ChannelRequest("acme", ["Leads.all"]))
    assert await store.list_managed(runtime.engine) == []
    sent = zoho.posts[0]
    assert sent["notify_url"] == "https://bridge.example/hooks/crm"
    assert datetime.fromisoformat(sent["channel_expiry"]).microsecond == 0
    assert sent["channel_expiry"].endswith("+00:00")  # an explicit offset (zoho.md §1.2)


async def test_failed_renewal_backs_off_then_succeeds(
    rig: tuple[Runtime, FakeZoho, Clock],
) -> None:
    runtime, zoho, clock = rig
    created = await runtime.managed_channels.create(ChannelRequest("acme", ["Leads.all"]))
    clock.now += timedelta(hours=24)
    zoho.fail_with = "INTERNAL_SERVER_ERROR"
    assert await runtime.keeper.renew_due() == {"failed": 1}
    failed = await store.get_managed(runtime.engine, created.channel_id)
    assert failed is not None
    assert failed.failures == 1
    assert "INTERNAL_SERVER_ERROR" in (failed.last_error or "")
    assert failed.next_renewal_at is not None
    assert clock.now < failed.next_renewal_at <= clock.now + timedelta(minutes=1)
    assert await runtime.keeper.renew_due() == {}  # not before the retry time
    clock.now = failed.next_renewal_at
    zoho.fail_with = None
    assert await runtime.keeper.renew_due() == {"renewed": 1}
    renewed = await store.get_managed(runtime.engine, created.channel_id)
    assert renewed is not None
    assert (renewed.failures, renewed.last_error, renewed.renewals) == (0, None, 1)
    # Every renewal re-sends events, token and notify URL (zoho.md §1.2).
    first, *_, last = zoho.posts
    for key in ("events", "token", "notify_url", "channel_id"):
        assert first[key] == last[key]


async def test_serve_lifespan_starts_and_stops_the_scheduled_jobs(database_url: str) -> None:
    from bridge.web.app import create_app

    settings = Settings.from_environ({}, database_url=database_url, secret_key=SECRET_KEY)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        scheduler = app.state.runtime.scheduler
        assert {job.id for job in scheduler.get_jobs()} == {
            "renew-channels",
            "compare-channels",
            "reconcile",
        }
    assert app.state.runtime.scheduler is None


async def test_token_rotates_every_n_renewals(database_url: str) -> None:
    zoho, clock = FakeZoho(), Clock()
    settings = Settings.from_environ(
        {}, database_url=database_url, secret_key=SECRET_KEY, scheduler=False,
        public_url="https://bridge.example", channel_rotate_every=2,
    )  # fmt: skip
    runtime = await open_runtime(settings, clock=clock, transport=httpx.MockTransport(zoho))
    try:
        new = connections.NewConnection("acme", "eu", "1000.ID", "secret", "1000.refresh")
        await connections.add_connection(runtime.engine, runtime.box, new, clock())
        created = await runtime.managed_channels.create(ChannelRequest("acme", ["Leads.all"]))
        for _ in range(2):
            clock.now += timedelta(hours=24)
            assert await runtime.keeper.renew_due() == {"renewed": 1}
        tokens = [post["token"] for post in zoho.posts]
        assert tokens[0] == tokens[1] != tokens[2]  # the second renewal rotated
        channel = await store.get_managed(runtime.engine, created.channel_id)
        assert channel is not None
        assert [t.valid_until for t in channel.tokens] == [clock.now + timedelta(hours=1), None]
    finally:
        await runtime.close()


async def test_every_cycle_warns_while_a_channel_is_at_risk(
    rig: tuple[Runtime, FakeZoho, Clock],
) -> None:
    from structlog.testing import capture_logs

    from bridge.services.scheduler import renewal_cycle

    runtime, zoho, clock = rig
    created = await runtime.managed_channels.create(ChannelRequest("acme", ["Leads.all"]))
    zoho.fail_with = "INTERNAL_SERVER_ERROR"  # renewals keep failing for days
    clock.now += timedelta(days=6, hours=1)
    for _ in range(2):
        with capture_logs() as logs:
            await renewal_cycle(runtime.keeper, runtime.managed_channels)
        warned = [e for e in logs if e["event"] == "channel at risk"]
        assert [e["channel"] for e in warned] == [created.channel_id]
        clock.now += timedelta(minutes=5)
    zoho.fail_with = None
    clock.now += timedelta(hours=1)
    with capture_logs() as logs:
        await renewal_cycle(runtime.keeper, runtime.managed_channels)
    assert not [e for e in logs if e["event"] == "channel at risk"]
