"""Managed CRM channels against the sandbox over real HTTP: create, callbacks verified at
/hooks/crm, renewal, self-healing with gaps, rotation, needs_reauth, disable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bridge.sandbox import RunningSandbox
from bridge.store.managed_channels import list_gaps
from tests.channel_rig import Rig, bridge_rig, frozen_sandbox, sandbox_now
from tests.support import crm_body


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with frozen_sandbox() as running:
        yield running


@pytest.fixture
async def rig(database_url: str, sandbox: RunningSandbox) -> AsyncIterator[Rig]:
    async with bridge_rig(database_url, sandbox) as running:
        yield running


async def test_create_then_a_change_at_zoho_arrives_verified(rig: Rig) -> None:
    channel_id = await rig.create(["Leads.all", "Deals.edit"], return_affected_field_values=True)
    at_zoho = rig.state.orgs["acme"].channels[channel_id]
    assert channel_id.isdigit()
    assert at_zoho.notify_url == f"{rig.url}/hooks/crm"
    assert at_zoho.token is not None
    assert 12 <= len(at_zoho.token) <= 50
    assert at_zoho.return_affected_field_values
    left = at_zoho.expiry - sandbox_now(rig.state)
    assert timedelta(hours=167) - timedelta(seconds=5) <= left <= timedelta(hours=167)
    view = await rig.view(channel_id)
    assert view["managed"]
    assert view["renewal"]["state"] == "live"
    assert at_zoho.token not in str(view)
    one = (await rig.http.get(f"/admin/channels/{channel_id}")).json()
    assert one["renewal"]["expires_in_seconds"] == 167 * 3600

    record_id = rig.state.crm_create("Leads", {"Last_Name": "Ada"})
    await rig.state.flush()
    (delivery,) = rig.state.deliveries
    assert (delivery.outcome, delivery.status) == ("delivered", 200)
    events = (await rig.http.get("/admin/events")).json()["items"]
    assert [(e["module"], e["record_id"], e["source"]) for e in events] == [
        ("Leads", record_id, "acme")
    ]


async def test_create_needs_a_public_url_and_good_events(
    database_url: str, sandbox: RunningSandbox
) -> None:
    async with bridge_rig(database_url, sandbox, public_url="") as rig:
        answer = await rig.http.post(
            "/admin/channels", json={"connection": "acme", "events": ["Leads.all"]}
        )
        assert answer.status_code == 400
        assert "BRIDGE_PUBLIC_URL is not set" in answer.json()["message"]
    async with bridge_rig(database_url, sandbox) as rig:
        for events in ([], ["Leads"], ["Leads.update"]):
            answer = await rig.http.post(
                "/admin/channels", json={"connection": "acme", "events": events}
            )
            assert answer.status_code == 400, events
        answer = await rig.http.post(
            "/admin/channels", json={"connection": "nobody", "events": ["Leads.all"]}
        )
        assert answer.status_code == 404


async def test_renewed_after_a_day_long_before_expiry(rig: Rig) -> None:
    channel_id = await rig.create()
    keeper = rig.runtime.keeper
    rig.hours(23)
    assert await keeper.renew_due() == {}
    first_expiry = rig.state.orgs["acme"].channels[channel_id].expiry
    rig.hours(1)
    assert await keeper.renew_due() == {"renewed": 1}
    at_zoho = rig.state.orgs["acme"].channels[channel_id]
    # 24 h later (plus the real seconds the test took: the sandbox clock runs on).
    assert timedelta(hours=24) <= at_zoho.expiry - first_expiry <= timedelta(hours=24, seconds=5)
    assert rig.watch_posts() == 2
    view = (await rig.view(channel_id))["renewal"]
    assert view["renewals"] == 1
    assert view["last_renewed_at"] is not None
    # Forced renewal from the admin API, off schedule.
    assert (await rig.http.post(f"/admin/channels/{channel_id}/renew")).status_code == 200
    assert rig.watch_posts() == 3
    assert await list_gaps(rig.runtime.engine) == []


async def test_deleted_behind_our_back_is_recreated_and_the_gap_recorded(rig: Rig) -> None:
    channel_id = await rig.create()
    created_at = sandbox_now(rig.state)
    rig.hours(2)
    assert await rig.runtime.keeper.compare_with_zoho() == {"ok": 1}  # confirmed live at +2 h
    confirmed = sandbox_now(rig.state)
    del rig.state.orgs["acme"].channels[channel_id]
    rig.hours(3)
    assert await rig.runtime.keeper.compare_with_zoho() == {"renewed": 1}
    assert channel_id in rig.state.orgs["acme"].channels
    (gap,) = await list_gaps(rig.runtime.engine, channel_id)
    assert gap.reason == "missing at Zoho"
    assert (gap.gap_from, gap.gap_to) == (confirmed, sandbox_now(rig.state))
    assert gap.gap_from > created_at
    gaps = (await rig.http.get(f"/admin/channels/{channel_id}/gaps")).json()["items"]
    assert [g["reason"] for g in gaps] == ["missing at Zoho"]
    rig.state.crm_create("Leads", {})
    await rig.state.flush()
    assert rig.state.deliveries[-1].status == 200


async def test_wrong_token_and_url_at_zoho_are_corrected(rig: Rig) -> None:
    channel_id = await rig.create()
    at_zoho = rig.state.orgs["acme"].channels[channel_id]
    good = (at_zoho.token, at_zoho.notify_url)
    at_zoho.token = "someone-else-s-token-0123456789"
    rig.hours(1)
    assert await rig.runtime.keeper.compare_with_zoho() == {"renewed": 1}
    at_zoho = rig.state.orgs["acme"].channels[channel_id]
    assert (at_zoho.token, at_zoho.notify_url) == good
    at_zoho.notify_url = "http://127.0.0.1:9/elsewhere"
    at_zoho.events = ["Deals.all"]
    rig.hours(1)
    assert await rig.runtime.keeper.compare_with_zoho() == {"renewed": 1}
    at_zoho = rig.state.orgs["acme"].channels[channel_id]
    assert (at_zoho.token, at_zoho.notify_url, at_zoho.events) == (*good, ["Leads.all"])
    reasons = [g.reason for g in await list_gaps(rig.runtime.engine, channel_id)]
    assert reasons == ["token differs", "events differ"]


async def test_rotated_token_accepted_at_once_and_old_one_retired_after_grace(rig: Rig) -> None:
    channel_id = await rig.create()
    old = rig.state.orgs["acme"].channels[channel_id].token
    assert (await rig.http.post(f"/admin/channels/{channel_id}/rotate")).status_code == 200
    new = rig.state.orgs["acme"].channels[channel_id].token
    assert new != old
    rig.state.crm_create("Leads", {})
    await rig.state.flush()
    assert rig.state.deliveries[-1].status == 200  # Zoho now sends the new token

    def callback(token: str | None, record: str) -> dict[str, object]:
        return crm_body(channel_id=channel_id, token=token, ids=[record])

    late = await rig.http.post("/hooks/crm", json=callback(old, "5725767000009000001"))
    assert late.status_code == 200  # in flight with the old token: still within the grace
    rig.hours(1.01)
    stale = await rig.http.post("/hooks/crm", json=callback(old, "5725767000009000002"))
    assert stale.status_code == 401
    fresh = await rig.http.post("/hooks/crm", json=callback(new, "5725767000009000003"))
    assert fresh.status_code == 200


async def test_needs_reauth_pauses_channels_and_a_new_consent_resumes_them(rig: Rig) -> None:
    channel_id = await rig.create()
    org = rig.state.orgs["acme"]
    org.refresh_tokens.clear()  # the customer revoked the consent
    rig.state.grants.clear()
    keeper = rig.runtime.keeper
    rig.hours(25)
    assert await keeper.renew_due() == {"paused": 1}
    connection = (await rig.http.get("/admin/connections/acme")).json()
    assert connection["status"] == "needs_reauth"
    calls = len(rig.state.hits)
    rig.hours(24)
    assert await keeper.renew_due() == {}
    assert await keeper.compare_with_zoho() == {}
    assert len(rig.state.hits) == calls  # paused: no calls at all

    rig.hours(24 * 5)  # past the expiry: the alert is up, readiness is not failed by it
    status = (await rig.http.get("/admin/status")).json()["channels"]
    assert [(c["channel_id"], c["state"]) for c in status["at_risk"]] == [(channel_id, "paused")]
    ready = await rig.http.get("/readyz")
    assert ready.status_code == 200
    assert "1 at risk" in ready.json()["checks"]["channels"]
    metrics = (await rig.http.get("/metrics")).text
    assert "bridge_channels_at_risk 1.0" in metrics

    org.refresh_tokens.add("1000.new-consent")
    fixed = await rig.http.patch(
        "/admin/connections/acme", json={"refresh_token": "1000.new-consent"}
    )
    assert fixed.json()["status"] == "active"
    assert await keeper.renew_due() == {"renewed": 1}
    assert org.channels[channel_id].expiry > sandbox_now(rig.state) + timedelta(days=6)
    (gap,) = await list_gaps(rig.runtime.engine, channel_id)
    assert gap.reason == "expired"
    status = (await rig.http.get("/admin/status")).json()["channels"]
    assert status == {"managed": 1, "at_risk": []}


async def test_disable_when_zoho_already_forgot_it(rig: Rig) -> None:
    channel_id = await rig.create()
    live = await rig.create(["Deals.all"])
    assert (await rig.http.post(f"/admin/channels/{live}/disable")).json()["note"] == (
        "deleted at Zoho"
    )
    assert live not in rig.state.orgs["acme"].channels
    rig.hours(24 * 8)
    del rig.state.orgs["acme"].channels[channel_id]  # expired and forgotten at Zoho
    answer = await rig.http.post(f"/admin/channels/{channel_id}/disable")
    assert answer.status_code == 200, answer.text
    assert answer.json()["note"] == "Zoho no longer knew it"
    assert answer.json()["state"] == "disabled"
    late = await rig.http.post("/hooks/crm", json=crm_body(channel_id=channel_id))
    assert late.status_code == 404
    assert await rig.runtime.keeper.renew_due() == {}
    assert (await rig.http.get("/admin/status")).json()["channels"]["managed"] == 0


async def test_token_rotated_by_another_replica_is_accepted_despite_the_cache(
    database_url: str, sandbox: RunningSandbox
) -> None:
    from bridge.runtime import open_runtime

    async with bridge_rig(database_url, sandbox, lookup_cache_seconds=600) as rig:
        channel_id = await rig.create()
        rig.state.crm_create("Leads", {})
        await rig.state.flush()  # the channel is now in this replica's lookup cache
        other = await open_runtime(rig.runtime.settings, clock=rig.runtime.clock)
        try:
            await other.managed_channels.renew_now(channel_id, rotate=True)
        finally:
            await other.close()
        rig.state.crm_create("Leads", {})
        await rig.state.flush()
        assert [d.status for d in rig.state.deliveries] == [200, 200]
