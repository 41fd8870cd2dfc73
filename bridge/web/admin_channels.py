"""The admin API for managed CRM channels, and the status overview's channel section."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.runtime import Runtime
from bridge.services import channels as service
from bridge.store.managed_channels import list_gaps
from bridge.web.admin import _rt
from bridge.web.admin_auth import admin
from bridge.web.inputs import json_body


class ChannelCreate(BaseModel):
    connection: str
    events: list[str] = Field(description="e.g. ['Leads.all', 'Deals.edit']")
    source: str | None = Field(None, description="Event source name (default: connection)")
    notify_on_related_action: bool | None = None
    return_affected_field_values: bool | None = None


async def _view(rt: Runtime, channel_id: str) -> dict[str, Any]:
    for view in await service.list_views(rt.keeper):
        if view["channel_id"] == channel_id:
            return view
    return {}


@admin
async def create_channel(request: Request) -> Response:
    rt = _rt(request)
    body = await json_body(request, ChannelCreate)
    created = await service.create_channel(
        rt.keeper, rt.settings.public_url, service.ChannelRequest(**body.model_dump())
    )
    return JSONResponse(await _view(rt, created.channel_id), status_code=201)


@admin
async def renew_channel(request: Request) -> Response:
    rt = _rt(request)
    channel_id = request.path_params["channel_id"]
    await service.renew_now(rt.keeper, channel_id)
    return JSONResponse(await _view(rt, channel_id))


@admin
async def rotate_channel(request: Request) -> Response:
    rt = _rt(request)
    channel_id = request.path_params["channel_id"]
    await service.renew_now(rt.keeper, channel_id, rotate=True)
    return JSONResponse(await _view(rt, channel_id))


@admin
async def disable_channel(request: Request) -> Response:
    rt = _rt(request)
    channel_id = request.path_params["channel_id"]
    note = await service.disable_channel(rt.keeper, channel_id)
    return JSONResponse({**await _view(rt, channel_id), "note": note})


@admin
async def channel_gaps(request: Request) -> Response:
    gaps = await list_gaps(_rt(request).engine, request.path_params["channel_id"])
    return JSONResponse(
        {
            "items": [
                {"from": g.gap_from.isoformat(), "to": g.gap_to.isoformat(),
                 "reason": g.reason, "events": list(g.events)}
                for g in gaps
            ]
        }
    )  # fmt: skip


routes = [
    Route("/admin/channels", create_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id}/renew", renew_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id}/rotate", rotate_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id}/disable", disable_channel, methods=["POST"]),
    Route("/admin/channels/{channel_id}/gaps", channel_gaps, methods=["GET"]),
]
