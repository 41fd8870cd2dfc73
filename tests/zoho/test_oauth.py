"""TokenManager against the sandbox's accounts server (zoho.md §5)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import httpx
import pytest

from bridge.sandbox import RunningSandbox
from bridge.zoho.errors import TokenRequestsThrottled, ZohoAuthError, ZohoTransientError
from bridge.zoho.memory import MemoryTokenStore
from bridge.zoho.oauth import TokenManager

from .conftest import Rig, connect

TOKEN = "POST /oauth/v2/token"


async def test_token_is_cached_and_uses_the_api_domain_zoho_names(rig: Rig) -> None:
    rig.sandbox.state.add_org("acme", "eu")
    connection = connect(rig.sandbox, "acme")
    assert connection.default_api_domain == "https://www.zohoapis.eu"
    first = await rig.tokens.get(connection)
    second = await rig.tokens.get(connection)
    assert first == second
    assert first.api_domain == rig.sandbox.api_domain("eu")
    assert rig.sandbox.state.count(TOKEN) == 1


async def test_refreshes_only_near_expiry(rig: Rig) -> None:
    rig.sandbox.state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    first = await rig.tokens.get(connection)
    rig.sandbox.state.clock.advance(3000)  # 10 minutes left: more than the 5-minute margin
    assert await rig.tokens.get(connection) == first
    rig.sandbox.state.clock.advance(400)  # inside the margin
    assert (await rig.tokens.get(connection)).token != first.token
    assert rig.sandbox.state.count(TOKEN) == 2


async def test_eleventh_token_request_in_ten_minutes_is_never_sent(rig: Rig) -> None:
    state = rig.sandbox.state
    state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    token = await rig.tokens.get(connection)
    for _ in range(9):
        token = await rig.tokens.refresh(connection, stale=token.token)
    with pytest.raises(TokenRequestsThrottled) as refused:
        await rig.tokens.refresh(connection, stale=token.token)
    assert state.count(TOKEN) == 10
    assert state.count(TOKEN, status=400) == 0
    assert 0 < refused.value.retry_after <= 600
    state.clock.advance(refused.value.retry_after + 1)
    await rig.tokens.refresh(connection, stale=token.token)
    assert state.count(TOKEN, status=200) == 11


async def test_zoho_throttle_answer_is_transient_not_permanent(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    sandbox.state.add_org("acme")
    connection = connect(sandbox, "acme")
    # A manager that does not count (as if another app shared the refresh token).
    careless = TokenManager(
        http, MemoryTokenStore(), clock=sandbox.state.clock.now, request_limit=99
    )
    token = await careless.get(connection)
    for _ in range(9):
        token = await careless.refresh(connection, stale=token.token)
    with pytest.raises(ZohoTransientError) as error:
        await careless.refresh(connection, stale=token.token)
    assert not isinstance(error.value, (TokenRequestsThrottled, ZohoAuthError))
    assert sandbox.state.count(TOKEN, status=400) == 1


async def test_revoked_refresh_token_is_a_permanent_error(rig: Rig) -> None:
    rig.sandbox.state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    await rig.tokens.get(connection)
    await rig.tokens.revoke(connection)
    with pytest.raises(ZohoAuthError, match="invalid_code"):
        await rig.tokens.get(connection)
    assert rig.sandbox.state.count(TOKEN, status=200) == 2  # Zoho says no with HTTP 200


async def test_wrong_data_centre_is_a_permanent_error(rig: Rig) -> None:
    rig.sandbox.state.add_org("acme", "eu")
    connection = connect(rig.sandbox, "acme")
    with pytest.raises(ZohoAuthError):
        await rig.tokens.get(replace(connection, accounts_url=rig.sandbox.accounts_url("com")))


async def test_concurrent_callers_share_one_refresh(rig: Rig) -> None:
    rig.sandbox.state.add_org("acme")
    connection = connect(rig.sandbox, "acme")
    tokens = await asyncio.gather(*(rig.tokens.get(connection) for _ in range(20)))
    assert len({t.token for t in tokens}) == 1
    assert rig.sandbox.state.count(TOKEN) == 1
    stale = tokens[0].token
    refreshed = await asyncio.gather(
        *(rig.tokens.refresh(connection, stale=stale) for _ in range(20))
    )
    assert len({t.token for t in refreshed}) == 1
    assert refreshed[0].token != stale
    assert rig.sandbox.state.count(TOKEN) == 2


async def test_unreachable_accounts_server_is_transient(rig: Rig) -> None:
    rig.sandbox.state.add_org("acme")
    connection = replace(connect(rig.sandbox, "acme"), accounts_url="http://127.0.0.1:9")
    with pytest.raises(ZohoTransientError):
        await rig.tokens.get(connection)


async def test_replicas_sharing_a_store_share_the_ten_minute_count(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    sandbox.state.add_org("acme")
    connection = connect(sandbox, "acme")
    store = MemoryTokenStore()
    replicas = [TokenManager(http, store, clock=sandbox.state.clock.now) for _ in range(2)]
    token = await replicas[0].get(connection)
    for i in range(9):
        token = await replicas[i % 2].refresh(connection, stale=token.token)
    for replica in replicas:
        with pytest.raises(TokenRequestsThrottled):
            await replica.refresh(connection, stale=token.token)
    assert sandbox.state.count(TOKEN) == 10
    assert sandbox.state.count(TOKEN, status=400) == 0
