"""CRM record reads: `GET /crm/v8/{module}`, listing with paging and `If-Modified-Since`
or fetching `?ids=` (zoho.md §4.2, reconciliation.md C1-C8, C12)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from bridge.sandbox.crm_params import (
    BadParam,
    bound_query,
    converted_param,
    int_param,
    resolve_token,
    since_header,
    wanted,
)
from bridge.sandbox.model import CrmRecord, Org, PageServed, PageToken
from bridge.sandbox.replies import answer, crm_call, state_of

MAX_FIELDS = 50
MAX_PER_PAGE = 200
# Beyond 2,000 records `page` stops working and `page_token` is required (§4.2).
PAGE_LIMIT = 2000
# The v8 maximum of `ids` was not found; v1 took 100 (reconciliation.md C12, UNCERTAIN).
MAX_IDS = 100
SORTABLE = {"Modified_Time": "modified", "Created_Time": "created", "id": "id"}
LABEL = "GET /crm/v8/{module}"


def visible(org: Org, module: str, now: float, converted: str = "both") -> list[CrmRecord]:
    """The versions of `module`'s records the read APIs return at `now`."""
    views = (r.view(now) for r in org.crm_records.get(module, {}).values())
    return [v for v in views if v is not None and wanted(module, v, converted)]


async def list_records(request: Request) -> Response:
    module = request.path_params["module"]
    async with crm_call(request, LABEL) as org:
        if isinstance(org, Response):
            return org
        try:
            if "ids" in request.query_params:
                return _by_ids(request, org, module)
            return _list(request, org, module)
        except BadParam as bad:
            return answer(request, LABEL, 400, bad.body, org=org.name)


def _by_ids(request: Request, org: Org, module: str) -> Response:
    ids = [i for i in request.query_params["ids"].split(",") if i]
    if len(ids) > MAX_IDS:
        raise BadParam("LIMIT_EXCEEDED", "too many ids", limit=MAX_IDS, param_name="ids")
    fields = [f for f in request.query_params.get("fields", "").split(",") if f] or None
    converted = converted_param(request)
    now = state_of(request).clock.now()
    stored = org.crm_records.get(module, {})
    found = [
        view
        for record_id in dict.fromkeys(ids)
        if (record := stored.get(record_id)) is not None
        and (view := record.view(now)) is not None
        and wanted(module, view, converted)
    ]
    if not found:
        return answer(request, LABEL, 204, org=org.name)
    info = {"per_page": len(found), "count": len(found), "page": 1, "more_records": False}
    body = {"data": [v.render(fields) for v in found], "info": info}
    return answer(request, LABEL, 200, body, org=org.name)


def _list(request: Request, org: Org, module: str) -> Response:
    params = request.query_params
    fields = [f for f in params.get("fields", "").split(",") if f]
    if not fields:
        # "fields is mandatory when fetching all records" (§4.2)
        raise BadParam(
            "REQUIRED_PARAM_MISSING", "One of the expected parameter is missing", param="fields"
        )
    if len(fields) > MAX_FIELDS:
        raise BadParam("LIMIT_EXCEEDED", f"at most {MAX_FIELDS} fields", param="fields")
    per_page = int_param(request, "per_page", MAX_PER_PAGE)
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise BadParam("INVALID_DATA", "invalid data", param="per_page")
    sort_by = params.get("sort_by", "id")
    sort_order = params.get("sort_order", "asc")
    if sort_by not in SORTABLE or sort_order not in ("asc", "desc"):
        raise BadParam("INVALID_DATA", "invalid data", param="sort_by")
    converted = converted_param(request)
    since = since_header(request)
    state = state_of(request)
    now = state.clock.now()
    token = params.get("page_token")
    if token is not None and "page" in params:
        raise BadParam("INVALID_DATA", "page and page_token cannot be used together", param="page")
    query = bound_query(request)
    if token is not None:
        offset = resolve_token(state.page_tokens, token, org.name, module, query, now)
    else:
        page = int_param(request, "page", 1)
        offset = (page - 1) * per_page
        if page < 1 or offset >= PAGE_LIMIT:
            raise BadParam(
                "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                "use page_token to fetch records beyond 2000",
                limit=PAGE_LIMIT,
            )
    # "Records modified after" the header (§4.2); strict, as the docs word it (C3).
    records = [
        r for r in visible(org, module, now, converted) if since is None or r.modified > since
    ]
    if since is not None and not records:
        return answer(request, LABEL, 304, org=org.name)  # nothing newer: 304 (§4.2)
    key = SORTABLE[sort_by]
    # Ties on the sort field are broken by id, so the order is deterministic; pages are
    # offsets into the order at the time each is asked for, so an edit between pages
    # moves records across them as it would in Zoho (reconciliation.md a.1 Nango row).
    records.sort(key=lambda r: (getattr(r, key), int(r.id)), reverse=sort_order == "desc")
    chunk = records[offset : offset + per_page]
    if not chunk:
        return answer(request, LABEL, 204, org=org.name)
    more = offset + per_page < len(records)
    next_token = expiry = None
    if more:
        next_token = secrets.token_hex(16)
        expires_at = now + state.page_token_ttl
        state.page_tokens[next_token] = PageToken(
            org.name, module, offset + per_page, query, expires_at
        )
        expiry = datetime.fromtimestamp(int(expires_at), UTC).isoformat()
    info = {
        "per_page": per_page,
        "count": len(chunk),
        "page": offset // per_page + 1,
        "more_records": more,
        "sort_by": sort_by,
        "sort_order": sort_order,
        "next_page_token": next_token,
        "previous_page_token": None,
        "page_token_expiry": expiry,
    }
    body = {"data": [r.render(fields) for r in chunk], "info": info}
    served = PageServed(org.name, module, "list", offset // per_page + 1, [r.id for r in chunk])
    state.page_served(served)
    return answer(request, LABEL, 200, body, org=org.name)
