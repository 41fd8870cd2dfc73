"""`zoho-bridge channels create|list|disable` as real processes against the sandbox."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator

import pytest

from bridge.sandbox import RunningSandbox, run_sandbox
from bridge.secretbox import SecretBox
from bridge.services import connections
from bridge.store.database import create_engine
from tests.channel_rig import connection_body, sandbox_now
from tests.support import BRIDGE_CMD, ROOT, SECRET_KEY, bridge_env


@pytest.fixture
async def sandbox() -> AsyncIterator[RunningSandbox]:
    async with run_sandbox() as running:
        running.state.add_org("acme")
        yield running


def _cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = bridge_env(database_url, BRIDGE_PUBLIC_URL="https://hooks.example.com")
    return subprocess.run(
        [*BRIDGE_CMD, *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )


async def test_create_list_disable(database_url: str, sandbox: RunningSandbox) -> None:
    engine = create_engine(database_url)
    try:
        new = connections.NewConnection(**connection_body(sandbox))
        await connections.add_connection(
            engine, SecretBox(SECRET_KEY), new, sandbox_now(sandbox.state)
        )
    finally:
        await engine.dispose()
    created = await asyncio.to_thread(
        _cli, database_url, "channels", "create", "--connection", "acme",
        "--events", "Leads.all,Deals.edit", "--no-notify-on-related-action", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    view = json.loads(created.stdout)
    channel_id = view["channel_id"]
    at_zoho = sandbox.state.orgs["acme"].channels[channel_id]
    assert at_zoho.events == ["Leads.all", "Deals.edit"]
    assert at_zoho.notify_url == "https://hooks.example.com/hooks/crm"
    assert at_zoho.notify_on_related_action is False
    listed = await asyncio.to_thread(_cli, database_url, "channels", "list")
    assert listed.returncode == 0, listed.stderr
    assert channel_id in listed.stdout
    assert "live" in listed.stdout
    assert "6d 22h" in listed.stdout  # expiry countdown: 7 days less an hour, less a moment
    disabled = await asyncio.to_thread(_cli, database_url, "channels", "disable", channel_id)
    assert disabled.returncode == 0, disabled.stderr
    assert "deleted at Zoho" in disabled.stdout
    assert channel_id not in sandbox.state.orgs["acme"].channels
