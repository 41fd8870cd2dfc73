"""`ZohoTransport`: every request to Zoho's APIs goes through here.

One injected `httpx.AsyncClient`; the token from `TokenManager`; budget reserved before
each send; transient failures retried under one `RetryPolicy`; a 401 refreshes the token
once. Every request sent is counted (`bridge_zoho_calls_total`, and the caller's
`CallMeter` if given); Books answers' rate-limit headers are handed to the budget. The
product-specific calls live in `crm.py`, `crm_records.py` and `books.py`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from bridge.errors import ConfigurationError
from bridge.metrics import ZOHO_CALLS
from bridge.zoho.budget import Budget
from bridge.zoho.connection import Connection
from bridge.zoho.errors import ZohoApiError, ZohoTransientError
from bridge.zoho.meter import CallMeter
from bridge.zoho.oauth import AccessToken, TokenManager
from bridge.zoho.ratelimit import BooksRateLimit
from bridge.zoho.retry import RetryPolicy, is_transient_status
from bridge.zoho.shares import Purpose

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
        purpose: Purpose = "check",
        meter: CallMeter | None = None,
    ) -> httpx.Response:
        """Send one request and return Zoho's final answer (any status after retries).

        `purpose` decides which budget shares the call spends (`shares.Purpose`); `meter`,
        when given, counts every request sent for this call, retries included.

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
        call = _Call(connection, product, method, path, query, json, headers, credits, purpose)
        while True:
            response, failure = await self._send_once(call, token, meter)
            if response is not None and response.status_code == 401 and not refreshed:
                # One refresh per call: a second 401 is a real refusal, not a stale token.
                refreshed = True
                token = await self._tokens.refresh(connection, stale=token.token)
                continue
            if response is not None and not is_transient_status(response.status_code):
                return response
            # Retrying writes is safe here: every write the bridge sends to Zoho is keyed
            # (a watch POST with the same channel_id re-subscribes the same channel).
            # Zoho sends no Retry-After on 429 (zoho.md §6): our own jittered backoff.
            attempt += 1
            if attempt >= self._retry.attempts:
                what = failure or f"HTTP {response.status_code if response else '?'}"
                raise ZohoTransientError(
                    f"{method} {path} for {connection.name!r} failed {attempt} times: {what}"
                )
            await self._sleep(self._retry.delay(attempt, self._rng))
            token = await self._tokens.get(connection)

    async def _send_once(
        self, call: _Call, token: AccessToken, meter: CallMeter | None
    ) -> tuple[httpx.Response | None, str | None]:
        all_headers = {"Authorization": f"Zoho-oauthtoken {token.token}", **(call.headers or {})}
        url = f"{token.api_domain}{call.path}"
        try:
            if call.product == "books":
                await self._budget.books(call.connection, call.purpose)
                _count(meter, call)
                response = await self._http.request(
                    call.method, url, params=call.params, json=call.json, headers=all_headers
                )
                self._budget.note_books_rate_limit(call.connection, response.headers)
            else:
                async with self._budget.crm(call.connection, call.credits, call.purpose):
                    _count(meter, call)
                    response = await self._http.request(
                        call.method, url, params=call.params, json=call.json, headers=all_headers
                    )
        except httpx.TransportError as exc:
            # Only the send raises this: the request left, Zoho may have counted it.
            ZOHO_CALLS.labels(call.product, call.purpose, "error").inc()
            return None, repr(exc)
        ZOHO_CALLS.labels(call.product, call.purpose, str(response.status_code)).inc()
        return response, None

    def rate_limit(self, connection: Connection) -> BooksRateLimit | None:
        """The latest Books rate-limit headers seen for `connection` (see `Budget`)."""
        return self._budget.books_rate_limit(connection)


@dataclass(frozen=True, slots=True)
class _Call:
    """One logical request, re-sent as is on retries."""

    connection: Connection
    product: Product
    method: str
    path: str
    params: Mapping[str, str]
    json: Any
    headers: Mapping[str, str] | None
    credits: int
    purpose: Purpose


def _count(meter: CallMeter | None, call: _Call) -> None:
    if meter is not None:
        meter.count(call.product, call.credits)


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
