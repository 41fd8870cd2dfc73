"""Answering a sandbox request: record it in the counters, then respond."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.sandbox.state import SandboxState


def state_of(request: Request) -> SandboxState:
    """The `SandboxState` the app was created with."""
    state: SandboxState = request.app.state.sandbox
    return state


def dc_of(request: Request) -> str:
    """The data centre the request was addressed to (`/dc/{dc}/...`)."""
    return str(request.path_params.get("dc", "com"))


def answer(
    request: Request, label: str, status: int, body: Any = None, *, org: str | None = None
) -> Response:
    """Count the request under `label` (e.g. "GET /crm/v8/{module}") and answer it."""
    state_of(request).record(dc_of(request), org, label, status)
    if body is None:
        return Response(status_code=status)
    return JSONResponse(body, status_code=status)


def crm_error(code: str, message: str, **details: Any) -> dict[str, Any]:
    """CRM's error shape (zoho.md §6)."""
    return {"code": code, "details": details, "message": message, "status": "error"}
