"""GET /admin/status: one overview, a section per concern (delivery, channels)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.runtime import Runtime
from bridge.services import channels as channel_service
from bridge.services import delivery_admin
from bridge.web.admin_auth import admin
from bridge.web.delivery_views import status_view


@admin
async def status(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    found = await delivery_admin.status(rt.engine, rt.settings.push_sinks, rt.clock())
    if rt.relay is not None:
        found.problems.extend(rt.relay.problems())
    view = status_view(found)
    channels = await channel_service.channel_problems(rt.keeper)
    view["channels"] = channels
    view["problems"].extend(
        f"channel {c['channel_id']} is {c['state']}, expires {c['expires_at']}"
        + (f": {c['last_error']}" if c.get("last_error") else "")
        for c in channels["at_risk"]
    )
    return JSONResponse(view)


routes = [Route("/admin/status", status, methods=["GET"])]
