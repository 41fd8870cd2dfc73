"""The front door: what every HTTP request passes before anything else (`BridgeApp.__call__`).

- Headers over BRIDGE_MAX_HEADER_BYTES are answered 431 (recorded for webhooks), before
  any routing or body reading.
- Webhook deliveries go straight to `hooks.handle`, before Starlette's middleware and
  router: they are most of the traffic, and neither adds anything to them.
- Everything else goes to Starlette, under the last line of defence: an exception that
  escapes (a bug) is answered with the JSON error and a request id, reported once
  (`errors.report_unexpected`: a metric and one log line with the exception's type), and
  never reaches the ASGI server, whose own log would print the exception's message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from bridge.domain.ids import new_ulid
from bridge.runtime import utc_now
from bridge.web import hooks
from bridge.web.bodies import header_bytes
from bridge.web.errors import (
    ERROR_ID,
    area_of,
    error_response,
    internal_error_body,
    report_unexpected,
)


def serve_http(app: Starlette, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
    """What answers this request, for the caller to await. A plain function rather than a
    coroutine: a webhook delivery then runs in `hooks.handle` with no frame of this
    module's between it and the server."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    runtime = getattr(app.state, "runtime", None)
    if runtime is not None:
        target = hooks.match(path, scope["method"])
        limit = runtime.settings.max_header_bytes
        if header_bytes(scope["headers"]) > limit:
            if target is not None:
                return hooks.refuse_headers(scope, send, runtime, *target, limit)
            response = error_response(431, f"request headers are larger than {limit} bytes")
            response.headers["connection"] = "close"
            return response(scope, receive, send)
        if target is not None:
            scope["app"] = app
            return hooks.handle(scope, receive, send, runtime, *target)
    query: bytes = scope["query_string"]
    if "\x00" in path or b"%00" in query or b"\x00" in query:
        # No name, id or filter holds a NUL, and PostgreSQL refuses it in a query.
        return error_response(400, "the path or query holds a NUL character")(scope, receive, send)
    return _guarded(app, path, scope, receive, send)


async def _guarded(app: Starlette, path: str, scope: Scope, receive: Receive, send: Send) -> None:
    """Starlette, under the last line of defence."""
    try:
        await Starlette.__call__(app, scope, receive, send)
    except Exception as exc:
        error_id = scope.get(ERROR_ID)
        if error_id is None:  # raised outside Starlette's error middleware: nothing sent
            error_id = new_ulid(utc_now())
            with contextlib.suppress(Exception):
                await JSONResponse(internal_error_body(error_id), 500)(scope, receive, send)
        report_unexpected(exc, area=area_of(path), path=path, request_id=error_id)
