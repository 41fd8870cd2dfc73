"""Error responses: `{"error": code, "message": text}`, one handler per error family, and
the report of an unexpected one (a bug)."""

from __future__ import annotations

from types import TracebackType

import structlog
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bridge.domain import jsonx
from bridge.domain.ids import new_ulid
from bridge.errors import BridgeError
from bridge.metrics import UNEXPECTED_ERRORS
from bridge.runtime import utc_now
from bridge.web.statuses import status_for

log = structlog.get_logger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    431: "request_header_fields_too_large",
    500: "internal_error",
    502: "zoho_error",
    503: "unavailable",
}
INTERNAL_MESSAGE = "internal error; see the bridge's log for this request id"
# Where `unexpected_error` leaves the id it answered with, for the front door's report.
ERROR_ID = "bridge.error_id"


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"error": CODES.get(status, "error"), "message": jsonx.escape_text(message)}
    return JSONResponse(body, status_code=status, headers=headers)


def internal_error_body(request_id: str) -> dict[str, object]:
    return {"error": CODES[500], "message": INTERNAL_MESSAGE, "request_id": request_id}


async def bridge_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BridgeError)
    status = status_for(exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    return error_response(status, exc.message, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail, dict(exc.headers or {}))


async def unexpected_error(request: Request, exc: Exception) -> Response:
    # A bug, not bad input. Starlette's error middleware answers with this, then raises
    # the exception on to the front door (web/front.py), which reports it once.
    error_id = new_ulid(utc_now())
    request.scope[ERROR_ID] = error_id
    return JSONResponse(internal_error_body(error_id), status_code=500)


def report_unexpected(exc: BaseException, *, area: str, path: str, request_id: str) -> None:
    """One structured line and a metric for a request that met a bug: the exception's
    type and where it was raised, never its message (it may quote the request)."""
    kind = type(exc).__name__
    UNEXPECTED_ERRORS.labels(area, kind).inc()
    log.error(
        "unexpected error",
        area=area,
        path=jsonx.escape_text(path[:200]),
        error_type=kind,
        where=_where(exc.__traceback__),
        request_id=request_id,
    )


def _where(tb: TracebackType | None) -> str | None:
    """`module.py:line in function` of the innermost frame in the bridge's own code (or
    the innermost of all, if none is): enough to find the bug."""
    found = innermost = None
    while tb is not None:
        if _OWN_CODE in tb.tb_frame.f_code.co_filename:
            found = tb
        innermost, tb = tb, tb.tb_next
    found = found or innermost
    if found is None:
        return None
    code = found.tb_frame.f_code
    return f"{code.co_filename.rsplit('/', 1)[-1]}:{found.tb_lineno} in {code.co_qualname}"


_OWN_CODE = "/bridge/"


def area_of(path: str) -> str:
    """The label for metrics: hooks, admin, v1 or other."""
    for area in ("hooks", "admin", "v1"):
        if path.startswith(f"/{area}/") or path == f"/{area}":
            return area
    return "other"


HANDLERS = {BridgeError: bridge_error, HTTPException: http_error, Exception: unexpected_error}
