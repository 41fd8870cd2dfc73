"""Webhook endpoints: /hooks/crm and /hooks/books/{source}.

These are plain ASGI callables rather than Starlette request handlers: they are the hot
path, and building Starlette's Request, URL and Headers objects for each delivery cost more
than reading the few things needed straight from the scope. `BridgeApp` (web/app.py) answers
them before Starlette's middleware and router (`match`); the routes below stay registered
so that other methods get Starlette's 405 and the paths show in the route table.
"""

from __future__ import annotations

import time
from urllib.parse import unquote_plus

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bridge.domain import jsonx
from bridge.errors import BridgeError, PayloadTooLarge
from bridge.metrics import WEBHOOKS
from bridge.runtime import Runtime
from bridge.services.ingest import IngestOutcome, RawRequest, Rejected
from bridge.web.bodies import read_body
from bridge.web.errors import CODES
from bridge.web.statuses import status_for

_JSON = (b"content-type", b"application/json")


async def _raw(
    scope: Scope, receive: Receive, runtime: Runtime
) -> tuple[RawRequest, PayloadTooLarge | None]:
    received_at = runtime.clock()
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
    content_length = content_type = None
    for name, value in headers:  # ASGI header names are lower case; the first one counts
        if name == "content-length" and content_length is None:
            content_length = value
        elif name == "content-type" and content_type is None:
            content_type = value
    too_large = None
    try:
        body = await read_body(receive, content_length, runtime.settings.max_body_bytes)
    except PayloadTooLarge as exc:
        body, too_large = b"", exc
    query_string = scope["query_string"].decode("latin-1")
    client = scope.get("client")
    raw = RawRequest(
        method=scope["method"],
        path=scope["path"],
        query_string=query_string,
        query=query_pairs(query_string) if query_string else (),
        headers=headers,
        body=body,
        content_type=content_type,
        remote_addr=client[0] if client else None,
        received_at=received_at,
    )
    return raw, too_large


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
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _send_error(send: Send, error: BridgeError) -> None:
    status = status_for(error)
    await _send_json(send, status, {"error": CODES.get(status, "error"), "message": error.message})


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
    try:
        raw, too_large = await _raw(scope, receive, runtime)
        if too_large is not None:
            raise await runtime.ingest.refuse(raw, kind, source, too_large)
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
    except BaseException:
        WEBHOOKS.record(kind, "failed", time.perf_counter() - started)
        raise
    WEBHOOKS.record(kind, outcome.status, time.perf_counter() - started, len(outcome.event_ids))
    await _send_json(send, 200, _accepted(outcome))


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
