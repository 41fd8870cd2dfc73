"""`/_sandbox/...`: JSON control endpoints mirroring the `SandboxState` Python API."""

from __future__ import annotations

import random
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.books_ops import BOOKS_ACTIONS
from bridge.sandbox.model import Org
from bridge.sandbox.replies import state_of

_LIMITS = ("books_per_minute", "books_daily", "crm_concurrency", "crm_delay", "crm_scope")


def describe_org(org: Org, base_url: str) -> dict[str, Any]:
    """What a client needs to connect to `org` through the sandbox."""
    return {
        "name": org.name,
        "dc": org.dc,
        "client_id": org.client_id,
        "client_secret": org.client_secret,
        "refresh_tokens": sorted(org.refresh_tokens),
        "organization_id": org.organization_id,
        "accounts_url": f"{base_url}/dc/{org.dc}/accounts",
        "api_domain": f"{base_url}/dc/{org.dc}/api",
    }


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def seconds(value: Any) -> float | None:
    """An optional number of seconds from a JSON body (ValueError/TypeError if not one)."""
    return None if value is None else float(value)


def _base(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


async def create_org(request: Request) -> Response:
    body = await _body(request)
    if not isinstance(body.get("name"), str):
        return JSONResponse({"error": "name is required"}, status_code=400)
    extra = {k: body[k] for k in _LIMITS if k in body}
    org = state_of(request).add_org(
        body["name"],
        str(body.get("dc", "com")),
        client_id=body.get("client_id"),
        client_secret=body.get("client_secret"),
        refresh_token=body.get("refresh_token"),
        organization_id=body.get("organization_id"),
        **extra,
    )
    return JSONResponse(describe_org(org, _base(request)), status_code=201)


async def list_orgs(request: Request) -> Response:
    orgs = state_of(request).orgs.values()
    return JSONResponse([describe_org(o, _base(request)) for o in orgs])


async def crm_record(request: Request) -> Response:
    state, p = state_of(request), request.path_params
    org, module, record_id = p["org"], p["module"], str(p.get("record_id"))
    try:
        body = await _body(request) if request.method != "DELETE" else {}
        later = seconds(body.get("visible_after"))  # until list/COQL reads show the change
        if request.method == "POST":
            new_id = state.crm_create(module, body.get("fields", {}), org=org, visible_after=later)
            return JSONResponse({"id": new_id}, status_code=201)
        if request.method == "PATCH":
            state.crm_update(
                module, record_id, body.get("fields", {}), org=org, visible_after=later
            )
        else:
            state.crm_delete(module, record_id, org=org)
    except KeyError:
        return JSONResponse({"error": "no such org, module or record"}, status_code=404)
    except (TypeError, ValueError):
        return JSONResponse({"error": "visible_after must be a number"}, status_code=400)
    return JSONResponse({"id": record_id})


async def books_record(request: Request) -> Response:
    state, p = state_of(request), request.path_params
    org, entity, record_id = p["org"], p["entity"], str(p.get("record_id"))
    try:
        if request.method == "POST":
            new_id = state.books_create(entity, (await _body(request)).get("fields", {}), org=org)
            return JSONResponse({"id": new_id}, status_code=201)
        if request.method == "PATCH":
            state.books_update(entity, record_id, (await _body(request)).get("fields", {}), org=org)
        else:
            state.books_delete(entity, record_id, org=org)
    except KeyError:
        return JSONResponse({"error": "no such org, entity or record"}, status_code=404)
    return JSONResponse({"id": record_id})


async def books_webhook(request: Request) -> Response:
    body = await _body(request)
    state = state_of(request)
    try:
        actions = tuple(str(a) for a in body.get("actions") or BOOKS_ACTIONS)
        state.books_webhook(
            str(body["entity"]), str(body["url"]), org=request.path_params["org"], actions=actions
        )
    except KeyError:
        return JSONResponse({"error": "entity, url and a known org are required"}, status_code=400)
    except (TypeError, ValueError) as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    return JSONResponse({"ok": True}, status_code=201)


async def delivery(request: Request) -> Response:
    body, state = await _body(request), state_of(request)
    if "drop_rate" in body:
        state.drop_rate = float(body["drop_rate"])
    if "delay" in body:
        state.delay = float(body["delay"])
    if "seed" in body:
        state.rng = random.Random(int(body["seed"]))
    return JSONResponse({"drop_rate": state.drop_rate, "delay": state.delay})


async def counters(request: Request) -> Response:
    state = state_of(request)
    outcomes: dict[str, int] = {}
    for d in state.deliveries:
        outcomes[d.outcome] = outcomes.get(d.outcome, 0) + 1
    credits = {name: state.crm_credits(name) for name in state.orgs}
    return JSONResponse(
        {"requests": state.counters(), "deliveries": outcomes, "crm_credits_today": credits}
    )


async def advance_clock(request: Request) -> Response:
    state = state_of(request)
    state.clock.advance(float((await _body(request)).get("seconds", 0)))
    return JSONResponse({"now": state.clock.now()})


routes = [
    Route("/orgs", create_org, methods=["POST"]),
    Route("/orgs", list_orgs, methods=["GET"]),
    Route("/orgs/{org}/crm/{module}", crm_record, methods=["POST"]),
    Route("/orgs/{org}/crm/{module}/{record_id}", crm_record, methods=["PATCH", "DELETE"]),
    Route("/orgs/{org}/books/{entity}", books_record, methods=["POST"]),
    Route("/orgs/{org}/books/{entity}/{record_id}", books_record, methods=["PATCH", "DELETE"]),
    Route("/orgs/{org}/books-webhooks", books_webhook, methods=["POST"]),
    Route("/delivery", delivery, methods=["PUT"]),
    Route("/counters", counters, methods=["GET"]),
    Route("/clock/advance", advance_clock, methods=["POST"]),
]
