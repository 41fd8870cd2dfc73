"""Webhook endpoints: /hooks/crm and /hooks/books/{source}.

These are plain ASGI callables rather than Starlette request handlers: they are the hot
path, and building Starlette's Request, URL and Headers objects for each delivery cost more
than reading the few things needed straight from the scope. The front door (web/front.py)
answers them before Starlette's middleware and router (`match`); the routes below stay
registered so that other methods get Starlette's 405 and the paths show in the route table.

Every request that reaches them is recorded, whatever happens: refused before its body was
read (headers too large, a body too large or too slow), rejected, accepted, or failed on a
bug (`_fail`: answered 500 with the id of its record).
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from urllib.parse import unquote_plus

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge.domain import jsonx
from bridge.domain.ids import new_ulid
from bridge.errors import BridgeError
from bridge.metrics import WEBHOOKS
from bridge.runtime import Runtime
from bridge.services.ingest import IngestOutcome, RawRequest, Rejected
from bridge.web.bodies import HeadersTooLarge, read_body
from bridge.web.errors import CODES, internal_error_body, report_unexpected
from bridge.web.statuses import status_for

_JSON = (b"content-type", b"application/json")
# Answers given before the body was read whole: the connection is closed after them, or
# the server would go on reading (or waiting for) the rest as if it were the next request.
_CLOSE = frozenset({408, 413, 431, 500})


def _request(
    scope: Scope,
    headers: list[tuple[str, str]],
    content_type: str | None,
    body: bytes,
    received_at: datetime,
) -> RawRequest:
    query_string = scope["query_string"].decode("latin-1")
    client = scope.get("client")
    return RawRequest(
        method=scope["method"],
        path=scope["path"],
        query_string=query_string,
        query=query_pairs(query_string) if query_string else (),
        headers=headers,
        body=body,
        content_type=content_type,
        remote_addr=str(client[0]) if client else None,
        received_at=received_at,
    )


def _unread(scope: Scope, runtime: Runtime) -> RawRequest:
    """The request without its body, for refusals decided before reading it."""
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    return _request(scope, headers, None, b"", runtime.clock())


async def _raw(
    scope: Scope, receive: Receive, runtime: Runtime
) -> tuple[RawRequest, BridgeError | None]:
    """The request, and why its body could not be read (too large, too slow, a bad
    Content-Length), if it could not: such a request is refused, and still recorded."""
    received_at = runtime.clock()
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    content_length = content_type = None
    for name, value in headers:  # ASGI header names are lower case; the first one counts
        if name == "content-length" and content_length is None:
            content_length = value
        elif name == "content-type" and content_type is None:
            content_type = value
    unread = None
    settings = runtime.settings
    try:
        body = await read_body(
            receive, content_length, settings.max_body_bytes, settings.body_timeout_seconds
        )
    except BridgeError as exc:
        body, unread = b"", exc
    return _request(scope, headers, content_type, body, received_at), unread


def query_pairs(query_string: str) -> tuple[tuple[str, str], ...]:
    """`parse_qsl(query_string, keep_blank_values=True)`, at a fraction of its cost."""
    pairs = []
    for part in query_string.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_unquote(name), _unquote(value)))
    return tuple(pairs)


def _unquote(text: str) -> str:
    return unquote_plus(text) if "%" in text or "+" in text else text


async def _send_json(send: Send, status: int, body: dict[str, object]) -> None:
    payload = jsonx.dumps(body)
    headers = [_JSON, (b"content-length", str(len(payload)).encode("ascii"))]
    if status == 503:
        headers.append((b"retry-after", b"5"))
    elif status in _CLOSE:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _send_error(send: Send, error: BridgeError) -> None:
    status = status_for(error)
    # Messages can quote what was sent: a lone surrogate would not encode.
    message = jsonx.escape_text(error.message)
    await _send_json(send, status, {"error": CODES.get(status, "error"), "message": message})


def _accepted(outcome: IngestOutcome) -> dict[str, object]:
    return {
        "status": outcome.status,
        "request_id": outcome.request_id,
        "events": len(outcome.event_ids),
        "event_ids": outcome.event_ids,
        "duplicates": outcome.duplicates,
    }


_BOOKS_PREFIX = "/hooks/books/"
_BOOKS_METHODS = frozenset({"POST", "PUT", "DELETE"})


def match(path: str, method: str) -> tuple[str, str | None] | None:
    """(kind, Books source name) when `path` and `method` are a webhook endpoint's."""
    if path == "/hooks/crm":
        return ("crm", None) if method == "POST" else None
    if path.startswith(_BOOKS_PREFIX) and method in _BOOKS_METHODS:
        source = path[len(_BOOKS_PREFIX) :]
        if source and "/" not in source:
            return "books", source
    return None


async def handle(
    scope: Scope, receive: Receive, send: Send, runtime: Runtime, kind: str, source: str | None
) -> None:
    started = time.perf_counter()
    raw = None
    try:
        raw, unread = await _raw(scope, receive, runtime)
        if unread is not None:
            raise await runtime.ingest.refuse(raw, kind, source, unread)
        if source is None:
            outcome = await runtime.ingest.crm(raw)
        else:
            outcome = await runtime.ingest.books(source, raw)
    except Rejected as rejected:
        WEBHOOKS.record(kind, "rejected", time.perf_counter() - started)
        await _send_error(send, rejected.cause)
        return
    except BridgeError as exc:
        WEBHOOKS.record(kind, "failed", time.perf_counter() - started)
        await _send_error(send, exc)
        return
    except Exception as exc:  # the last line of defence: a bug, never the sender's fault
        WEBHOOKS.record(kind, "failed", time.perf_counter() - started)
        await _fail(scope, send, runtime, kind, source, raw, exc)
        return
    except BaseException:
        WEBHOOKS.record(kind, "failed", time.perf_counter() - started)
        raise
    WEBHOOKS.record(kind, outcome.status, time.perf_counter() - started, len(outcome.event_ids))
    await _send_json(send, 200, _accepted(outcome))


async def refuse_headers(
    scope: Scope, send: Send, runtime: Runtime, kind: str, source: str | None, limit: int
) -> None:
    """Answer 431 to a webhook whose headers are over `limit` bytes, recorded (with its
    headers truncated) and its body never read."""
    started = time.perf_counter()
    error = HeadersTooLarge(f"request headers are larger than {limit} bytes")
    try:
        rejected = await runtime.ingest.refuse(_unread(scope, runtime), kind, source, error)
    except Exception as exc:
        WEBHOOKS.record(kind, "failed", time.perf_counter() - started)
        await _fail(scope, send, runtime, kind, source, None, exc)
        return
    WEBHOOKS.record(kind, "rejected", time.perf_counter() - started)
    await _send_error(send, rejected.cause)


async def _fail(
    scope: Scope,
    send: Send,
    runtime: Runtime,
    kind: str,
    source: str | None,
    raw: RawRequest | None,
    exc: Exception,
) -> None:
    """A webhook that met a bug: recorded like a refused one (so nothing arrives unseen),
    reported, and answered 500 with the id of its record."""
    request_id = None
    cause = BridgeError(f"internal error ({type(exc).__name__}); see the bridge's log")
    try:
        recorded = await runtime.ingest.refuse(
            raw if raw is not None else _unread(scope, runtime), kind, source, cause
        )
        request_id = recorded.request_id
    except Exception as again:
        report_unexpected(again, area="hooks", path=scope["path"], request_id="-")
    request_id = request_id or new_ulid(runtime.clock())
    report_unexpected(exc, area="hooks", path=scope["path"], request_id=request_id)
    with contextlib.suppress(Exception):  # the answer may have been started already
        await _send_json(send, 500, internal_error_body(request_id))


class _Asgi:
    """Starlette treats a plain function as a request handler; an object is an ASGI app."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        source: str | None = scope["path_params"].get("source")
        await handle(scope, receive, send, scope["app"].state.runtime, self.kind, source)


routes = [
    Route("/hooks/crm", _Asgi("crm"), methods=["POST"]),
    Route("/hooks/books/{source}", _Asgi("books"), methods=["POST", "PUT", "DELETE"]),
]
