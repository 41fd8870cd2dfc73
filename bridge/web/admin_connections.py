"""The admin API for Zoho connections: /admin/connections. Never returns a secret."""

from __future__ import annotations

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.domain.states import ConnectionStatus
from bridge.services.connections import NewConnection
from bridge.services.views import connection_view
from bridge.web.admin import _rt
from bridge.web.admin_auth import admin
from bridge.web.input_models import StrictBody
from bridge.web.inputs import json_body


class ConnectionIn(StrictBody):
    name: str
    dc: str = Field("com", description="com, eu, in, com.au, jp, ca, com.cn, sa, uk")
    client_id: str
    client_secret: str
    refresh_token: str
    organization_id: str | None = Field(None, description="Zoho Books organization id")
    accounts_url: str | None = Field(None, description="Overrides the data centre's")
    api_domain: str | None = Field(None, description="Overrides the data centre's")
    limits: dict[str, int] | None = Field(
        None,
        description="books_per_minute, books_daily, crm_concurrency, crm_daily_credits",
    )


class ConnectionChange(StrictBody):
    refresh_token: str | None = Field(None, description="After a new consent: resumes it")
    client_secret: str | None = None
    status: str | None = Field(None, description="active, needs_reauth or disabled")


@admin
async def create_connection(request: Request) -> Response:
    body = await json_body(request, ConnectionIn)
    info = await _rt(request).connections.add(NewConnection(**body.model_dump()))
    return JSONResponse(connection_view(info), status_code=201)


@admin
async def list_connections(request: Request) -> Response:
    items = await _rt(request).connections.all()
    return JSONResponse({"items": [connection_view(c) for c in items]})


@admin
async def get_connection(request: Request) -> Response:
    info = await _rt(request).connections.get(request.path_params["name"])
    return JSONResponse(connection_view(info))


@admin
async def change_connection(request: Request) -> Response:
    body = await json_body(request, ConnectionChange)
    info = await _rt(request).connections.change(request.path_params["name"], **body.model_dump())
    return JSONResponse(connection_view(info))


@admin
async def delete_connection(request: Request) -> Response:
    await _rt(request).connections.remove(request.path_params["name"])
    return Response(status_code=204)


@admin
async def check_connection(request: Request) -> Response:
    report = await _rt(request).connections.check(request.path_params["name"])
    return JSONResponse(
        {
            "name": report.name,
            "dc": report.dc,
            "crm_org": report.crm_org,
            "books_organizations": report.books_organizations,
            "status": ConnectionStatus.ACTIVE,
        }
    )


routes = [
    Route("/admin/connections", create_connection, methods=["POST"]),
    Route("/admin/connections", list_connections, methods=["GET"]),
    Route("/admin/connections/{name}", get_connection, methods=["GET"]),
    Route("/admin/connections/{name}", change_connection, methods=["PATCH"]),
    Route("/admin/connections/{name}", delete_connection, methods=["DELETE"]),
    Route("/admin/connections/{name}/check", check_connection, methods=["POST"]),
]
