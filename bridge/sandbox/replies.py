"""Answering sandbox requests: counting each answer, Zoho's error shapes, CRM auth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.model import Org
from bridge.sandbox.state import SandboxState


def state_of(request: Request) -> SandboxState:
    """The `SandboxState` the app was created with."""
    state: SandboxState = request.app.state.sandbox
    return state


def dc_of(request: Request) -> str:
    """The data centre the request was addressed to (`/dc/{dc}/...`)."""
    return str(request.path_params.get("dc", "com"))


def answer(
    request: Request,
    label: str,
    status: int,
    body: Any = None,
    *,
    org: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Count the request under `label` (e.g. "GET /crm/v8/{module}") and answer it."""
    state_of(request).record(dc_of(request), org, label, status)
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def crm_error(code: str, message: str, **details: Any) -> dict[str, Any]:
    """CRM's error shape (zoho.md §6)."""
    return {"code": code, "details": details, "message": message, "status": "error"}


@asynccontextmanager
async def crm_call(request: Request, label: str) -> AsyncIterator[Org | Response]:
    """Yield the caller's org, or the error response to return instead."""
    state = state_of(request)
    grant = state.grant_for(dc_of(request), request.headers.get("authorization"))
    if grant is None:
        yield answer(request, label, 401, crm_error("INVALID_TOKEN", "invalid oauth token"))
        return
    org = state.orgs[grant.org]
    if not org.crm_scope:
        body = crm_error("OAUTH_SCOPE_MISMATCH", "invalid oauth scope to access this URL")
        yield answer(request, label, 401, body, org=org.name)
        return
    if state.crm_throttle > 0 or org.crm_inflight >= org.crm_concurrency:
        # Exceeding the concurrency cap answers TOO_MANY_REQUESTS with 429 and no
        # Retry-After header (zoho.md §6); `throttle(n)` forces the next n.
        state.crm_throttle = max(0, state.crm_throttle - 1)
        body = crm_error("TOO_MANY_REQUESTS", "Concurrency limit exceeded")
        yield answer(request, label, 429, body, org=org.name)
        return
    state.charge_crm(org, 1)  # most calls cost one credit (reconciliation.md C11)
    org.crm_inflight += 1
    try:
        if org.crm_delay > 0:
            await asyncio.sleep(org.crm_delay)
        yield org
    finally:
        org.crm_inflight -= 1
