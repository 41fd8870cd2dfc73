"""The admin API for managed CRM channels, and the status overview's channel section."""

from __future__ import annotations

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.services.managed_channels import ChannelRequest
from bridge.services.views import gap_view
from bridge.web.admin import _rt
from bridge.web.admin_auth import admin
from bridge.web.input_models import StrictBody
from bridge.web.inputs import json_body


class ChannelCreate(StrictBody):
    connection: str
    events: list[str] = Field(description="e.g. ['Leads.all', 'Deals.edit']")
    source: str | None = Field(None, description="Event source name (default: connection)")
    notify_on_related_action: bool | None = None
    return_affected_field_values: bool | None = None


@admin
async def create_channel(request: Request) -> Response:
    body = await json_body(request, ChannelCreate)
    managed = _rt(request).managed_channels
    created = await managed.create(ChannelRequest(**body.model_dump()))
    return JSONResponse(await managed.view(created.channel_id), status_code=201)


@admin
async def renew_channel(request: Request) -> Response:
    managed = _rt(request).managed_channels
    channel_id = request.path_params["channel_id"]
    await managed.renew_now(channel_id)
    return JSONResponse(await managed.view(channel_id))


@admin
async def rotate_channel(request: Request) -> Response:
    managed = _rt(request).managed_channels
    channel_id = request.path_params["channel_id"]
    await managed.renew_now(channel_id, rotate=True)
    return JSONResponse(await managed.view(channel_id))


@admin
async def disable_channel(request: Request) -> Response:
    managed = _rt(request).managed_channels
    channel_id = request.path_params["channel_id"]
    note = await managed.disable(channel_id)
    return JSONResponse({**await managed.view(channel_id), "note": note})


@admin
async def channel_gaps(request: Request) -> Response:
    gaps = await _rt(request).managed_channels.gaps(request.path_params["channel_id"])
    return JSONResponse({"items": [gap_view(g) for g in gaps]})


routes = [
    Route("/admin/channels", create_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id}/renew", renew_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id}/rotate", rotate_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id}/disable", disable_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id}/gaps", channel_gaps, methods=["GET"]),
]
