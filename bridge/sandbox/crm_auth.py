"""Authorising a CRM request and holding one of the org's concurrency slots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.responses import Response

from bridge.sandbox.model import Org
from bridge.sandbox.replies import answer, crm_error, dc_of, state_of


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
    if org.crm_inflight >= org.crm_concurrency:
        # Exceeding the concurrency cap answers TOO_MANY_REQUESTS with 429 (zoho.md §6).
        body = crm_error("TOO_MANY_REQUESTS", "Concurrency limit exceeded")
        yield answer(request, label, 429, body, org=org.name)
        return
    org.crm_inflight += 1
    try:
        if org.crm_delay > 0:
            await asyncio.sleep(org.crm_delay)
        yield org
    finally:
        org.crm_inflight -= 1
