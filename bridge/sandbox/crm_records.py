"""CRM record reads: list with paging and `If-Modified-Since`, deleted records, org (§4.2)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bridge.sandbox.model import Org
from bridge.sandbox.replies import answer, crm_call, crm_error, state_of

MAX_FIELDS = 50
MAX_PER_PAGE = 200
# Beyond 2,000 records `page` stops working and `page_token` is required (§4.2).
PAGE_LIMIT = 2000
SORTABLE = {"Modified_Time": "modified", "Created_Time": "created", "id": "id"}


class BadParam(Exception):
    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.body = crm_error(code, message, **details)


def _since(request: Request) -> datetime | None:
    raw = request.headers.get("if-modified-since")
    if raw is None:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise BadParam(
            "INVALID_DATA", "invalid If-Modified-Since", header="If-Modified-Since"
        ) from None
    if when.tzinfo is None:
        raise BadParam(
            "INVALID_DATA", "If-Modified-Since needs an offset", header="If-Modified-Since"
        )
    return when


def _int(request: Request, name: str, default: int) -> int:
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        raise BadParam("INVALID_DATA", "invalid data", param=name) from None


async def list_records(request: Request) -> Response:
    module = request.path_params["module"]
    label = "GET /crm/v8/{module}"
    async with crm_call(request, label) as org:
        if isinstance(org, Response):
            return org
        try:
            return _list(request, org, module, label)
        except BadParam as bad:
            return answer(request, label, 400, bad.body, org=org.name)


def _list(request: Request, org: Org, module: str, label: str) -> Response:
    params = request.query_params
    fields = [f for f in params.get("fields", "").split(",") if f]
    if not fields:
        # "fields is mandatory when fetching all records" (§4.2)
        raise BadParam(
            "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param="fields"
        )
    if len(fields) > MAX_FIELDS:
        raise BadParam("LIMIT_EXCEEDED", f"at most {MAX_FIELDS} fields", param="fields")
    per_page = _int(request, "per_page", MAX_PER_PAGE)
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise BadParam("INVALID_DATA", "invalid data", param="per_page")
    sort_by = params.get("sort_by", "id")
    sort_order = params.get("sort_order", "asc")
    if sort_by not in SORTABLE or sort_order not in ("asc", "desc"):
        raise BadParam("INVALID_DATA", "invalid data", param="sort_by")
    since = _since(request)
    state = state_of(request)
    token = params.get("page_token")
    if token is not None and "page" in params:
        raise BadParam("INVALID_DATA", "page and page_token cannot be used together", param="page")
    if token is not None:
        found = state.page_tokens.get(token)
        if found is None or found[:2] != (org.name, module):
            raise BadParam("INVALID_DATA", "invalid page token", param="page_token")
        offset = found[2]
    else:
        page = _int(request, "page", 1)
        offset = (page - 1) * per_page
        if page < 1 or offset >= PAGE_LIMIT:
            raise BadParam(
                "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                "use page_token to fetch records beyond 2000",
                limit=PAGE_LIMIT,
            )
    records = [
        r for r in org.crm_records.get(module, {}).values() if since is None or r.modified > since
    ]
    if since is not None and not records:
        return answer(request, label, 304, org=org.name)  # nothing newer: 304 (§4.2)
    key = SORTABLE[sort_by]
    records.sort(key=lambda r: (getattr(r, key), int(r.id)), reverse=sort_order == "desc")
    chunk = records[offset : offset + per_page]
    if not chunk:
        return answer(request, label, 204, org=org.name)
    more = offset + per_page < len(records)
    next_token = None
    if more:
        next_token = secrets.token_hex(16)
        state.page_tokens[next_token] = (org.name, module, offset + per_page)
    info = {
        "per_page": per_page,
        "count": len(chunk),
        "page": offset // per_page + 1,
        "more_records": more,
        "sort_by": sort_by,
        "sort_order": sort_order,
        "next_page_token": next_token,
        "previous_page_token": None,
        "page_token_expiry": (state.clock.dt() + timedelta(days=1)).isoformat() if more else None,
    }
    body = {"data": [r.render(fields) for r in chunk], "info": info}
    return answer(request, label, 200, body, org=org.name)


async def list_deleted(request: Request) -> Response:
    module = request.path_params["module"]
    label = "GET /crm/v8/{module}/deleted"
    async with crm_call(request, label) as org:
        if isinstance(org, Response):
            return org
        try:
            since = _since(request)
            kind = request.query_params.get("type", "all")
            if kind not in ("all", "recycle", "permanent"):
                raise BadParam("INVALID_DATA", "invalid data", param="type")
            page = _int(request, "page", 1)
            per_page = min(_int(request, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
        except BadParam as bad:
            return answer(request, label, 400, bad.body, org=org.name)
        rows = [
            row
            for row in org.crm_deleted.get(module, [])
            if (kind == "all" or row["type"] == kind)
            and (since is None or datetime.fromisoformat(row["deleted_time"]) > since)
        ]
        if since is not None and not rows:
            return answer(request, label, 304, org=org.name)
        chunk = rows[(page - 1) * per_page : page * per_page]
        if not chunk:
            return answer(request, label, 204, org=org.name)
        info = {
            "per_page": per_page,
            "count": len(chunk),
            "page": page,
            "more_records": page * per_page < len(rows),
        }
        return answer(request, label, 200, {"data": chunk, "info": info}, org=org.name)


async def org_details(request: Request) -> Response:
    label = "GET /crm/v8/org"
    async with crm_call(request, label) as org:
        if isinstance(org, Response):
            return org
        body = {
            "org": [
                {
                    "id": org.organization_id,
                    "company_name": org.name,
                    "country_code": org.dc.split(".")[-1].upper(),
                    "time_zone": "UTC",
                    "primary_email": f"admin@{org.name}.example",
                }
            ]
        }
        return answer(request, label, 200, body, org=org.name)
