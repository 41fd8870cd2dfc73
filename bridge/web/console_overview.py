"""Console: the overview a paged operator opens first: problems, the database, events,
sinks, channels at risk, subscriptions and reconciliation (misses by cause per watch)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.runtime import Runtime
from bridge.web.console_kit import PREFIX, page, render

CAUSES = ("missed", "gap", "not_subscribed", "delivery_failed")


async def _overview(request: Request, runtime: Runtime, csrf: str) -> Response:
    status = await runtime.status.overview()
    watches = await runtime.watches.views()
    for watch in watches:  # misses over the last 7 days, by cause
        watch["week"] = {c: sum(day.get(c, 0) for day in watch["misses"]) for c in CAUSES}
    return render("console/overview.html", csrf=csrf, status=status, watches=watches,
                  causes=CAUSES, signed_in=True)  # fmt: skip


routes = [Route(f"{PREFIX}/", page(_overview), methods=["GET"])]
