"""Console: deliveries per sink (pending, dead, delivered), the dead-letter list, retry one,
several or all of a sink, and switching a disabled sink back on."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge.domain.delivery import DeliveryStatus
from bridge.errors import InvalidInput
from bridge.runtime import Runtime
from bridge.web.console_kit import PAGE_SIZE, PREFIX, page, render
from bridge.web.inputs import choice_param, optional_int

STATUSES = tuple(DeliveryStatus)


def _ids(values: list[str]) -> list[int]:
    try:
        ids = sorted({int(v) for v in values if v})
    except ValueError:
        raise InvalidInput("ids must be outbox row numbers") from None
    if any(not 0 < i < 2**63 for i in ids) or len(ids) > 1000:
        raise InvalidInput("ids must be at most 1,000 outbox row numbers")
    return ids


async def _deliveries(request: Request, runtime: Runtime, csrf: str) -> Response:
    status = choice_param(request, "status", STATUSES)
    sink = request.query_params.get("sink") or None
    cursor = optional_int(request, "cursor")
    overview = await runtime.deliveries.status()
    down = await runtime.health.sinks_down()
    rows = await runtime.deliveries.find(status=status, sink=sink, before_id=cursor,
                                         limit=PAGE_SIZE)  # fmt: skip
    given = {k: v for k, v in (("status", status), ("sink", sink)) if v}
    following = None
    if len(rows) == PAGE_SIZE:
        following = urlencode({**given, "cursor": str(rows[-1].id)})
    return render("console/deliveries.html", csrf=csrf, sinks=overview.sinks, down=down,
                  rows=rows, status=status or "", sink=sink or "", statuses=STATUSES,
                  following=following, newest=urlencode(given), first_page=cursor is None,
                  done=request.query_params.get("done"), now=runtime.clock(),
                  signed_in=True)  # fmt: skip


async def _confirm_retry(request: Request, runtime: Runtime, csrf: str) -> Response:
    ids = _ids(request.query_params.getlist("id"))
    sink = request.query_params.get("sink") or None
    if not ids and sink is None:
        raise InvalidInput("say which dead deliveries to retry: tick some, or pick a sink")
    overview = {s.name: s for s in (await runtime.deliveries.status()).sinks}
    if sink is not None and sink not in overview:
        raise InvalidInput(f"no sink {sink!r} has deliveries")
    return render("console/confirm_retry.html", csrf=csrf, ids=ids, sink=sink or "",
                  about=overview.get(sink) if sink else None, signed_in=True)  # fmt: skip


async def _retry(request: Request, runtime: Runtime, csrf: str) -> Response:
    form = await request.form()
    ids = _ids([str(v) for v in form.getlist("id")])
    sink = str(form.get("sink", "")) or None
    if not ids and sink is None:
        raise InvalidInput("say which dead deliveries to retry: tick some, or pick a sink")
    count = await runtime.deliveries.retry(sink=sink if not ids else None, ids=ids)
    what = f"{count} dead deliveries queued again"
    if sink is not None and not ids:
        what += f"; sink {sink} is on"
    query = urlencode({"done": what, **({"sink": sink} if sink else {})})
    return RedirectResponse(f"{PREFIX}/deliveries?{query}", 303)


routes = [
    Route(f"{PREFIX}/deliveries", page(_deliveries), methods=["GET"]),
    Route(f"{PREFIX}/deliveries/retry", page(_confirm_retry), methods=["GET"]),
    Route(f"{PREFIX}/deliveries/retry", page(_retry), methods=["POST"]),
]
