"""Books v3 lists and organizations, with the per-minute and daily caps (zoho.md §4.1, §6)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bridge.sandbox.model import Org
from bridge.sandbox.replies import answer, dc_of, state_of
from bridge.sandbox.state import BOOKS_ENTITIES

MINUTE, DAY = 60.0, 86_400.0
NOT_AUTHORIZED = {"code": 57, "message": "You are not authorized to perform this operation"}
# Books' rate-limit body codes are unverified (§6); the sandbox uses 44 (per minute) and
# 45 (per day), and, like Zoho, sends no Retry-After header.
PER_MINUTE = {"code": 44, "message": "You have made too many requests. Please try again later."}
PER_DAY = {"code": 45, "message": "You have crossed the maximum number of API calls per day."}


def _gate(request: Request, label: str, needs_org: bool) -> Org | Response:
    """The caller's org once auth, `organization_id` and rate limits pass, else the error."""
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
    if sum(1 for t in org.books_calls if now - t < MINUTE) >= org.books_per_minute:
        return answer(request, label, 429, PER_MINUTE, org=org.name)
    if len(org.books_calls) >= org.books_daily:
        return answer(request, label, 429, PER_DAY, org=org.name)
    org.books_calls.append(now)
    return org


def _parse_time(raw: str) -> datetime:
    # Books writes offsets without a colon (-0400) and takes naive UTC in filters (§4.1).
    when = datetime.fromisoformat(raw)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def list_entity(request: Request) -> Response:
    entity = request.path_params["entity"]
    label = f"GET /books/v3/{entity}"
    gate = _gate(request, label, needs_org=True)
    if isinstance(gate, Response):
        return gate
    org = gate
    if entity not in BOOKS_ENTITIES:
        return answer(
            request, label, 404, {"code": 5, "message": "Invalid URL Passed"}, org=org.name
        )
    params = request.query_params
    try:
        page = max(1, int(params.get("page", "1")))
        per_page = min(200, max(1, int(params.get("per_page", "200"))))
        since = (
            _parse_time(params["last_modified_time"]) if "last_modified_time" in params else None
        )
    except ValueError:
        return answer(
            request, label, 400, {"code": 2, "message": "Invalid value passed"}, org=org.name
        )
    rows: list[dict[str, Any]] = [
        r
        for r in org.books_records.get(entity, {}).values()
        # Read as "modified at or after": Books' exact meaning is unconfirmed (§4.1).
        if since is None or _parse_time(r["last_modified_time"]) >= since
    ]
    chunk = rows[(page - 1) * per_page : page * per_page]
    body = {
        "code": 0,
        "message": "success",
        entity: chunk,
        "page_context": {
            "page": page,
            "per_page": per_page,
            "has_more_page": page * per_page < len(rows),
            "sort_column": "created_time",
            "sort_order": "A",
        },
    }
    return answer(request, label, 200, body, org=org.name)


async def organizations(request: Request) -> Response:
    label = "GET /books/v3/organizations"
    gate = _gate(request, label, needs_org=False)
    if isinstance(gate, Response):
        return gate
    body = {
        "code": 0,
        "message": "success",
        "organizations": [
            {"organization_id": gate.organization_id, "name": gate.name, "is_default_org": True}
        ],
    }
    return answer(request, label, 200, body, org=gate.name)
