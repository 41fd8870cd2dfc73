"""Errors raised when talking to Zoho, all under `BridgeError`.

The split that matters to callers: `ZohoAuthError` is permanent (the connection needs a
new consent), `ZohoTransientError` may succeed later, `BudgetExhausted` means we refused
to spend more of the org's quota, and `ZohoApiError` is Zoho saying no to this request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge.errors import BridgeError


class ZohoError(BridgeError):
    """Zoho could not be reached or refused the request."""


class ZohoAuthError(ZohoError):
    """Zoho refused the refresh token; the connection needs to be authorised again."""


class ZohoTransientError(ZohoError):
    """Zoho is temporarily unavailable or throttling us; try again later."""


class TokenRequestsThrottled(ZohoTransientError):
    """Ten access tokens were already requested with this refresh token in ten minutes."""

    def __init__(self, message: str | None = None, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BudgetExhausted(ZohoError):
    """The connection's share of the Zoho API budget is used up for now."""

    def __init__(self, message: str | None = None, *, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ZohoApiError(ZohoError):
    """Zoho answered the request with an error."""

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int = 0,
        code: str = "",
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.body = body


@dataclass(frozen=True, slots=True)
class ItemError:
    """One failed item of a bulk CRM answer such as `{"watch": [...]}`."""

    index: int
    code: str
    message: str
    details: dict[str, Any]


class ZohoPartialFailure(ZohoApiError):
    """Some items of a CRM bulk request failed; `errors` lists each one."""

    def __init__(
        self,
        errors: Sequence[ItemError],
        *,
        status: int,
        body: Any,
        succeeded: Sequence[dict[str, Any]] = (),
    ) -> None:
        summary = "; ".join(f"item {e.index}: {e.code} {e.message}" for e in errors)
        super().__init__(
            f"{len(errors)} item(s) failed: {summary}",
            status=status,
            code=errors[0].code if errors else "",
            body=body,
        )
        self.errors = tuple(errors)
        self.succeeded = tuple(succeeded)
