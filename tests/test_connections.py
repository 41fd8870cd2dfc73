"""Connections: admin API, CLI, `check` against the sandbox over real HTTP, needs_reauth,
and the secret key check at start-up."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from bridge.sandbox import RunningSandbox, run_sandbox
from bridge.settings import Settings
from bridge.web.app import create_app
from tests.support import ADMIN, BRIDGE_CMD, ROOT, bridge_env


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with run_sandbox() as running:
        running.state.add_org("acme", "eu")
        yield running


def connection_body(sandbox: RunningSandbox, name: str = "acme-eu") -> dict[str, Any]:
    org = sandbox.state.orgs["acme"]
    return {
        "name": name,
        "dc": "eu",
        "client_id": org.client_id,
        "client_secret": org.client_secret,
        "refresh_token": next(iter(org.refresh_tokens)),
        "organization_id": org.organization_id,
        "accounts_url": sandbox.accounts_url("eu"),
        "limits": {"books_per_minute": 30},
    }


async def test_admin_connections_never_show_secrets_and_check_works(
    client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    body = connection_body(sandbox)
    created = await client.post("/admin/connections", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    listed = await client.get("/admin/connections", headers=ADMIN)
    for text in (created.text, listed.text):
        assert body["client_secret"] not in text
        assert body["refresh_token"] not in text
    view = listed.json()["items"][0]
    assert (view["name"], view["dc"], view["status"]) == ("acme-eu", "eu", "active")
    assert view["limits"]["books_per_minute"] == 30
    assert view["limits"]["crm_concurrency"] == 5  # defaults fill the rest
    again = await client.post("/admin/connections", json=body, headers=ADMIN)
    assert again.status_code == 409

    checked = await client.post("/admin/connections/acme-eu/check", headers=ADMIN)
    assert checked.status_code == 200, checked.text
    assert checked.json()["crm_org"] == "acme"
    assert checked.json()["dc"] == "eu"

    # The customer revokes the consent: the next check says so and pauses the connection.
    sandbox.state.orgs["acme"].refresh_tokens.clear()
    await client.delete("/admin/connections/acme-eu", headers=ADMIN)  # forget cached token
    await client.post("/admin/connections", json=body, headers=ADMIN)
    refused = await client.post("/admin/connections/acme-eu/check", headers=ADMIN)
    assert refused.status_code == 502
    assert "invalid_code" in refused.json()["message"]
    view = (await client.get("/admin/connections/acme-eu", headers=ADMIN)).json()
    assert view["status"] == "needs_reauth"
    assert "invalid_code" in view["last_error"]

    # A new consent: update the refresh token and the connection is active again.
    sandbox.state.orgs["acme"].refresh_tokens.add("1000.fresh-refresh-token")
    fixed = await client.patch(
        "/admin/connections/acme-eu",
        json={"refresh_token": "1000.fresh-refresh-token"},
        headers=ADMIN,
    )
    assert fixed.json()["status"] == "active"
    assert (await client.post("/admin/connections/acme-eu/check", headers=ADMIN)).status_code == 200

    assert (await client.delete("/admin/connections/acme-eu", headers=ADMIN)).status_code == 204
    assert (await client.get("/admin/connections/acme-eu", headers=ADMIN)).status_code == 404


async def test_bad_connection_input(client: httpx.AsyncClient, sandbox: RunningSandbox) -> None:
    body = connection_body(sandbox)
    for change, needle in (
        ({"dc": "mars"}, "unknown Zoho data centre"),
        ({"name": "bad name!"}, "name must be"),
        ({"limits": {"books_per_minute": 0}}, "positive"),
        ({"limits": {"nonsense": 1}}, "unknown limits"),
        ({"client_secret": ""}, "client_secret is required"),
    ):
        answer = await client.post("/admin/connections", json={**body, **change}, headers=ADMIN)
        assert answer.status_code == 400, change
        assert needle in answer.json()["message"]


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BRIDGE_CMD, *args], env=bridge_env(database_url), capture_output=True, text=True,
        timeout=60, cwd=ROOT,
    )  # fmt: skip


async def test_cli_add_check_list(database_url: str, sandbox: RunningSandbox) -> None:
    body = connection_body(sandbox, "cli-conn")
    added = await asyncio.to_thread(
        _cli, database_url, "connections", "add", "cli-conn", "--dc", "eu",
        "--client-id", body["client_id"], "--client-secret", body["client_secret"],
        "--refresh-token", body["refresh_token"], "--accounts-url", body["accounts_url"],
        "--organization-id", body["organization_id"],
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    checked = await asyncio.to_thread(_cli, database_url, "connections", "check", "cli-conn")
    assert checked.returncode == 0, checked.stderr
    assert "data centre eu" in checked.stdout
    assert "CRM org: acme" in checked.stdout
    assert "Books organization:" in checked.stdout
    sandbox.state.orgs["acme"].refresh_tokens.clear()
    sandbox.state.grants.clear()
    # The cached access token is refused (401), the refresh is refused: needs_reauth.
    refused = await asyncio.to_thread(_cli, database_url, "connections", "check", "cli-conn")
    assert refused.returncode == 1
    assert "needs_reauth" in refused.stderr
    assert body["client_secret"] not in refused.stderr + checked.stdout


async def test_wrong_secret_key_fails_serve_and_readiness(
    settings: Settings, client: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    created = await client.post("/admin/connections", json=connection_body(sandbox), headers=ADMIN)
    assert created.status_code == 201
    wrong = settings.model_copy(update={"secret_key": None})
    app = create_app(wrong)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://b") as other:
            ready = await other.get("/readyz")
    assert ready.status_code == 503
    assert "BRIDGE_SECRET_KEY is not set" in ready.json()["checks"]["secret_key"]
    env = bridge_env(settings.database_url)
    env["BRIDGE_SECRET_KEY"] = "a" * 43 + "="  # a valid Fernet key, but not the one used
    served = await asyncio.to_thread(
        subprocess.run, [*BRIDGE_CMD, "serve", "--port", "1"], env=env, capture_output=True,
        text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert served.returncode == 1
    assert "cannot decrypt the stored secrets" in served.stderr
