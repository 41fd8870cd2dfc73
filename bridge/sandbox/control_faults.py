"""`/_sandbox/...` control endpoints for the fault switches, conversions, bursts and the
dropped-callback ledger (the package docstring lists them all)."""

from __future__ import annotations

import random
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox.control import seconds
from bridge.sandbox.model import Change
from bridge.sandbox.names import unknown_names
from bridge.sandbox.replies import state_of
from bridge.sandbox.state import SandboxState

_FLOATS = ("drop_rate", "delay", "date_skew", "visibility_delay", "page_token_ttl")


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def describe_faults(state: SandboxState) -> dict[str, Any]:
    """The fault switches' current values."""
    return {
        **{name: getattr(state, name) for name in _FLOATS},
        "books_duplicate_every": state.books_duplicate_every,
        "crm_throttle": state.crm_throttle,
        "books_throttle": state.books_throttle,
        "books_settings": {
            path: {"filter": s.filter, "sortable": s.sortable}
            for path, s in state.books_settings.items()
        },
    }


def describe_change(change: Change) -> dict[str, Any]:
    return {
        "product": change.product,
        "org": change.org,
        "module": change.module,
        "record_id": change.record_id,
        "operation": change.operation,
        "modified": change.modified.isoformat(),
    }


async def faults(request: Request) -> Response:
    body, state = await _body(request), state_of(request)
    try:
        for name in _FLOATS:
            if name in body:
                setattr(state, name, float(body[name]))
        if "seed" in body:
            state.rng = random.Random(int(body["seed"]))
        if "books_duplicate_every" in body:
            state.books_duplicate_every = int(body["books_duplicate_every"])
        for product in ("crm", "books"):
            if f"{product}_throttle" in body:
                state.throttle(int(body[f"{product}_throttle"]), product=product)
    except (TypeError, ValueError):
        return JSONResponse({"error": "numbers expected"}, status_code=400)
    return JSONResponse(describe_faults(state))


async def expire_page_tokens(request: Request) -> Response:
    state = state_of(request)
    state.expire_page_tokens()
    return JSONResponse({"expired": len(state.page_tokens)})


async def books_settings(request: Request) -> Response:
    body, state = await _body(request), state_of(request)
    try:
        settings = state.books_entity_settings(
            request.path_params["entity"],
            filter=body.get("filter"),
            sortable=body.get("sortable"),
        )
    except (KeyError, ValueError) as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    return JSONResponse({"filter": settings.filter, "sortable": settings.sortable})


async def convert_lead(request: Request) -> Response:
    state, p = state_of(request), request.path_params
    body = await _body(request)
    try:
        later = seconds(body.get("visible_after"))
        contact = state.crm_convert(str(p["record_id"]), org=p["org"], visible_after=later)
    except KeyError:
        return JSONResponse({"error": "no such org or lead"}, status_code=404)
    except (TypeError, ValueError):
        return JSONResponse({"error": "visible_after must be a number"}, status_code=400)
    return JSONResponse({"id": p["record_id"], "contact_id": contact})


async def burst(request: Request) -> Response:
    body, state = await _body(request), state_of(request)
    try:
        refused = unknown_names(dict(body.get("crm") or {}), dict(body.get("books") or {}))
    except (TypeError, ValueError):
        return JSONResponse({"error": "crm and books must map names to counts"}, status_code=400)
    if refused is not None:
        return JSONResponse({"error": refused}, status_code=400)
    try:
        made = state.burst(
            crm={str(k): int(v) for k, v in dict(body.get("crm") or {}).items()},
            books={str(k): int(v) for k, v in dict(body.get("books") or {}).items()},
            edits=int(body.get("edits", 0)),
            org=request.path_params["org"],
        )
    except KeyError:
        return JSONResponse({"error": "no such org, or not a Books entity"}, status_code=404)
    except (TypeError, ValueError):
        return JSONResponse({"error": "counts must be numbers"}, status_code=400)
    return JSONResponse(made, status_code=201)


async def dropped(request: Request) -> Response:
    state, q = state_of(request), request.query_params
    found = state.dropped_versions(org=q.get("org"), product=q.get("product"))
    rows = sorted(
        (describe_change(c) for c in found), key=lambda c: (c["modified"], c["record_id"])
    )
    return JSONResponse(rows)


routes = [
    Route("/faults", faults, methods=["PUT"]),
    Route("/page-tokens/expire", expire_page_tokens, methods=["POST"]),
    Route("/books-settings/{entity}", books_settings, methods=["PUT"]),
    Route("/orgs/{org}/crm/Leads/{record_id}/convert", convert_lead, methods=["POST"]),
    Route("/orgs/{org}/burst", burst, methods=["POST"]),
    Route("/dropped", dropped, methods=["GET"]),
]
