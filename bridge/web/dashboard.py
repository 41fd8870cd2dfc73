"""The HTML dashboard at /admin/: a static page that reads the admin API in the browser.

The page and its assets hold no data, so they are served without the admin token; every
call the page makes carries the token the operator types in. A strict Content-Security-
Policy allows only this origin's script and style (no inline code, no third parties).
"""

from __future__ import annotations

from importlib import resources

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ASSETS = {
    "dashboard.html": "text/html; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> Response:
    if name not in ASSETS:
        raise HTTPException(404, f"no asset {name}")
    body = resources.files("bridge.web").joinpath("static", name).read_bytes()
    return Response(body, media_type=ASSETS[name], headers=SECURITY_HEADERS)


async def page(request: Request) -> Response:
    return _asset("dashboard.html")


async def asset(request: Request) -> Response:
    return _asset(request.path_params["name"])


routes = [
    Route("/admin/", page, methods=["GET"]),
    Route("/admin/static/{name}", asset, methods=["GET"]),
]
