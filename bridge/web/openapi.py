"""The OpenAPI document at /openapi.json, built from one table of operations."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge import __version__
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
}
HOOK_ERRORS = {
    "400": "malformed body",
    "401": "failed verification",
    "404": "unknown source or channel",
    "413": "body over BRIDGE_MAX_BODY_BYTES",
    "415": "unsupported content type",
    "503": "database unavailable: retry",
}
ADMIN_ERRORS = {"400": "invalid input", "401": "wrong admin token", "403": "admin API disabled"}

RECONCILE_WATCH = "/admin/reconciliation/watches/{watch_id}"
SUBSCRIBER_ERRORS = {"400": "invalid input", "401": "unknown subscription or wrong token"}
EVENT_FILTERS = ["source", "module", "record_id", "operation", "origin", "product", "since",
                 "until", "request_id", "cursor", "limit"]  # fmt: skip

# path, method, summary, request model, query parameters, extra error statuses
OPERATIONS: list[tuple[str, str, str, type[BaseModel] | None, list[str], dict[str, str]]] = [
    ("/hooks/crm", "post", "Zoho CRM notification callback", None, [], HOOK_ERRORS),
    ("/hooks/books/{source}", "post", "Zoho Books workflow webhook", None,
     ["token", "event", "entity"], HOOK_ERRORS),
    ("/hooks/books/{source}", "put", "Zoho Books workflow webhook (PUT)", None,
     ["token", "event", "entity"], HOOK_ERRORS),
    ("/hooks/books/{source}", "delete", "Zoho Books workflow webhook (DELETE)", None,
     ["token", "event", "entity"], HOOK_ERRORS),
    ("/healthz", "get", "Liveness", None, [], {}),
    ("/readyz", "get", "Readiness: database reachable and schema current", None, [],
     {"503": "not ready"}),
    ("/metrics", "get", "Prometheus metrics", None, [], {}),
    ("/admin/sources", "post", "Create a Books source", SourceIn, [], ADMIN_ERRORS),
    ("/admin/sources", "get", "List Books sources", None, [], ADMIN_ERRORS),
    ("/admin/sources/{name}", "get", "One Books source", None, [], ADMIN_ERRORS),
    ("/admin/sources/{name}", "patch", "Rotate tokens/secrets, enable/disable", SourceChange,
     [], ADMIN_ERRORS),
    ("/admin/channels/import", "post", "Import a CRM channel created elsewhere", ChannelImport,
     [], ADMIN_ERRORS),
    ("/admin/channels", "get", "List CRM channels", None, [], ADMIN_ERRORS),
    ("/admin/channels/{channel_id}", "get", "One CRM channel", None, [], ADMIN_ERRORS),
    ("/admin/channels/{channel_id}/tokens", "post", "Add a channel token (rotation)",
     ChannelTokenIn, [], ADMIN_ERRORS),
    ("/admin/connections", "post", "Add a Zoho connection (secrets stored encrypted)",
     ConnectionIn, [], ADMIN_ERRORS),
    ("/admin/connections", "get", "List connections (never their secrets)", None, [],
     ADMIN_ERRORS),
    ("/admin/connections/{name}", "get", "One connection", None, [], ADMIN_ERRORS),
    ("/admin/connections/{name}", "patch", "New refresh token/secret (resumes), or status",
     ConnectionChange, [], ADMIN_ERRORS),
    ("/admin/connections/{name}", "delete", "Remove a connection without live channels", None,
     [], ADMIN_ERRORS),
    ("/admin/connections/{name}/check", "post", "One cheap authenticated call to Zoho", None,
     [], {**ADMIN_ERRORS, "502": "Zoho refused (needs_reauth) or failed"}),
    ("/admin/channels", "post", "Create a managed channel at Zoho", ChannelCreate, [],
     {**ADMIN_ERRORS, "502": "Zoho refused; its per-item errors verbatim"}),
    ("/admin/channels/{channel_id}/renew", "post", "Renew a managed channel now", None, [],
     ADMIN_ERRORS),
    ("/admin/channels/{channel_id}/rotate", "post", "Renew with a new token", None, [],
     ADMIN_ERRORS),
    ("/admin/channels/{channel_id}/disable", "post", "Delete at Zoho and disable here", None,
     [], ADMIN_ERRORS),
    ("/admin/channels/{channel_id}/gaps", "get", "Spans the channel was not live at Zoho",
     None, [], ADMIN_ERRORS),
    ("/admin/events", "get", "Events, newest first; `next` is the cursor", None, EVENT_FILTERS,
     ADMIN_ERRORS),
    ("/admin/events/{event_id}", "get", "One event by id or seq", None, [], ADMIN_ERRORS),
    ("/admin/requests", "get", "Inbound requests", None,
     ["status", "kind", "source", "cursor", "limit"], ADMIN_ERRORS),
    ("/admin/requests/{request_id}", "get", "One inbound request with its body", None, [],
     ADMIN_ERRORS),
    ("/admin/subscriptions", "post", "Create a pull subscription (its token is shown once)",
     SubscriptionIn, [], ADMIN_ERRORS),
    ("/admin/subscriptions", "get", "List pull subscriptions", None, [], ADMIN_ERRORS),
    ("/admin/subscriptions/{name}", "delete", "Delete a pull subscription", None, [],
     ADMIN_ERRORS),
    ("/admin/subscriptions/{name}/rewind", "post", "Move a subscription's cursor (replay)",
     RewindIn, [], ADMIN_ERRORS),
    ("/admin/outbox", "get", "Outbox rows, newest first; `next` is the cursor", None,
     ["status", "sink", "cursor", "limit"], ADMIN_ERRORS),
    ("/admin/outbox/retry", "post", "Dead deliveries back to pending", RetryIn, [],
     ADMIN_ERRORS),
    ("/admin/events/{event_id}/replay", "post", "Deliver one event again (same id)",
     ReplayOne, [], ADMIN_ERRORS),
    ("/admin/replay", "post", "Deliver every matching event again (same ids)", ReplayIn, [],
     ADMIN_ERRORS),
    ("/admin/reconciliation", "get", "Watches, problems and recent runs", None,
     ["connection", "module"], ADMIN_ERRORS),
    ("/admin/reconciliation/watches", "get", "Reconciliation watches with their status", None,
     ["connection", "module"], ADMIN_ERRORS),
    ("/admin/reconciliation/watches", "post", "Watch a module or entity of a connection",
     WatchIn, [], {**ADMIN_ERRORS, "404": "unknown connection", "409": "already watched"}),
    (RECONCILE_WATCH, "get", "One watch", None, [], {**ADMIN_ERRORS, "404": "unknown watch"}),
    (RECONCILE_WATCH, "patch", "Change a watch's interval, strategy or options", WatchChange,
     [], {**ADMIN_ERRORS, "404": "unknown watch"}),
    (RECONCILE_WATCH, "delete", "Remove a watch (an automatic one is kept as removed)", None,
     [], {**ADMIN_ERRORS, "404": "unknown watch"}),
    (f"{RECONCILE_WATCH}/pause", "post", "Pause a watch", None, [],
     {**ADMIN_ERRORS, "404": "unknown watch"}),
    (f"{RECONCILE_WATCH}/resume", "post", "Resume a watch: it catches up from its cursor",
     None, [], {**ADMIN_ERRORS, "404": "unknown watch"}),
    ("/admin/reconciliation/runs", "post",
     "Run watches now, or backfill a span (202: follow it at runs/{run_id})", RunIn, [],
     {**ADMIN_ERRORS, "404": "unknown connection"}),
    ("/admin/reconciliation/runs", "get", "Recent runs, newest first", None,
     ["connection", "module"], ADMIN_ERRORS),
    ("/admin/reconciliation/runs/{run_id}", "get", "One run: state (queued, running, done, "
     "failed) and counts", None, [], {**ADMIN_ERRORS, "404": "unknown run"}),
    ("/admin/status", "get", "Overview: sinks, dead letters, channels at risk", None, [],
     ADMIN_ERRORS),
    ("/v1/subscriptions/{name}/events", "get", "Envelopes after a cursor (long-poll `wait`)",
     None, ["after", "limit", "wait"], SUBSCRIBER_ERRORS),
    ("/v1/subscriptions/{name}/ack", "post", "Acknowledge up to a seq", AckIn, [],
     SUBSCRIBER_ERRORS),
]  # fmt: skip


def _operation(
    path: str, summary: str, model: type[BaseModel] | None, query: list[str], errors: dict[str, str]
) -> dict[str, Any]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in (p.strip("{}") for p in path.split("/") if p.startswith("{"))
    ] + [{"name": name, "in": "query", "schema": {"type": "string"}} for name in query]
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": ACCEPTED if path.startswith("/hooks")
                                             else {"type": "object"}}},
        }
    }  # fmt: skip
    for status, text in errors.items():
        responses[status] = {
            "description": text,
            "content": {"application/json": {"schema": ERROR}},
        }
    operation: dict[str, Any] = {"summary": summary, "parameters": params, "responses": responses}
    if path.startswith("/admin"):
        operation["security"] = [{"admin": []}]
    elif path.startswith("/v1/subscriptions"):
        operation["security"] = [{"subscription": []}]
    if model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    elif path.startswith("/hooks"):
        operation["requestBody"] = {
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
            }
        }
    return operation


def build_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for path, method, summary, model, query, errors in OPERATIONS:
        paths.setdefault(path, {})[method] = _operation(path, summary, model, query, errors)
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
