"""The sandbox's `/crm/v8/actions/watch` follows Zoho's rules and shapes (zoho.md §1)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from bridge.sandbox import RunningSandbox

from .conftest import access_token


@pytest.fixture
async def crm(sandbox: RunningSandbox, http: httpx.AsyncClient) -> httpx.AsyncClient:
    sandbox.state.add_org("acme")
    token = await access_token(http, sandbox, "acme")
    http.headers["Authorization"] = f"Zoho-oauthtoken {token}"
    return http


def _url(sandbox: RunningSandbox) -> str:
    return f"{sandbox.api_domain()}/crm/v8/actions/watch"


def _item(channel_id: str, **extra: Any) -> dict[str, Any]:
    return {"channel_id": channel_id, "events": ["Leads.all"], "notify_url": "http://h/cb", **extra}


async def test_enable_answers_201_with_zohos_success_shape(
    sandbox: RunningSandbox, crm: httpx.AsyncClient
) -> None:
    expiry = (sandbox.state.clock.dt() + timedelta(days=2)).isoformat()
    body = {"watch": [_item("10000", events=["Leads.create", "Deals.edit"], channel_expiry=expiry)]}
    response = await crm.post(_url(sandbox), json=body)
    assert response.status_code == 201
    [item] = response.json()["watch"]
    assert item["code"] == "SUCCESS"
    assert item["status"] == "success"
    assert item["message"] == "Successfully subscribed for actions-watch of the given module"
    events = item["details"]["events"]
    assert [e["resource_name"] for e in events] == ["Leads", "Deals"]
    assert {e["channel_id"] for e in events} == {"10000"}
    assert events[0]["channel_expiry"] == expiry


async def test_expiry_rules(sandbox: RunningSandbox, crm: httpx.AsyncClient) -> None:
    now = sandbox.state.clock.dt()
    body = {
        "watch": [
            _item("1"),  # missing → one hour
            _item("2", channel_expiry=(now + timedelta(days=8)).isoformat()),  # beyond a week → 1 h
            _item("3", channel_expiry="2030-01-01T00:00:00.123+00:00"),  # fractional → refused
            _item("4", token="x" * 51),  # token longer than 50 → refused
        ]
    }
    response = await crm.post(_url(sandbox), json=body)
    assert response.status_code == 202
    items = response.json()["watch"]
    assert [i["status"] for i in items] == ["success", "success", "error", "error"]
    assert items[2]["code"] == items[3]["code"] == "INVALID_DATA"
    assert items[2]["details"] == {"api_name": "channel_expiry"}
    channels = sandbox.state.org("acme").channels
    assert channels["1"].expiry == channels["2"].expiry == now + timedelta(hours=1)


async def test_expiry_beyond_a_week_can_be_rejected_instead(
    sandbox: RunningSandbox, crm: httpx.AsyncClient
) -> None:
    sandbox.state.expiry_beyond_week = "reject"
    expiry = (sandbox.state.clock.dt() + timedelta(days=8)).isoformat()
    response = await crm.post(_url(sandbox), json={"watch": [_item("1", channel_expiry=expiry)]})
    assert response.status_code == 400
    assert response.json()["watch"][0]["code"] == "INVALID_DATA"


async def test_get_patch_delete_and_unknown_channels(
    sandbox: RunningSandbox, crm: httpx.AsyncClient
) -> None:
    url = _url(sandbox)
    assert (await crm.get(url)).status_code == 204
    await crm.post(url, json={"watch": [_item("7", events=["Leads.create", "Leads.edit"])]})
    listed = (await crm.get(url)).json()
    assert listed["info"]["count"] == 1
    assert listed["watch"][0]["events"] == ["Leads.create", "Leads.edit"]

    patch = {"watch": [{"channel_id": "7", "events": ["Leads.edit"], "_delete_events": True}]}
    removed = await crm.patch(url, json=patch)
    assert removed.json()["watch"][0]["message"] == "Successfully removed the subscribe details"
    assert sandbox.state.org().channels["7"].events == ["Leads.create"]

    unknown = await crm.patch(url, json={"watch": [{"channel_id": "99", "token": "t"}]})
    assert unknown.status_code == 400
    assert unknown.json()["watch"][0]["code"] == "NOT_SUBSCRIBED"

    deleted = await crm.delete(url, params={"channel_ids": "7,99"})
    assert deleted.status_code == 202
    assert [i["status"] for i in deleted.json()["watch"]] == ["success", "error"]
    assert deleted.json()["watch"][0]["message"] == "Successfully un-subscribed from actions-watch"
    assert (await crm.get(url)).status_code == 204


async def test_expired_channel_is_not_listed(
    sandbox: RunningSandbox, crm: httpx.AsyncClient
) -> None:
    expiry = (sandbox.state.clock.dt() + timedelta(minutes=10)).isoformat()
    await crm.post(_url(sandbox), json={"watch": [_item("5", channel_expiry=expiry)]})
    sandbox.state.clock.advance(601)
    assert (await crm.get(_url(sandbox))).status_code == 204
