"""Retry decisions over an injected MockTransport: only transient failures are retried."""

from __future__ import annotations

import random

import httpx
import pytest

from bridge.zoho.budget import Budget
from bridge.zoho.client import ZohoClient
from bridge.zoho.connection import Connection
from bridge.zoho.errors import ZohoApiError, ZohoTransientError
from bridge.zoho.memory import MemoryBudgetStore, MemoryTokenStore
from bridge.zoho.oauth import TokenManager
from bridge.zoho.retry import RetryPolicy, is_transient_status

CONNECTION = Connection("acme", "com", "id", "secret", "refresh")


def _client(answers: list[httpx.Response | Exception], slept: list[float]) -> ZohoClient:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/v2/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 3600})
        sent.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    tokens = TokenManager(http, MemoryTokenStore())
    return ZohoClient(http, tokens, Budget(MemoryBudgetStore()), sleep=sleep, rng=random.Random(1))


async def test_transport_errors_and_5xx_are_retried() -> None:
    slept: list[float] = []
    client = _client(
        [
            httpx.ConnectError("refused"),
            httpx.Response(503),
            httpx.Response(200, json={"org": [{"id": "1"}]}),
        ],
        slept,
    )
    result = await client.check(CONNECTION, crm=True)
    assert result.crm_org == {"id": "1"}
    assert len(slept) == 2


async def test_client_errors_are_not_retried() -> None:
    slept: list[float] = []
    body = {"code": "INVALID_MODULE", "details": {}, "message": "bad", "status": "error"}
    client = _client([httpx.Response(400, json=body)], slept)
    with pytest.raises(ZohoApiError) as error:
        await client.check(CONNECTION)
    assert error.value.code == "INVALID_MODULE"
    assert slept == []


async def test_gives_up_after_the_policy_attempts() -> None:
    slept: list[float] = []
    client = _client([httpx.Response(500)] * 8, slept)
    with pytest.raises(ZohoTransientError, match="8 times"):
        await client.check(CONNECTION)
    assert len(slept) == 7
    assert sum(slept) >= 60.0  # long enough for a per-minute window to clear


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(attempts=10, base_delay=1.0, max_delay=8.0)
    rng = random.Random(3)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delay = policy.delay(attempt, rng)
        assert ceiling / 2 <= delay <= ceiling


def test_only_429_and_5xx_are_transient() -> None:
    assert [s for s in (200, 304, 400, 401, 404, 429, 500, 503) if is_transient_status(s)] == [
        429,
        500,
        503,
    ]
