"""`/crm/v8/actions/watch`: enable, replace, patch, list and disable channels (zoho.md §1)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bridge.sandbox.model import Org
from bridge.sandbox.replies import answer, crm_call, crm_error, dc_of, state_of
from bridge.sandbox.watch_rules import (
    REMOVED,
    SUBSCRIBED,
    UPDATED,
    ItemRejected,
    answer_status,
    build_channel,
    describe,
    not_subscribed,
    success_item,
    unsubscribed_items,
)

LABEL = "/crm/v8/actions/watch"


async def watch(request: Request) -> Response:
    async with crm_call(request, f"{request.method} {LABEL}") as org:
        if isinstance(org, Response):
            return org
        if request.method == "GET":
            return _get(request, org)
        if request.method == "DELETE":
            return _delete(request, org)
        return await _write(request, org)


async def _write(request: Request, org: Org) -> Response:
    label = f"{request.method} {LABEL}"
    try:
        body = await request.json()
    except ValueError:
        body = None
    items = body.get("watch") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return answer(
            request,
            label,
            400,
            crm_error("INVALID_DATA", "invalid data", api_name="watch"),
            org=org.name,
        )
    state, dc = state_of(request), dc_of(request)
    now = state.clock.dt()
    results: list[dict[str, Any]] = []
    for item in items:
        try:
            results.append(_apply(request.method, item, org, now, state.expiry_beyond_week, dc))
        except ItemRejected as rejected:
            results.append(rejected.item)
    status = answer_status(results, 201 if request.method == "POST" else 200)
    return answer(request, label, status, {"watch": results}, org=org.name)


def _apply(method: str, item: Any, org: Org, now: Any, beyond_week: str, dc: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ItemRejected("INVALID_DATA", "invalid data", {})
    channel_id = str(item.get("channel_id", ""))
    existing = org.channels.get(channel_id)
    if method in ("PUT", "PATCH") and existing is None:
        raise ItemRejected(**_unpack(not_subscribed(channel_id)))
    if method == "PATCH" and item.get("_delete_events") is True:
        assert existing is not None
        drop = set(item.get("events") or [])
        existing.events = [e for e in existing.events if e not in drop]
        if not existing.events:
            del org.channels[channel_id]
        return {
            "code": "SUCCESS",
            "details": {"channel_id": channel_id},
            "message": REMOVED,
            "status": "success",
        }
    # POST on a known channel re-subscribes it: Zoho's advice for renewal (§1.2).
    channel = build_channel(item, existing, now, full=method != "PATCH", beyond_week=beyond_week)
    org.channels[channel.channel_id] = channel
    return success_item(channel, dc, SUBSCRIBED if method != "PATCH" else UPDATED)


def _unpack(item: dict[str, Any]) -> dict[str, Any]:
    return {"code": item["code"], "message": item["message"], "details": item["details"]}


def _get(request: Request, org: Org) -> Response:
    state, dc = state_of(request), dc_of(request)
    now = state.clock.dt()
    params = request.query_params
    # Whether Zoho lists expired channels is undocumented (§1.2); the sandbox does not.
    channels = [
        c
        for c in org.channels.values()
        if c.expiry > now
        and (params.get("channel_id") in (None, c.channel_id))
        and (
            params.get("module") is None
            or any(e.startswith(f"{params['module']}.") for e in c.events)
        )
    ]
    page, per_page = int(params.get("page", "1")), min(int(params.get("per_page", "200")), 200)
    chunk = channels[(page - 1) * per_page : page * per_page]
    label = f"GET {LABEL}"
    if not chunk:
        return answer(request, label, 204, org=org.name)
    info = {
        "per_page": per_page,
        "page": page,
        "count": len(chunk),
        "more_records": page * per_page < len(channels),
    }
    return answer(
        request, label, 200, {"watch": [describe(c, dc) for c in chunk], "info": info}, org=org.name
    )


def _delete(request: Request, org: Org) -> Response:
    label = f"DELETE {LABEL}"
    raw = request.query_params.get("channel_ids", "")
    ids = [i.strip() for i in raw.split(",") if i.strip()]
    if not ids:
        body = crm_error(
            "REQUIRED_PARAM_MISSING",
            "One of the expected parameter is missing",
            param="channel_ids",
        )
        return answer(request, label, 400, body, org=org.name)
    results: list[dict[str, Any]] = []
    for channel_id in ids:
        channel = org.channels.pop(channel_id, None)
        if channel is None:
            results.append(not_subscribed(channel_id))
        else:
            results.extend(unsubscribed_items(channel, dc_of(request)))
    return answer(request, label, answer_status(results, 200), {"watch": results}, org=org.name)
