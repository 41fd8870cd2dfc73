"""`POST /crm/v8/coql` over the subset in `coql_parse` (zoho.md §4.2).

Reads see the same versions as the list API (late visibility included) and converted
leads too (UNCERTAIN: whether Zoho's COQL hides them is not documented). Credits are
charged by LIMIT: 1 up to 200, 2 up to 1,000, 3 up to 2,000 (zoho.md §4.2).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from bridge.sandbox.coql_parse import CoqlError, parse
from bridge.sandbox.crm_records import visible
from bridge.sandbox.model import PageServed
from bridge.sandbox.replies import answer, crm_call, crm_error, state_of

LABEL = "POST /crm/v8/coql"


def credits_for(limit: int) -> int:
    """Credits a COQL query costs by its LIMIT (the published table, zoho.md §4.2)."""
    return 1 if limit <= 200 else 2 if limit <= 1000 else 3


async def coql(request: Request) -> Response:
    async with crm_call(request, LABEL) as org:
        if isinstance(org, Response):
            return org
        try:
            body = await request.json()
        except ValueError:
            body = None
        try:
            if not isinstance(body, dict) or not isinstance(body.get("select_query"), str):
                raise CoqlError("INVALID_QUERY", "select_query is required")
            query = parse(body["select_query"])
        except CoqlError as error:
            bad = crm_error(error.code, str(error))
            return answer(request, LABEL, 400, bad, org=org.name)
        state = state_of(request)
        state.charge_crm(org, credits_for(query.limit) - 1)  # crm_call charged the first
        rows = visible(org, query.module, state.clock.now())
        if query.where is not None:
            rows = [r for r in rows if query.where(r)]
        # Sort by the ORDER BY fields, ties broken by id: deterministic at one second.
        order = [*query.order, *([("id", False)] if "id" not in dict(query.order) else [])]
        for name, descending in reversed(order):
            rows.sort(key=query.sort_key(name), reverse=descending)
        chunk = rows[query.offset : query.offset + query.limit]
        if not chunk:
            return answer(request, LABEL, 204, org=org.name)
        info = {"count": len(chunk), "more_records": query.offset + query.limit < len(rows)}
        page = query.offset // query.limit + 1
        state.page_served(PageServed(org.name, query.module, "coql", page, [r.id for r in chunk]))
        data = [r.render(query.fields) for r in chunk]
        return answer(request, LABEL, 200, {"data": data, "info": info}, org=org.name)
