"""What every console page shares: templates, the session check, CSRF, error pages.

The session cookie and CSRF tokens are derived from the admin token
(domain/console_session.py); pages send the dashboard's strict Content-Security-Policy.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from bridge.domain.console_session import csrf_is_valid, csrf_token, session_is_valid
from bridge.errors import BridgeError, NotFound
from bridge.runtime import Runtime
from bridge.web.dashboard import SECURITY_HEADERS

PREFIX = "/admin/ui"
COOKIE = "zb_console"
PAGE_SIZE = 50

_templates = Environment(
    loader=PackageLoader("bridge.web", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def pretty(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def iso(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


_templates.filters["pretty"] = pretty
_templates.filters["iso"] = iso

Page = Callable[[Request, Runtime, str], Awaitable[Response]]


def render(name: str, http_status: int = 200, /, **context: Any) -> HTMLResponse:
    body = _templates.get_template(name).render(prefix=PREFIX, **context)
    return HTMLResponse(body, status_code=http_status, headers=SECURITY_HEADERS)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def admin_token(runtime: Runtime) -> str | None:
    token = runtime.settings.admin_token
    return None if token is None else token.get_secret_value()


def disabled() -> HTMLResponse:
    return render("console/message.html", 403, title="Console disabled",
                   message="The console and the admin API are off: set BRIDGE_ADMIN_TOKEN "
                           "and restart the bridge.")  # fmt: skip


def page(handler: Page) -> Callable[[Request], Awaitable[Response]]:
    """Run `handler` for a signed-in operator (else to the sign-in page); a POST must carry
    the session's CSRF token. Domain errors become a page with the reason."""

    async def endpoint(request: Request) -> Response:
        runtime = runtime_of(request)
        token = admin_token(runtime)
        if token is None:
            return disabled()
        session = request.cookies.get(COOKIE, "")
        if not session_is_valid(token, session, time.time()):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': target})}", 303)
        if request.method == "POST":
            form = await request.form()
            if not csrf_is_valid(token, session, str(form.get("csrf", ""))):
                return render("console/message.html", 403, title="Form expired",
                               message="This form is from another session: go back, reload "
                                       "the page and try again.")  # fmt: skip
        try:
            return await handler(request, runtime, csrf_token(token, session))
        except NotFound as exc:
            return render("console/message.html", 404, title="Not found", message=str(exc),
                           signed_in=True)  # fmt: skip
        except BridgeError as exc:
            return render("console/message.html", 400, title="Cannot do that",
                           message=str(exc), signed_in=True)  # fmt: skip

    return endpoint
