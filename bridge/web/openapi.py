"""The OpenAPI document at /openapi.json, built from one table of operations.

Each operation lists every status it can answer: its success (200, 201, 202 or 204), the
errors of its kind (webhook, admin, subscriber), 404 where it names an object, and what
any request may meet before it reaches a handler: 400 (a NUL in the path or query), 431
(headers over BRIDGE_MAX_HEADER_BYTES), and for a request with a body 408 and 413. A
method a path does not take is answered 405 with `Allow` listing those it does. Query
parameters carry the types and bounds the server checks. `tests/test_openapi_schema.py`
runs schemathesis over the whole document against a running bridge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge import __version__
from bridge.domain.delivery import DeliveryStatus
from bridge.domain.events import Operation, Origin, Product
from bridge.domain.requests import RequestStatus
from bridge.web.admin import ChannelImport, ChannelTokenIn, SourceChange, SourceIn
from bridge.web.admin_channels import ChannelCreate
from bridge.web.admin_connections import ConnectionChange, ConnectionIn
from bridge.web.admin_reconcile import RunIn, WatchChange, WatchIn
from bridge.web.delivery_admin import ReplayIn, ReplayOne, RetryIn, RewindIn, SubscriptionIn
from bridge.web.subscriptions import AckIn

ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
    "required": ["error", "message"],
}
ACCEPTED = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["accepted", "duplicate"]},
        "request_id": {"type": "string"},
        "events": {"type": "integer"},
        "event_ids": {"type": "array", "items": {"type": "string"}},
        "duplicates": {"type": "integer"},
    },
    "required": ["status", "request_id", "events", "event_ids", "duplicates"],
}
READINESS = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["ready", "not ready"]},
        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["status", "checks"],
}
PAGE = {
    "type": "object",
    "properties": {"items": {"type": "array"}, "next": {"type": ["string", "null"]}},
    "required": ["items", "next"],
}
ITEMS = {"type": "object", "properties": {"items": {"type": "array"}}, "required": ["items"]}
EVENTS_PAGE = {
    "type": "object",
    "properties": {"items": {"type": "array"}, "next": {"type": "integer"}},
    "required": ["items", "next"],
}
OBJECT = {"type": "object"}

INT64 = 2**63 - 1
LIMIT = {"type": "integer", "minimum": 1, "maximum": 1000}
CURSOR = {"type": "integer", "minimum": 0, "maximum": INT64}
TEXT = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
EMPTY = {"type": "string", "maxLength": 0}


def _choice(values: Iterable[str]) -> dict[str, Any]:
    return {"type": "string", "enum": [str(v) for v in values]}


HOOK_QUERY = {"token": TEXT, "event": TEXT, "entity": TEXT}
EVENT_FILTERS = {
    "source": TEXT, "module": TEXT, "record_id": TEXT, "operation": _choice(Operation),
    "origin": _choice(Origin), "product": _choice(Product), "since": TIME, "until": TIME,
    "request_id": TEXT, "cursor": CURSOR, "limit": LIMIT,
}  # fmt: skip
WATCH_FILTERS = {"connection": TEXT, "module": TEXT}

HOOK_ERRORS = {
    "400": "malformed body",
    "401": "failed verification",
    "404": "unknown source or channel",
    "415": "unsupported content type",
    "503": "database unavailable: nothing was stored, retry",
}
ADMIN_ERRORS = {
    "400": "invalid input",
    "401": "wrong admin token",
    "403": "admin API disabled",
    "503": "database unavailable",
}
SUBSCRIBER_ERRORS = {
    "400": "invalid input",
    "401": "unknown subscription or wrong token",
    "503": "database unavailable",
}
ANY_REQUEST = {
    "400": "a NUL character in the path or query",
    "431": "request headers over BRIDGE_MAX_HEADER_BYTES",
}
WITH_BODY = {
    "408": "the body was not received within BRIDGE_BODY_TIMEOUT_SECONDS",
    "413": "body over its size limit",
}
ZOHO = {"502": "Zoho refused or failed (its message verbatim)"}
MISSING = {"404": "no such object"}
TAKEN = {"409": "the name or id is already taken"}


@dataclass(frozen=True)
class Op:
    """One operation: where, what it takes, and what it answers besides its kind's errors."""

    path: str
    method: str
    summary: str
    model: type[BaseModel] | None = None
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: int = 200
    answer: dict[str, Any] | None = None  # the success schema (JSON object by default)
    errors: dict[str, str] = field(default_factory=dict)


WATCH = "/admin/reconciliation/watches/{watch_id}"
HOOK_BODY_METHODS = ("post", "put", "delete")

OPERATIONS: list[Op] = [
    Op("/hooks/crm", "post", "Zoho CRM notification callback", answer=ACCEPTED),
    *(
        Op("/hooks/books/{source}", method, f"Zoho Books workflow webhook ({method.upper()})",
           query=HOOK_QUERY, answer=ACCEPTED)
        for method in HOOK_BODY_METHODS
    ),
    Op("/healthz", "get", "Liveness"),
    Op("/readyz", "get", "Readiness: the database takes writes and its schema is current",
       answer=READINESS, errors={"503": "not ready (the failing check says why)"}),
    Op("/metrics", "get", "Prometheus metrics"),
    Op("/admin/sources", "post", "Create a Books source", SourceIn, status=201, errors=TAKEN),
    Op("/admin/sources", "get", "List Books sources", answer=ITEMS),
    Op("/admin/sources/{name}", "get", "One Books source"),
    Op("/admin/sources/{name}", "patch", "Rotate tokens/secrets, enable/disable", SourceChange),
    Op("/admin/channels/import", "post", "Import a CRM channel created elsewhere",
       ChannelImport, status=201, errors=TAKEN),
    Op("/admin/channels", "get", "List CRM channels", answer=ITEMS),
    Op("/admin/channels/{channel_id}", "get", "One CRM channel"),
    Op("/admin/channels/{channel_id}/tokens", "post", "Add a channel token (rotation)",
       ChannelTokenIn),
    Op("/admin/connections", "post", "Add a Zoho connection (secrets stored encrypted)",
       ConnectionIn, status=201, errors=TAKEN),
    Op("/admin/connections", "get", "List connections (never their secrets)", answer=ITEMS),
    Op("/admin/connections/{name}", "get", "One connection"),
    Op("/admin/connections/{name}", "patch", "New refresh token/secret (resumes), or status",
       ConnectionChange),
    Op("/admin/connections/{name}", "delete", "Remove a connection without live channels",
       status=204, errors={"409": "the connection still has live channels"}),
    Op("/admin/connections/{name}/check", "post", "One cheap authenticated call to Zoho",
       errors={"502": "Zoho refused (the connection is now needs_reauth) or failed"}),
    Op("/admin/channels", "post", "Create a managed channel at Zoho", ChannelCreate,
       status=201, errors={**ZOHO, **TAKEN, "404": "no such connection"}),
    Op("/admin/channels/{channel_id}/renew", "post", "Renew a managed channel now",
       errors=ZOHO),
    Op("/admin/channels/{channel_id}/rotate", "post", "Renew with a new token", errors=ZOHO),
    Op("/admin/channels/{channel_id}/disable", "post", "Delete at Zoho and disable here",
       errors=ZOHO),
    Op("/admin/channels/{channel_id}/gaps", "get", "Spans the channel was not live at Zoho",
       answer=ITEMS),
    Op("/admin/events", "get", "Events, newest first; `next` is the cursor",
       query=EVENT_FILTERS, answer=PAGE),
    Op("/admin/events/{event_id}", "get", "One event by id or seq"),
    Op("/admin/requests", "get", "Inbound requests", answer=PAGE, query={
        "status": _choice(RequestStatus), "kind": _choice(Product), "source": TEXT,
        "cursor": TEXT, "limit": LIMIT}),
    Op("/admin/requests/{request_id}", "get", "One inbound request with its body"),
    Op("/admin/subscriptions", "post", "Create a pull subscription (its token is shown once)",
       SubscriptionIn, status=201, errors=TAKEN),
    Op("/admin/subscriptions", "get", "List pull subscriptions", answer=ITEMS),
    Op("/admin/subscriptions/{name}", "delete", "Delete a pull subscription", status=204),
    Op("/admin/subscriptions/{name}/rewind", "post", "Move a subscription's cursor (replay)",
       RewindIn),
    Op("/admin/outbox", "get", "Outbox rows, newest first; `next` is the cursor",
       query={"status": _choice(DeliveryStatus), "sink": TEXT, "cursor": CURSOR,
              "limit": LIMIT}, answer=PAGE),
    Op("/admin/outbox/retry", "post", "Dead deliveries back to pending", RetryIn),
    Op("/admin/outbox/{delivery_id}", "get",
       "One outbox row with every publish attempt (kept across retries)"),
    Op("/admin/events/{event_id}/replay", "post", "Deliver one event again (same id)",
       ReplayOne, status=202),
    Op("/admin/replay", "post", "Deliver every matching event again (same ids)", ReplayIn,
       status=202),
    Op("/admin/reconciliation", "get", "Watches, problems and recent runs",
       query=WATCH_FILTERS, errors={"404": "no such connection"}),
    Op("/admin/reconciliation/watches", "get", "Reconciliation watches with their status",
       query=WATCH_FILTERS, answer=ITEMS, errors={"404": "no such connection"}),
    Op("/admin/reconciliation/watches", "post", "Watch a module or entity of a connection",
       WatchIn, status=201, errors={"404": "no such connection", "409": "already watched"}),
    Op(WATCH, "get", "One watch"),
    Op(WATCH, "patch", "Change a watch's interval, strategy or options", WatchChange),
    Op(WATCH, "delete", "Remove a watch (an automatic one is kept as removed)", status=204),
    Op(f"{WATCH}/pause", "post", "Pause a watch"),
    Op(f"{WATCH}/resume", "post", "Resume a watch: it catches up from its cursor"),
    Op("/admin/reconciliation/runs", "post",
       "Run watches now, or backfill a span (202: follow it at runs/{run_id})", RunIn,
       status=202, errors={"404": "no such connection"}),
    Op("/admin/reconciliation/runs", "get", "Recent runs, newest first", query=WATCH_FILTERS,
       answer=ITEMS, errors={"404": "no such connection"}),
    Op("/admin/reconciliation/runs/{run_id}", "get",
       "One run: state (queued, running, done, failed) and counts"),
    Op("/admin/status", "get",
       "Overview: outages first in `problems` (database, sinks, connections), then sinks, "
       "dead letters, channels at risk, reconciliation"),
    Op("/v1/subscriptions/{name}/events", "get", "Envelopes after a cursor (long-poll `wait`)",
       query={"after": CURSOR, "limit": LIMIT,
              "wait": {"type": "integer", "minimum": 0, "maximum": 30}},
       answer=EVENTS_PAGE, errors={"429": "too many long-polls waiting: retry after "
                                           "Retry-After seconds (or read without wait)"}),
    Op("/v1/subscriptions/{name}/ack", "post", "Acknowledge up to a seq", AckIn),
]  # fmt: skip


def _errors(op: Op) -> dict[str, str]:
    """Every error status `op` can answer, with what it means."""
    if op.path.startswith("/hooks"):
        found = dict(HOOK_ERRORS)
    elif op.path.startswith("/admin"):
        found = dict(ADMIN_ERRORS)
    elif op.path.startswith("/v1"):
        found = dict(SUBSCRIBER_ERRORS)
    else:
        found = {}
    if "{" in op.path and not op.path.startswith("/v1"):
        found.update(MISSING)
    found.update(op.errors)
    found.update(ANY_REQUEST)
    if op.model is not None or op.path.startswith("/hooks"):
        found.update(WITH_BODY)
    return dict(sorted(found.items()))


def _success(op: Op) -> dict[str, Any]:
    if op.status == 204:
        return {"description": "done (no body)"}
    if op.path == "/metrics":
        return {"description": "OK", "content": {"text/plain": {"schema": TEXT}}}
    schema = op.answer or OBJECT
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _body(op: Op) -> dict[str, Any] | None:
    if op.model is not None:
        schema = op.model.model_json_schema()
        # An empty body reads as {}: the body is required only if a field is.
        return {
            "required": bool(schema.get("required")),
            "content": {"application/json": {"schema": schema}},
        }
    if op.path.startswith("/hooks"):
        return {
            "content": {
                "application/json": {"schema": OBJECT},
                "application/x-www-form-urlencoded": {"schema": OBJECT},
                "text/plain": {"schema": TEXT},
            }
        }
    return None


def _query(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter given empty (`?status=`) counts as not given."""
    if schema == TEXT:
        return schema
    return {"anyOf": [schema, EMPTY]}


def _operation_id(op: Op) -> str:
    words = op.path.strip("/").replace("{", "").replace("}", "").replace(".", "_")
    return f"{op.method}_{words.replace('/', '_')}"


def _operation(op: Op) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": TEXT}
        for name in (p.strip("{}") for p in op.path.split("/") if p.startswith("{"))
    ] + [
        {"name": name, "in": "query", "schema": _query(schema)} for name, schema in op.query.items()
    ]
    responses: dict[str, Any] = {str(op.status): _success(op)}
    for status, text in _errors(op).items():
        if status == "503" and op.path == "/readyz":
            content = {"application/json": {"schema": READINESS}}
        else:
            content = {"application/json": {"schema": ERROR}}
        responses[status] = {"description": text, "content": content}
    operation: dict[str, Any] = {
        "summary": op.summary,
        "operationId": _operation_id(op),
        "parameters": params,
        "responses": responses,
    }
    if op.path.startswith("/admin"):
        operation["security"] = [{"admin": []}]
    elif op.path.startswith("/v1/subscriptions"):
        operation["security"] = [{"subscription": []}]
    body = _body(op)
    if body is not None:
        operation["requestBody"] = body
    return operation


def build_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "zoho-bridge", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer"},
                "subscription": {"type": "http", "scheme": "bearer"},
            }
        },
    }


async def openapi(request: Request) -> Response:
    return JSONResponse(build_document())


routes = [Route("/openapi.json", openapi, methods=["GET"])]
