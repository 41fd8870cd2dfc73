"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import BridgeError
from bridge.runtime import Runtime

BACKLOG_TIMEOUT = 5.0  # seconds a scrape waits for the outbox counts


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    ready, checks = await runtime.status.readiness()
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    # The outbox gauges come from the database; if it cannot answer now, the scrape still
    # succeeds with the last figures, and `bridge_database_up` says why.
    with contextlib.suppress(BridgeError, TimeoutError):
        await asyncio.wait_for(runtime.deliveries.export_backlog(), BACKLOG_TIMEOUT)
    exported = generate_latest()
    if runtime.relay_child is not None:  # its relay's metrics, which this process has not
        exported += await runtime.relay_child.metrics()
    return Response(exported, media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
