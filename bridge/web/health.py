"""Liveness, readiness and metrics."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import BridgeError
from bridge.runtime import Runtime
from bridge.services.channels import channel_problems
from bridge.store.database import ping
from bridge.store.migrate import schema_is_current


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        await ping(runtime.engine)
        checks["database"] = "ok"
        current = await schema_is_current(runtime.engine, runtime.settings.database_url)
        checks["schema"] = "current" if current else "out of date: run `zoho-bridge db upgrade`"
    except BridgeError as exc:
        checks["database"] = exc.message
    except Exception as exc:  # readiness must answer, whatever the database says
        checks["database"] = f"unreachable ({type(exc).__name__})"
    checks["secret_key"] = runtime.secret_problem or "ok"
    if checks.get("database") == "ok" and checks.get("schema") == "current":
        checks["channels"] = await _channel_detail(runtime)
    ready = (
        checks.get("database") == "ok"
        and checks.get("schema") == "current"
        and checks["secret_key"] == "ok"
    )
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


async def _channel_detail(runtime: Runtime) -> str:
    """Channels at risk, for the operator reading readiness; never makes it fail: the
    bridge still receives and stores whatever arrives."""
    try:
        problems = await channel_problems(runtime.keeper)
    except BridgeError as exc:
        return f"unknown ({exc.message})"
    at_risk = problems["at_risk"]
    if not at_risk:
        return "ok"
    ids = ", ".join(f"{v['channel_id']} ({v['state']})" for v in at_risk)
    return f"{len(at_risk)} at risk: {ids}"


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
