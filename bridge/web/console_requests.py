"""Console: inbound requests (accepted, duplicate, rejected) with their bodies."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.domain.events import Product
from bridge.domain.requests import RequestStatus
from bridge.runtime import Runtime
from bridge.services.views import request_view
from bridge.web.console_kit import PAGE_SIZE, PREFIX, page, render
from bridge.web.inputs import choice_param

STATUSES = tuple(RequestStatus)
KINDS = tuple(Product)


async def _requests(request: Request, runtime: Runtime, csrf: str) -> Response:
    status = choice_param(request, "status", STATUSES)
    kind = choice_param(request, "kind", KINDS)
    source = request.query_params.get("source") or None
    cursor = request.query_params.get("cursor") or None
    found = await runtime.requests.find(status=status, kind=kind, source=source,
                                        before_id=cursor, limit=PAGE_SIZE)  # fmt: skip
    given = {k: v for k, v in (("status", status), ("kind", kind), ("source", source)) if v}
    following = None
    if len(found) == PAGE_SIZE:
        following = urlencode({**given, "cursor": found[-1].id})
    return render("console/requests.html", csrf=csrf, items=[request_view(r, body_limit=200)
                  for r in found], status=status or "", kind=kind or "", source=source or "",
                  statuses=STATUSES, kinds=KINDS, following=following, newest=urlencode(given),
                  first_page=cursor is None, signed_in=True)  # fmt: skip


async def _request(request: Request, runtime: Runtime, csrf: str) -> Response:
    found = await runtime.requests.get(request.path_params["request_id"])
    return render("console/request.html", csrf=csrf, inbound=request_view(found, body_limit=None),
                  signed_in=True)  # fmt: skip


routes = [
    Route(f"{PREFIX}/requests", page(_requests), methods=["GET"]),
    Route(f"{PREFIX}/requests/{{request_id}}", page(_request), methods=["GET"]),
]
