"""A small COQL subset for `POST /crm/v8/coql` (zoho.md §4.2).

Enough for reconciliation polls:
`select f1, f2 from Module [where Modified_Time >= '<iso>'] [order by Modified_Time
[asc|desc]] [limit N [offset M]]`. Anything else is answered `SYNTAX_ERROR`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bridge.sandbox.replies import answer, crm_call, crm_error

# At most 2,000 rows per call, 50 select fields, 100,000 rows via OFFSET (§4.2).
MAX_LIMIT = 2000
MAX_FIELDS = 50
MAX_OFFSET = 100_000
DEFAULT_LIMIT = 200
_QUERY = re.compile(
    r"^\s*select\s+(?P<fields>.+?)\s+from\s+(?P<module>\w+)"
    r"(?:\s+where\s+(?P<field>Modified_Time|Created_Time)\s*(?P<op>>=|>)\s*'(?P<since>[^']+)')?"
    r"(?:\s+order\s+by\s+(?P<order>Modified_Time|Created_Time|id)(?:\s+(?P<dir>asc|desc))?)?"
    r"(?:\s+limit\s+(?P<limit>\d+)(?:\s*,\s*(?P<limit2>\d+)|\s+offset\s+(?P<offset>\d+))?)?\s*$",
    re.IGNORECASE,
)
_ATTR = {"Modified_Time": "modified", "Created_Time": "created", "id": "id"}


class CoqlError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.body = crm_error(code, message)


def parse(query: str) -> dict[str, Any]:
    """The parts of a supported query, or `CoqlError`."""
    match = _QUERY.match(query)
    if match is None:
        raise CoqlError("SYNTAX_ERROR", "error occurred while parsing the query")
    fields = [f.strip() for f in match["fields"].split(",") if f.strip()]
    if len(fields) > MAX_FIELDS:
        raise CoqlError("LIMIT_EXCEEDED", f"at most {MAX_FIELDS} fields can be selected")
    # "limit offset, count" read as COQL's other spelling (UNCERTAIN: not in our notes).
    offset, limit = int(match["offset"] or 0), int(match["limit"] or DEFAULT_LIMIT)
    if match["limit2"]:
        offset, limit = limit, int(match["limit2"])
    if limit > MAX_LIMIT or offset + limit > MAX_OFFSET:
        raise CoqlError("LIMIT_EXCEEDED", "limit exceeded")
    since = datetime.fromisoformat(match["since"]) if match["since"] else None
    return {
        "fields": fields,
        "module": match["module"],
        "field": _ATTR[match["field"]] if match["field"] else None,
        "inclusive": match["op"] == ">=",
        "since": since,
        "order": _ATTR[match["order"] or "id"],
        "desc": (match["dir"] or "asc").lower() == "desc",
        "limit": limit,
        "offset": offset,
    }


async def coql(request: Request) -> Response:
    label = "POST /crm/v8/coql"
    async with crm_call(request, label) as org:
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
        except (CoqlError, ValueError) as error:
            bad = (
                error.body
                if isinstance(error, CoqlError)
                else crm_error("INVALID_QUERY", str(error))
            )
            return answer(request, label, 400, bad, org=org.name)
        rows = list(org.crm_records.get(query["module"], {}).values())
        if query["since"] is not None:
            since, attr = query["since"], query["field"]
            rows = [
                r
                for r in rows
                if getattr(r, attr) > since or (query["inclusive"] and getattr(r, attr) == since)
            ]
        rows.sort(key=lambda r: (getattr(r, query["order"]), int(r.id)), reverse=query["desc"])
        chunk = rows[query["offset"] : query["offset"] + query["limit"]]
        if not chunk:
            return answer(request, label, 204, org=org.name)
        info = {"count": len(chunk), "more_records": query["offset"] + query["limit"] < len(rows)}
        data = [r.render(query["fields"]) for r in chunk]
        return answer(request, label, 200, {"data": data, "info": info}, org=org.name)
