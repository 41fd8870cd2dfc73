"""The admin API for Zoho connections: /admin/connections. Never returns a secret."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.services import connections as service
from bridge.store import connections as store
from bridge.web.admin import _rt
from bridge.web.admin_auth import admin
from bridge.web.inputs import json_body


class ConnectionIn(BaseModel):
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


class ConnectionChange(BaseModel):
    refresh_token: str | None = Field(None, description="After a new consent: resumes it")
    client_secret: str | None = None
    status: str | None = Field(None, description="active, needs_reauth or disabled")


@admin
async def create_connection(request: Request) -> Response:
    rt = _rt(request)
    body = await json_body(request, ConnectionIn)
    info = await service.add_connection(
        rt.engine, rt.box, service.NewConnection(**body.model_dump()), rt.clock()
    )
    return JSONResponse(service.connection_view(info), status_code=201)


@admin
async def list_connections(request: Request) -> Response:
    items = await store.list_connections(_rt(request).engine)
    return JSONResponse({"items": [service.connection_view(c) for c in items]})


@admin
async def get_connection(request: Request) -> Response:
    info = await service.load(_rt(request).engine, request.path_params["name"])
    return JSONResponse(service.connection_view(info))


@admin
async def change_connection(request: Request) -> Response:
    rt = _rt(request)
    body = await json_body(request, ConnectionChange)
    info = await service.reauthorise(
        rt.engine, rt.box, request.path_params["name"], rt.clock(), **body.model_dump()
    )
    return JSONResponse(service.connection_view(info))


@admin
async def delete_connection(request: Request) -> Response:
    await store.delete_connection(_rt(request).engine, request.path_params["name"])
    return Response(status_code=204)


@admin
async def check_connection(request: Request) -> Response:
    rt = _rt(request)
    report = await service.check(
        rt.engine, rt.box, rt.zoho, request.path_params["name"], rt.clock()
    )
    return JSONResponse(
        {
            "name": report.name,
            "dc": report.dc,
            "crm_org": report.crm_org,
            "books_organizations": report.books_organizations,
            "status": "active",
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
