"""Admitting a Books call: token, `organization_id`, per-minute and daily caps, and the
`X-Rate-Limit-*` headers Books answers carry (zoho.md §4.1, §6; reconciliation.md B12)."""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import Response

from bridge.sandbox.model import Org
from bridge.sandbox.replies import answer, dc_of, state_of

MINUTE, DAY = 60.0, 86_400.0
NOT_AUTHORIZED = {"code": 57, "message": "You are not authorized to perform this operation"}
# Books' rate-limit body codes are unverified (§6); the sandbox uses 44 (per minute) and
# 45 (per day), and, like Zoho, sends no Retry-After header.
PER_MINUTE = {"code": 44, "message": "You have made too many requests. Please try again later."}
PER_DAY = {"code": 45, "message": "You have crossed the maximum number of API calls per day."}


def quota_headers(org: Org, now: float) -> dict[str, str]:
    """`X-Rate-Limit-Limit/Remaining/Reset` for the daily quota (B12, UNCERTAIN).

    The sandbox counts a rolling day, so Reset is the seconds until the oldest counted
    call leaves it (Zoho's reset is "daily"; its exact clock is unknown).
    """
    calls = [t for t in org.books_calls if now - t < DAY]
    reset = math.ceil(calls[0] + DAY - now) if calls else int(DAY)
    return {
        "X-Rate-Limit-Limit": str(org.books_daily),
        "X-Rate-Limit-Remaining": str(max(0, org.books_daily - len(calls))),
        "X-Rate-Limit-Reset": str(reset),
    }


def books_call(
    request: Request, label: str, *, needs_org: bool = True
) -> tuple[Org, dict[str, str]] | Response:
    """The caller's org and the quota headers to answer with, or the error to return."""
    state = state_of(request)
    grant = state.grant_for(dc_of(request), request.headers.get("authorization"))
    if grant is None:
        return answer(request, label, 401, NOT_AUTHORIZED)
    org = state.orgs[grant.org]
    if needs_org:
        given = request.query_params.get("organization_id")
        if not given:
            # Sandbox's choice of code: Books' answer to a missing org id is not in our notes.
            body = {"code": 6041, "message": "organization_id is required"}
            return answer(request, label, 400, body, org=org.name)
        if given != org.organization_id:
            return answer(request, label, 401, NOT_AUTHORIZED, org=org.name)
    now = state.clock.now()
    org.books_calls = [t for t in org.books_calls if now - t < DAY]
    refused = None
    if state.books_throttle > 0:
        state.books_throttle -= 1
        refused = PER_MINUTE
    elif sum(1 for t in org.books_calls if now - t < MINUTE) >= org.books_per_minute:
        refused = PER_MINUTE
    elif len(org.books_calls) >= org.books_daily:
        refused = PER_DAY
    if refused is not None:
        headers = quota_headers(org, now)
        return answer(request, label, 429, refused, org=org.name, headers=headers)
    org.books_calls.append(now)
    return org, quota_headers(org, now)
