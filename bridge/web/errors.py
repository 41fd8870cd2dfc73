"""Error responses: `{"error": code, "message": text}`, one handler per error family."""

from __future__ import annotations

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.errors import BridgeError
from bridge.web.statuses import status_for

log = structlog.get_logger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    502: "zoho_error",
    503: "unavailable",
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": CODES.get(status, "error"), "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


async def bridge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BridgeError)
    status = status_for(exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    return error_response(status, exc.message, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    # A bug, not bad input: logged with its type only (the message may hold request data).
    log.error("unhandled error", path=request.url.path, error_type=type(exc).__name__)
    return error_response(500, "internal error; see the bridge's log")


HANDLERS = {BridgeError: bridge_error, HTTPException: http_error, Exception: unexpected_error}
