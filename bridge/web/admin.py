"""The admin API under /admin: sources, channels, events, inbound requests."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.domain.events import Product
from bridge.domain.requests import RequestStatus
from bridge.runtime import Runtime
from bridge.services.views import channel_view, event_view, request_view, source_view
from bridge.web.admin_auth import admin
from bridge.web.input_models import StrictBody
from bridge.web.inputs import choice_param, event_filter, int_param, json_body, optional_int


class SourceIn(StrictBody):
    name: str
    tokens: list[str] | None = Field(None, description="Omit (and give no secrets) to get one.")
    secrets: list[str] = Field(default_factory=list)
    signature_mode: str = "enforce"


class SourceChange(StrictBody):
    tokens: list[str] | None = None
    secrets: list[str] | None = None
    signature_mode: str | None = None
    enabled: bool | None = None
    connection: str | None = Field(
        None, description="Link to the connection of the same Books org ('' unlinks)."
    )


class ChannelImport(StrictBody):
    channel_id: str | int
    token: str
    events: list[str] = Field(default_factory=list)
    source: str = "crm"


class ChannelTokenIn(StrictBody):
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
    body = await json_body(request, SourceIn)
    created = await _rt(request).sources.add(
        body.name, tokens=body.tokens, secrets=body.secrets, signature_mode=body.signature_mode
    )
    view = source_view(created.info, base_url(request))
    if created.generated_token:
        # Shown once: only its digest is stored.
        view["token"] = created.generated_token
        view["hook_url_with_token"] = f"{view['hook_url']}?token={created.generated_token}"
    return JSONResponse(view, status_code=201)


@admin
async def list_sources(request: Request) -> Response:
    items = await _rt(request).sources.all()
    return JSONResponse({"items": [source_view(s, base_url(request)) for s in items]})


@admin
async def get_source(request: Request) -> Response:
    found = await _rt(request).sources.get(request.path_params["name"])
    return JSONResponse(source_view(found, base_url(request)))


@admin
async def change_source(request: Request) -> Response:
    body = await json_body(request, SourceChange)
    info = await _rt(request).sources.change(
        request.path_params["name"], **body.model_dump(exclude_none=True)
    )
    return JSONResponse(source_view(info, base_url(request)))


@admin
async def import_channel(request: Request) -> Response:
    body = await json_body(request, ChannelImport)
    info = await _rt(request).channels.import_(
        str(body.channel_id), token=body.token, events=body.events, source=body.source
    )
    return JSONResponse(channel_view(info), status_code=201)


@admin
async def add_channel_token(request: Request) -> Response:
    body = await json_body(request, ChannelTokenIn)
    grace = body.retire_others_after_seconds
    info = await _rt(request).channels.add_token(
        request.path_params["channel_id"],
        body.token,
        retire_others_after=timedelta(seconds=grace) if grace is not None else None,
    )
    return JSONResponse(channel_view(info))


@admin
async def list_channels(request: Request) -> Response:
    return JSONResponse({"items": await _rt(request).channels.views()})


@admin
async def get_channel(request: Request) -> Response:
    return JSONResponse(await _rt(request).channels.view(request.path_params["channel_id"]))


@admin
async def list_events(request: Request) -> Response:
    limit = int_param(request, "limit", 100, 1, 1000)
    items = await _rt(request).events.find(
        event_filter(request), before_seq=optional_int(request, "cursor"), limit=limit
    )
    following = str(items[-1].seq) if len(items) == limit else None
    return JSONResponse({"items": [event_view(e) for e in items], "next": following})


@admin
async def get_event(request: Request) -> Response:
    found = await _rt(request).events.get(request.path_params["event_id"])
    return JSONResponse(event_view(found))


@admin
async def list_requests(request: Request) -> Response:
    limit = int_param(request, "limit", 100, 1, 1000)
    items = await _rt(request).requests.find(
        status=choice_param(request, "status", tuple(RequestStatus)),
        kind=choice_param(request, "kind", tuple(Product)),
        source=request.query_params.get("source") or None,
        before_id=request.query_params.get("cursor") or None,
        limit=limit,
    )
    following = items[-1].id if len(items) == limit else None
    return JSONResponse({"items": [request_view(r) for r in items], "next": following})


@admin
async def get_request(request: Request) -> Response:
    found = await _rt(request).requests.get(request.path_params["request_id"])
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
