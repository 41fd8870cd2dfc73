from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import httpx
import pytest

from bridge.sandbox import RunningSandbox
from bridge.zoho.budget import Budget
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection, Limits
from bridge.zoho.memory import MemoryBudgetStore, MemoryTokenStore
from bridge.zoho.oauth import TokenManager
from bridge.zoho.retry import RetryPolicy
from bridge.zoho.shares import Shares


def connect(sandbox: RunningSandbox, org: str, **limits: int) -> Connection:
    """A connection to a sandbox org; the API domain comes from the token answer."""
    found = sandbox.state.orgs[org]
    return Connection(
        name=org,
        dc=found.dc,
        client_id=found.client_id,
        client_secret=found.client_secret,
        refresh_token=next(iter(found.refresh_tokens)),
        organization_id=found.organization_id,
        accounts_url=sandbox.accounts_url(found.dc),
        limits=Limits(**limits),
    )


@dataclass
class Rig:
    """A client wired to the sandbox, sharing the sandbox's clock; `sleep` advances it."""

    sandbox: RunningSandbox
    tokens: TokenManager
    budget: Budget
    client: ZohoClient
    slept: list[float] = field(default_factory=list)


def make_rig(
    sandbox: RunningSandbox,
    http: httpx.AsyncClient,
    retry: RetryPolicy | None = None,
    *,
    shares: Shares | None = None,
    store: MemoryBudgetStore | None = None,
) -> Rig:
    clock = sandbox.state.clock
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)
        await asyncio.sleep(0)

    tokens = TokenManager(http, MemoryTokenStore(), clock=clock.now)
    budget = Budget(store or MemoryBudgetStore(), clock=clock.now, sleep=sleep, shares=shares)
    client = ZohoClient(
        http, tokens, budget, retry=retry or RetryPolicy(), sleep=sleep, rng=random.Random(0)
    )
    return Rig(sandbox, tokens, budget, client, slept)


@pytest.fixture
def rig(sandbox: RunningSandbox, http: httpx.AsyncClient) -> Rig:
    return make_rig(sandbox, http)
