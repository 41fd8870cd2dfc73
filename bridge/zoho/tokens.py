"""Access-token rules: parsing Zoho's token answer, expiry, and the 10-per-10-minutes cap.

Pure logic; `oauth.TokenManager` does the I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.zoho.errors import ZohoAuthError, ZohoTransientError

# "Using a refresh token, your app can create up to ten access tokens in a span of ten
# minutes" (zoho.md §5, CONFIRMED). Exceeding it blocks the refresh token for the rest of
# the ten minutes, so we count our own requests and never send the eleventh.
TOKEN_REQUEST_LIMIT = 10
TOKEN_REQUEST_WINDOW = 600.0


@dataclass(frozen=True, slots=True)
class StoredToken:
    """What the token store keeps per connection.

    `requested_at` holds the times (epoch seconds) of recent token requests, so the
    10-per-10-minutes count survives restarts and is shared by replicas.
    """

    access_token: str | None = None
    api_domain: str | None = None
    expires_at: float = 0.0
    requested_at: tuple[float, ...] = ()

    def usable(self, now: float, margin: float) -> bool:
        """Whether the access token is still good for at least `margin` seconds."""
        return self.access_token is not None and self.expires_at - margin > now


def recent_requests(requested_at: tuple[float, ...], now: float) -> tuple[float, ...]:
    """The token requests still inside the ten-minute window."""
    return tuple(t for t in requested_at if now - t < TOKEN_REQUEST_WINDOW)


def throttle_wait(
    requested_at: tuple[float, ...], now: float, limit: int = TOKEN_REQUEST_LIMIT
) -> float:
    """Seconds until another token request is allowed; 0 when one may be sent now."""
    recent = sorted(recent_requests(requested_at, now))
    if len(recent) < limit:
        return 0.0
    return recent[len(recent) - limit] + TOKEN_REQUEST_WINDOW - now


def expires_in_seconds(body: Mapping[str, Any]) -> float:
    """The token lifetime in seconds.

    Zoho's SDK handles a legacy `expires_in_sec` key; when it is present `expires_in` is in
    milliseconds (zoho.md §5), so the seconds value wins.
    """
    if "expires_in_sec" in body:
        return float(body["expires_in_sec"])
    return float(body.get("expires_in", 3600))


def parse_token_response(
    status: int, body: Any, now: float, requested_at: tuple[float, ...]
) -> StoredToken:
    """Turn Zoho's answer to a refresh grant into a token, or raise.

    The SDK treats "no `access_token`" as failure whatever the HTTP status, and Zoho sends
    `invalid_code` for revoked tokens, sometimes with HTTP 200 (zoho.md §5).
    """
    if 500 <= status <= 599:
        raise ZohoTransientError(f"Zoho accounts answered HTTP {status}")
    if not isinstance(body, Mapping):
        raise ZohoTransientError(f"Zoho accounts answered HTTP {status} without JSON")
    token = body.get("access_token")
    if isinstance(token, str) and token:
        api_domain = body.get("api_domain")
        return StoredToken(
            access_token=token,
            api_domain=api_domain.rstrip("/") if isinstance(api_domain, str) else None,
            expires_at=now + expires_in_seconds(body),
            requested_at=requested_at,
        )
    error = str(body.get("error", ""))
    description = str(body.get("error_description", ""))
    # Seen in the wild (UNCERTAIN): HTTP 400 "Access Denied" / "too many requests".
    if error == "Access Denied" or "too many requests" in description.lower():
        raise ZohoTransientError(f"Zoho throttled token requests: {description or error}")
    raise ZohoAuthError(
        f"Zoho refused the refresh token ({error or 'no access_token'}, HTTP {status})"
    )
