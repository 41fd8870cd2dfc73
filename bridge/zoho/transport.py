"""`ZohoTransport`: every request to Zoho's APIs goes through here.

One injected `httpx.AsyncClient`; the token from `TokenManager`; budget reserved before
each send; transient failures retried under one `RetryPolicy`; a 401 refreshes the token
once. The product-specific calls live in `crm.py` and `books.py`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

import httpx

from bridge.errors import ConfigurationError
from bridge.zoho.budget import Budget
from bridge.zoho.connection import Connection
from bridge.zoho.errors import ZohoApiError, ZohoTransientError
from bridge.zoho.oauth import AccessToken, TokenManager
from bridge.zoho.retry import RetryPolicy, is_transient_status

DEFAULT_RETRY = RetryPolicy()
Product = Literal["crm", "books"]


class ZohoTransport:
    """Sends authorised, budgeted, retried requests to one connection's Zoho host."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        tokens: TokenManager,
        budget: Budget,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._http = http
        self._tokens = tokens
        self._budget = budget
        self._retry = retry
        self._sleep = sleep
        self._rng = rng or random.Random()  # jitter, not security

    async def request(
        self,
        connection: Connection,
        product: Product,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        credits: int = 1,
    ) -> httpx.Response:
        """Send one request and return Zoho's final answer (any status after retries).

        Raises `ZohoTransientError` when retries run out, `BudgetExhausted` when the
        budget refuses, `ZohoAuthError` when the refresh token is dead.
        """
        query = dict(params or {})
        if product == "books":
            # Every Books call names its organization (zoho.md §4.1).
            if not connection.organization_id:
                raise ConfigurationError(f"{connection.name!r} has no Books organization_id")
            query.setdefault("organization_id", connection.organization_id)
        attempt = 0
        refreshed = False
        token = await self._tokens.get(connection)
        while True:
            response, failure = await self._send_once(
                connection, product, token, method, path, query, json, headers, credits
            )
            if response is not None and response.status_code == 401 and not refreshed:
                # One refresh per call: a second 401 is a real refusal, not a stale token.
                refreshed = True
                token = await self._tokens.refresh(connection, stale=token.token)
                continue
            if response is not None and not is_transient_status(response.status_code):
                return response
            # Retrying writes is safe here: every write the bridge sends to Zoho is keyed
            # (a watch POST with the same channel_id re-subscribes the same channel).
            attempt += 1
            if attempt >= self._retry.attempts:
                what = failure or f"HTTP {response.status_code if response else '?'}"
                raise ZohoTransientError(
                    f"{method} {path} for {connection.name!r} failed {attempt} times: {what}"
                )
            await self._sleep(self._retry.delay(attempt, self._rng))
            token = await self._tokens.get(connection)

    async def _send_once(
        self,
        connection: Connection,
        product: Product,
        token: AccessToken,
        method: str,
        path: str,
        params: Mapping[str, str],
        json: Any,
        headers: Mapping[str, str] | None,
        credits: int,
    ) -> tuple[httpx.Response | None, str | None]:
        all_headers = {"Authorization": f"Zoho-oauthtoken {token.token}", **(headers or {})}
        url = f"{token.api_domain}{path}"
        try:
            if product == "books":
                await self._budget.books(connection)
                response = await self._http.request(
                    method, url, params=params, json=json, headers=all_headers
                )
            else:
                async with self._budget.crm(connection, credits):
                    response = await self._http.request(
                        method, url, params=params, json=json, headers=all_headers
                    )
        except httpx.TransportError as exc:
            return None, repr(exc)
        return response, None


def raise_for_status(response: httpx.Response) -> None:
    """Raise `ZohoApiError` with Zoho's `code` and `message` unless the answer is 2xx/304."""
    if 200 <= response.status_code < 300 or response.status_code == 304:
        return
    body = json_or_none(response)
    code = message = ""
    if isinstance(body, dict):
        code, message = str(body.get("code", "")), str(body.get("message", ""))
    raise ZohoApiError(
        f"Zoho answered HTTP {response.status_code} {code} {message}".strip(),
        status=response.status_code,
        code=code,
        body=body,
    )


def json_or_none(response: httpx.Response) -> Any:
    """The JSON body, or None when there is none or it is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None
