"""CRM reads besides records: the deleted-records list (zoho.md §4.2, C6) and the org."""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request
from starlette.responses import Response

from bridge.sandbox.crm_params import BadParam, int_param, since_header
from bridge.sandbox.replies import answer, crm_call

MAX_PER_PAGE = 200


async def list_deleted(request: Request) -> Response:
    module = request.path_params["module"]
    label = "GET /crm/v8/{module}/deleted"
    async with crm_call(request, label) as org:
        if isinstance(org, Response):
            return org
        try:
            since = since_header(request)
            kind = request.query_params.get("type", "all")
            if kind not in ("all", "recycle", "permanent"):
                raise BadParam("INVALID_DATA", "invalid data", param="type")
            page = int_param(request, "page", 1)
            per_page = min(int_param(request, "per_page", MAX_PER_PAGE), MAX_PER_PAGE)
        except BadParam as bad:
            return answer(request, label, 400, bad.body, org=org.name)
        # A converted lead is not deleted and never shows here (reconciliation.md C8).
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
