from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox import RunningSandbox, serve_app


class Receiver:
    """A tiny real HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[dict[str, Any]] = []
        self.paths: list[str] = []

    async def hook(self, request: Request) -> Response:
        self.received.append(await request.json())
        self.paths.append(request.url.path)
        return JSONResponse({"ok": True})


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    target = Receiver()
    app = Starlette(routes=[Route("/{path:path}", target.hook, methods=["POST"])])
    async with serve_app(app) as url:
        target.url = url
        yield target


async def access_token(http: httpx.AsyncClient, sandbox: RunningSandbox, org: str) -> str:
    """Mint an access token for `org` straight from the sandbox's accounts server."""
    found = sandbox.state.orgs[org]
    response = await http.post(
        f"{sandbox.accounts_url(found.dc)}/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": found.client_id,
            "client_secret": found.client_secret,
            "refresh_token": next(iter(found.refresh_tokens)),
        },
    )
    token: str = response.json()["access_token"]
    return token
