from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.sandbox import RunningSandbox, SandboxState, serve_app


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


class Api:
    """An authorised client for the sandbox org "acme" (Books organization_id "777")."""

    def __init__(self, http: httpx.AsyncClient, sandbox: RunningSandbox) -> None:
        self.http = http
        self.sandbox = sandbox
        self.base = sandbox.api_domain()

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    async def crm(
        self, module: str, headers: dict[str, str] | None = None, **params: str
    ) -> httpx.Response:
        return await self.http.get(f"{self.base}/crm/v8/{module}", params=params, headers=headers)

    async def coql(self, query: str) -> httpx.Response:
        return await self.http.post(f"{self.base}/crm/v8/coql", json={"select_query": query})

    async def books(self, path: str, **params: str) -> httpx.Response:
        return await self.http.get(
            f"{self.base}/books/v3/{path}", params={"organization_id": "777", **params}
        )


@pytest.fixture
async def api(sandbox: RunningSandbox, http: httpx.AsyncClient) -> Api:
    """Org "acme" with a token, on a frozen sandbox clock (time moves by `advance` only)."""
    sandbox.state.clock.freeze()
    sandbox.state.add_org("acme", organization_id="777")
    token = await access_token(http, sandbox, "acme")
    http.headers["Authorization"] = f"Zoho-oauthtoken {token}"
    return Api(http, sandbox)
