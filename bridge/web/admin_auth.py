"""Bearer-token protection for /admin (constant-time; off unless BRIDGE_ADMIN_TOKEN is set)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from bridge.runtime import Runtime

Endpoint = Callable[[Request], Awaitable[Response]]


def authorize(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    configured = runtime.settings.admin_token
    if configured is None:
        raise HTTPException(403, "the admin API is disabled; set BRIDGE_ADMIN_TOKEN to enable it")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = configured.get_secret_value().encode("utf-8")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.strip().encode("utf-8"), expected
    ):
        raise HTTPException(
            401,
            "send the admin token as 'Authorization: Bearer <BRIDGE_ADMIN_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return runtime


def admin(endpoint: Endpoint) -> Endpoint:
    """Wrap an endpoint so it runs only for a caller holding the admin token."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        authorize(request)
        return await endpoint(request)

    return wrapper
