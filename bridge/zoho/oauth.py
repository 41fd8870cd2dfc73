"""Access tokens for connections: cached, refreshed ahead of expiry, never stampeded."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bridge.metrics import ZOHO_CALLS
from bridge.zoho.connection import Connection
from bridge.zoho.errors import TokenRequestsThrottled, ZohoTransientError
from bridge.zoho.ports import TokenStore
from bridge.zoho.tokens import (
    TOKEN_REQUEST_LIMIT,
    StoredToken,
    parse_token_response,
    recent_requests,
    throttle_wait,
)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A usable access token and the API domain Zoho said to send it to."""

    token: str
    api_domain: str


class TokenManager:
    """Hands out access tokens per connection, refreshing them with the refresh grant.

    Zoho lets one refresh token mint at most ten access tokens per ten minutes (zoho.md
    §5), so tokens are cached for their ~1 h life, refreshed `margin` seconds early, one
    refresh at a time per connection (an in-process lock plus the store's lock for other
    replicas), and the eleventh request in ten minutes is refused here, never sent.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        store: TokenStore,
        *,
        clock: Callable[[], float] = time.time,
        margin: float = 300.0,
        request_limit: int = TOKEN_REQUEST_LIMIT,
    ) -> None:
        self._http = http
        self._store = store
        self._clock = clock
        self._margin = margin
        self._limit = request_limit
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def get(self, connection: Connection) -> AccessToken:
        """A token valid for at least `margin` more seconds, refreshing if needed."""
        stored = await self._store.load(connection.name)
        if stored is not None and stored.usable(self._clock(), self._margin):
            return self._access(connection, stored)
        return await self._refresh(connection, stale=None)

    async def refresh(self, connection: Connection, stale: str | None = None) -> AccessToken:
        """Refresh after Zoho rejected `stale`; concurrent callers that saw the same
        rejected token share one refresh."""
        return await self._refresh(connection, stale=stale)

    async def _refresh(self, connection: Connection, stale: str | None) -> AccessToken:
        async with self._locks[connection.name], self._store.lock(connection.name):
            # Re-read under the lock: whoever held it may have refreshed already.
            stored = await self._store.load(connection.name) or StoredToken()
            now = self._clock()
            if stale is None:
                reuse = stored.usable(now, self._margin)
            else:
                # Someone else already replaced the token Zoho rejected: use theirs.
                reuse = stored.access_token != stale and stored.usable(now, 0.0)
            if reuse:
                return self._access(connection, stored)
            return self._access(connection, await self._request(connection, stored, now))

    async def _request(
        self, connection: Connection, stored: StoredToken, now: float
    ) -> StoredToken:
        wait = throttle_wait(stored.requested_at, now, self._limit)
        if wait > 0:
            raise TokenRequestsThrottled(
                f"{self._limit} token requests in ten minutes for {connection.name!r}; "
                f"next allowed in {wait:.0f}s",
                retry_after=wait,
            )
        # Count the request before sending it: a request that times out may still
        # have been counted by Zoho.
        requested_at = (*recent_requests(stored.requested_at, now), now)
        await self._store.save(connection.name, _replace_requests(stored, requested_at))
        try:
            response = await self._http.post(
                f"{connection.accounts_base}/oauth/v2/token",
                data={
                    "refresh_token": connection.refresh_token,
                    "client_id": connection.client_id,
                    "client_secret": connection.client_secret,
                    "grant_type": "refresh_token",
                },
            )
        except httpx.TransportError as exc:
            ZOHO_CALLS.labels("accounts", "token", "error").inc()
            raise ZohoTransientError(f"Zoho accounts unreachable: {exc!r}") from exc
        ZOHO_CALLS.labels("accounts", "token", str(response.status_code)).inc()
        try:
            body = response.json()
        except ValueError:
            body = None
        token = parse_token_response(response.status_code, body, self._clock(), requested_at)
        await self._store.save(connection.name, token)
        return token

    def _access(self, connection: Connection, stored: StoredToken) -> AccessToken:
        assert stored.access_token is not None
        # Zoho names the API domain in the token answer; the SDK follows it (zoho.md §5).
        return AccessToken(stored.access_token, stored.api_domain or connection.default_api_domain)

    async def revoke(self, connection: Connection) -> None:
        """Revoke the connection's refresh token at Zoho and forget the cached token."""
        try:
            await self._http.post(
                f"{connection.accounts_base}/oauth/v2/token/revoke",
                params={"token": connection.refresh_token},
            )
        except httpx.TransportError as exc:
            raise ZohoTransientError(f"Zoho accounts unreachable: {exc!r}") from exc
        async with self._locks[connection.name], self._store.lock(connection.name):
            stored = await self._store.load(connection.name) or StoredToken()
            # Keep the request times: the ten-minute count is per Zoho, not per token.
            await self._store.save(
                connection.name, _replace_requests(StoredToken(), stored.requested_at)
            )


def _replace_requests(stored: StoredToken, requested_at: tuple[float, ...]) -> StoredToken:
    return StoredToken(stored.access_token, stored.api_domain, stored.expires_at, requested_at)
