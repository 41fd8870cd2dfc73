"""The operator console under /admin/ui: server-rendered pages (Jinja2, no script needed
for anything but local times) over the same services as the admin API.

Signing in posts the admin token once; the browser then holds a session cookie
(HttpOnly, SameSite=Strict, path /admin/ui) derived from it (domain/console_session.py).
Every form that changes something carries a CSRF token and is confirmed on its own page
first. The pages send the dashboard's strict Content-Security-Policy.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge.domain.console_session import SESSION_SECONDS, new_session
from bridge.domain.envelope import build_envelope
from bridge.domain.events import EventFilter, Operation, Origin, Product
from bridge.errors import InvalidInput, NotFound
from bridge.runtime import Runtime
from bridge.services.views import request_view
from bridge.web.console_kit import (
    COOKIE,
    PAGE_SIZE,
    PREFIX,
    admin_token,
    disabled,
    page,
    render,
    runtime_of,
)
from bridge.web.inputs import event_filter, optional_int

FILTERS = ("source", "module", "record_id", "operation", "origin", "product", "since", "until",
           "range", "request_id")  # fmt: skip
RANGES = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "24h": timedelta(days=1),
          "7d": timedelta(days=7)}  # fmt: skip


def _safe_next(target: str) -> str:
    """Only a console path: never another site (an open redirect)."""
    if target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


async def login_form(request: Request) -> Response:
    if admin_token(runtime_of(request)) is None:
        return disabled()
    return render("console/login.html", next=_safe_next(request.query_params.get("next", "")))


async def login(request: Request) -> Response:
    token = admin_token(runtime_of(request))
    if token is None:
        return disabled()
    form = await request.form()
    target = _safe_next(str(form.get("next", "")))
    presented = str(form.get("token", "")).strip().encode("utf-8", "replace")
    if not hmac.compare_digest(presented, token.encode("utf-8")):
        return render("console/login.html", 401, next=target,
                       error="That is not the admin token (BRIDGE_ADMIN_TOKEN).")  # fmt: skip
    answer = RedirectResponse(target, 303)
    answer.set_cookie(
        COOKIE, new_session(token, time.time()), max_age=SESSION_SECONDS, path=PREFIX,
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )  # fmt: skip
    return answer


async def _logout(request: Request, runtime: Runtime, csrf: str) -> Response:
    answer = RedirectResponse(f"{PREFIX}/login", 303)
    answer.delete_cookie(COOKIE, path=PREFIX)
    return answer


def _filter(request: Request, now: datetime) -> tuple[EventFilter, dict[str, str]]:
    """The events filter from the query string (the admin API's, with the form's times
    read as UTC and a `range` of the last 15 min ... 7 d), and the values to show back."""
    q = request.query_params
    shown = {k: q.get(k, "") for k in FILTERS}
    where = event_filter(request, naive_is_utc=True)
    if q.get("range"):
        if q["range"] not in RANGES:
            raise InvalidInput(f"range must be one of {', '.join(RANGES)}")
        where = replace(where, since=now - RANGES[q["range"]])
    return where, shown


async def _events(request: Request, runtime: Runtime, csrf: str) -> Response:
    now = runtime.clock()
    try:
        where, shown = _filter(request, now)
        cursor = optional_int(request, "cursor")
    except InvalidInput as exc:
        return render("console/events.html", 400, csrf=csrf, events=[], shown={},
                       error=str(exc), following=None, now=now, signed_in=True)  # fmt: skip
    events = await runtime.events.find(where, before_seq=cursor, limit=PAGE_SIZE)
    given = {k: v for k, v in shown.items() if v}
    following = None
    if len(events) == PAGE_SIZE:
        following = urlencode({**given, "cursor": str(events[-1].seq)})
    return render("console/events.html", csrf=csrf, events=events, shown=shown, error=None,
                   following=following, first_page=cursor is None, newest=urlencode(given),
                   now=now,
                   operations=tuple(Operation), origins=tuple(Origin), products=tuple(Product),
                   ranges=tuple(RANGES), signed_in=True)  # fmt: skip


async def _event(request: Request, runtime: Runtime, csrf: str) -> Response:
    event = await runtime.events.get(request.path_params["event_id"])
    inbound = None
    if event.request_id is not None:
        try:
            inbound = request_view(await runtime.requests.get(event.request_id), body_limit=None)
        except NotFound:
            inbound = None  # purged by retention
    deliveries = await runtime.deliveries.of_event(event.seq)
    attempts = await runtime.deliveries.attempts([d.id for d in deliveries])
    return render("console/event.html", csrf=csrf, event=event, envelope=build_envelope(event),
                  inbound=inbound, deliveries=deliveries, attempts=attempts,
                  sinks=runtime.deliveries.push_sinks,
                  replayed=request.query_params.get("replayed"), signed_in=True)  # fmt: skip


async def _confirm_replay(request: Request, runtime: Runtime, csrf: str) -> Response:
    event = await runtime.events.get(request.path_params["event_id"])
    sink = request.query_params.get("sink") or None
    sinks = runtime.deliveries.target_sinks(sink)
    if not sinks:
        raise InvalidInput("no push sink is configured (BRIDGE_SINKS): nothing to replay to")
    return render("console/confirm_replay.html", csrf=csrf, event=event, sink=sink or "",
                   sinks=sinks, signed_in=True)  # fmt: skip


async def _replay(request: Request, runtime: Runtime, csrf: str) -> Response:
    form = await request.form()
    sink = str(form.get("sink", "")) or None
    sinks = runtime.deliveries.target_sinks(sink)
    if not sinks:
        raise InvalidInput("no push sink is configured (BRIDGE_SINKS): nothing to replay to")
    event_id = request.path_params["event_id"]
    queued = await runtime.deliveries.replay_event(event_id, sink)
    target = f"{PREFIX}/events/{event_id}?{urlencode({'replayed': ', '.join(queued)})}"
    return RedirectResponse(target, 303)


async def _home(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", 307)


routes = [
    Route(PREFIX, _home, methods=["GET"]),
    Route(f"{PREFIX}/login", login_form, methods=["GET"]),
    Route(f"{PREFIX}/login", login, methods=["POST"]),
    Route(f"{PREFIX}/logout", page(_logout), methods=["POST"]),
    Route(f"{PREFIX}/events", page(_events), methods=["GET"]),
    Route(f"{PREFIX}/events/{{event_id}}", page(_event), methods=["GET"]),
    Route(f"{PREFIX}/events/{{event_id}}/replay", page(_confirm_replay), methods=["GET"]),
    Route(f"{PREFIX}/events/{{event_id}}/replay", page(_replay), methods=["POST"]),
]
