"""Webhook endpoints: /hooks/crm and /hooks/books/{source}."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.domain import jsonx
from bridge.errors import BridgeError, PayloadTooLarge
from bridge.metrics import events_counter, ingest_timer, webhook_counter
from bridge.runtime import Runtime
from bridge.services.ingest import IngestOutcome, RawRequest, Rejected
from bridge.web.bodies import read_limited
from bridge.web.errors import bridge_error


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _raw(request: Request, runtime: Runtime) -> tuple[RawRequest, PayloadTooLarge | None]:
    received_at = runtime.clock()
    too_large = None
    try:
        body = await read_limited(request, runtime.settings.max_body_bytes)
    except PayloadTooLarge as exc:
        body, too_large = b"", exc
    # Read straight from the ASGI scope: building Starlette's URL and Headers objects costs
    # more than the rest of this function on the hot path.
    scope = request.scope
    query_string = scope["query_string"].decode("latin-1")
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
    client = scope.get("client")
    raw = RawRequest(
        method=scope["method"],
        path=scope["path"],
        query_string=query_string,
        query=tuple(parse_qsl(query_string, keep_blank_values=True)) if query_string else (),
        headers=headers,
        body=body,
        content_type=next((v for k, v in headers if k == "content-type"), None),
        remote_addr=client[0] if client else None,
        received_at=received_at,
    )
    return raw, too_large


def _answer(outcome: IngestOutcome) -> Response:
    body = {
        "status": outcome.status,
        "request_id": outcome.request_id,
        "events": len(outcome.event_ids),
        "event_ids": outcome.event_ids,
        "duplicates": outcome.duplicates,
    }
    return Response(jsonx.dumps(body), media_type="application/json")


async def _handle(request: Request, kind: str, source: str | None) -> Response:
    runtime = _runtime(request)
    started = time.perf_counter()
    try:
        raw, too_large = await _raw(request, runtime)
        if too_large is not None:
            raise await runtime.ingest.refuse(raw, kind, source, too_large)
        if kind == "crm":
            outcome = await runtime.ingest.crm(raw)
        else:
            assert source is not None
            outcome = await runtime.ingest.books(source, raw)
    except Rejected as rejected:
        webhook_counter(kind, "rejected").inc()
        return await bridge_error(request, rejected.cause)
    except BridgeError as exc:
        webhook_counter(kind, "failed").inc()
        return await bridge_error(request, exc)
    finally:
        ingest_timer(kind).observe(time.perf_counter() - started)
    webhook_counter(kind, outcome.status).inc()
    if outcome.event_ids:
        events_counter(kind, "webhook").inc(len(outcome.event_ids))
    return _answer(outcome)


async def crm_callback(request: Request) -> Response:
    return await _handle(request, "crm", None)


async def books_webhook(request: Request) -> Response:
    return await _handle(request, "books", request.path_params["source"])


routes = [
    Route("/hooks/crm", crm_callback, methods=["POST"]),
    Route("/hooks/books/{source}", books_webhook, methods=["POST", "PUT", "DELETE"]),
]
