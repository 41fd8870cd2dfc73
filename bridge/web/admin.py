"""The admin API under /admin: sources, channels, events, inbound requests."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import NotFound
from bridge.runtime import Runtime
from bridge.services import admin as actions
from bridge.services import channels as managed_channels
from bridge.store import channels as channel_store
from bridge.store import event_queries
from bridge.store import sources as source_store
from bridge.web.admin_auth import admin
from bridge.web.inputs import choice_param, int_param, json_body, optional_int, time_param
from bridge.web.views import channel_view, event_view, request_view, source_view

REQUEST_STATUSES = ("accepted", "duplicate", "rejected")


class SourceIn(BaseModel):
    name: str
    tokens: list[str] | None = Field(None, description="Omit (and give no secrets) to get one.")
    secrets: list[str] = Field(default_factory=list)
    signature_mode: str = "enforce"


class SourceChange(BaseModel):
    tokens: list[str] | None = None
    secrets: list[str] | None = None
    signature_mode: str | None = None
    enabled: bool | None = None


class ChannelImport(BaseModel):
    channel_id: str | int
    token: str
    events: list[str] = Field(default_factory=list)
    source: str = "crm"


class ChannelTokenIn(BaseModel):
    token: str
    retire_others_after_seconds: int | None = Field(None, ge=0, le=30 * 86400)


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def base_url(request: Request) -> str:
    configured = _rt(request).settings.public_url
    return configured or str(request.base_url).rstrip("/")


@admin
async def create_source(request: Request) -> Response:
    rt = _rt(request)
    body = await json_body(request, SourceIn)
    created = await actions.add_source(
        rt.engine,
        rt.box,
        name=body.name,
        tokens=body.tokens,
        secrets=body.secrets,
        signature_mode=body.signature_mode,
        now=rt.clock(),
    )
    rt.lookup.forget_source(body.name)
    view = source_view(created.info, base_url(request))
    if created.generated_token:
        # Shown once: only its digest is stored.
        view["token"] = created.generated_token
        view["hook_url_with_token"] = f"{view['hook_url']}?token={created.generated_token}"
    return JSONResponse(view, status_code=201)


@admin
async def list_sources(request: Request) -> Response:
    items = await source_store.list_sources(_rt(request).engine)
    return JSONResponse({"items": [source_view(s, base_url(request)) for s in items]})


@admin
async def get_source(request: Request) -> Response:
    name = request.path_params["name"]
    found = await source_store.get_source(_rt(request).engine, name)
    if found is None:
        raise NotFound(f"no source named {name!r}")
    return JSONResponse(source_view(found, base_url(request)))


@admin
async def change_source(request: Request) -> Response:
    rt = _rt(request)
    name = request.path_params["name"]
    body = await json_body(request, SourceChange)
    info = await actions.change_source(
        rt.engine, rt.box, name, now=rt.clock(), **body.model_dump(exclude_none=True)
    )
    rt.lookup.forget_source(name)
    return JSONResponse(source_view(info, base_url(request)))


@admin
async def import_channel(request: Request) -> Response:
    rt = _rt(request)
    body = await json_body(request, ChannelImport)
    info = await actions.import_channel(
        rt.engine,
        channel_id=str(body.channel_id),
        token=body.token,
        events=body.events,
        source=body.source,
        now=rt.clock(),
    )
    rt.lookup.forget_channel(info.channel_id)
    return JSONResponse(channel_view(info), status_code=201)


@admin
async def add_channel_token(request: Request) -> Response:
    rt = _rt(request)
    body = await json_body(request, ChannelTokenIn)
    grace = body.retire_others_after_seconds
    info = await actions.add_channel_token(
        rt.engine,
        channel_id=request.path_params["channel_id"],
        token=body.token,
        retire_others_after=timedelta(seconds=grace) if grace is not None else None,
        now=rt.clock(),
    )
    rt.lookup.forget_channel(info.channel_id)
    return JSONResponse(channel_view(info))


@admin
async def list_channels(request: Request) -> Response:
    rt = _rt(request)
    items = await channel_store.list_channels(rt.engine)
    # Managed channels also show their renewal state.
    renewal = {v["channel_id"]: v for v in await managed_channels.list_views(rt.keeper)}
    return JSONResponse(
        {"items": [{**channel_view(c), "renewal": renewal.get(c.channel_id)} for c in items]}
    )


@admin
async def get_channel(request: Request) -> Response:
    channel_id = request.path_params["channel_id"]
    rt = _rt(request)
    found = await channel_store.get_channel(rt.engine, channel_id)
    if found is None:
        raise NotFound(f"no channel {channel_id}")
    views = await managed_channels.list_views(rt.keeper)
    renewal = next((v for v in views if v["channel_id"] == channel_id), None)
    return JSONResponse({**channel_view(found), "renewal": renewal})


def event_filter(request: Request) -> event_queries.EventFilter:
    q = request.query_params
    return event_queries.EventFilter(
        source=q.get("source") or None,
        module=q.get("module") or None,
        record_id=q.get("record_id") or None,
        operation=choice_param(request, "operation", ("created", "updated", "deleted", "changed")),
        origin=choice_param(request, "origin", ("webhook", "reconciliation", "replay")),
        product=choice_param(request, "product", ("crm", "books")),
        since=time_param(request, "since"),
        until=time_param(request, "until"),
        request_id=q.get("request_id") or None,
    )


@admin
async def list_events(request: Request) -> Response:
    limit = int_param(request, "limit", 100, 1, 1000)
    items = await event_queries.list_events(
        _rt(request).engine,
        event_filter(request),
        before_seq=optional_int(request, "cursor"),
        limit=limit,
    )
    following = str(items[-1].seq) if len(items) == limit else None
    return JSONResponse({"items": [event_view(e) for e in items], "next": following})


@admin
async def get_event(request: Request) -> Response:
    event_id = request.path_params["event_id"]
    found = await event_queries.get_event(_rt(request).engine, event_id)
    if found is None:
        raise NotFound(f"no event {event_id}")
    return JSONResponse(event_view(found))


@admin
async def list_requests(request: Request) -> Response:
    limit = int_param(request, "limit", 100, 1, 1000)
    items = await event_queries.list_requests(
        _rt(request).engine,
        status=choice_param(request, "status", REQUEST_STATUSES),
        kind=choice_param(request, "kind", ("books", "crm")),
        source=request.query_params.get("source") or None,
        before_id=request.query_params.get("cursor") or None,
        limit=limit,
    )
    following = items[-1].id if len(items) == limit else None
    return JSONResponse({"items": [request_view(r) for r in items], "next": following})


@admin
async def get_request(request: Request) -> Response:
    request_id = request.path_params["request_id"]
    found = await event_queries.get_request(_rt(request).engine, request_id)
    if found is None:
        raise NotFound(f"no request {request_id}")
    return JSONResponse(request_view(found, body_limit=None))


routes = [
    Route("/admin/sources", create_source, methods=["POST"]),
    Route("/admin/sources", list_sources, methods=["GET"]),
    Route("/admin/sources/{name}", get_source, methods=["GET"]),
    Route("/admin/sources/{name}", change_source, methods=["PATCH"]),
    Route("/admin/channels/import", import_channel, methods=["POST"]),
    Route("/admin/channels", list_channels, methods=["GET"]),
    Route("/admin/channels/{channel_id}", get_channel, methods=["GET"]),
    Route("/admin/channels/{channel_id}/tokens", add_channel_token, methods=["POST"]),
    Route("/admin/events", list_events, methods=["GET"]),
    Route("/admin/events/{event_id}", get_event, methods=["GET"]),
    Route("/admin/requests", list_requests, methods=["GET"]),
    Route("/admin/requests/{request_id}", get_request, methods=["GET"]),
]
