"""GET /admin/status: one overview, a section per concern (delivery, channels)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.runtime import Runtime
from bridge.web.admin_auth import admin


@admin
async def status(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    return JSONResponse(await rt.status.overview())


routes = [Route("/admin/status", status, methods=["GET"])]
