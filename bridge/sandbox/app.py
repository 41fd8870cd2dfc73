"""`create_sandbox_app`: the fake Zoho as one Starlette app.

Every data centre lives under `/dc/{dc}/`: its accounts server at `/dc/{dc}/accounts` and
its API domain at `/dc/{dc}/api`, so one server plays US, EU and the rest, and a token
from one DC is refused by another, as with the real hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from bridge.sandbox import accounts, books_routes, control, coql, crm_records, crm_watch
from bridge.sandbox.callbacks import deliver_forever
from bridge.sandbox.state import SandboxState

_API = [
    Route(
        "/crm/v8/actions/watch",
        crm_watch.watch,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    ),
    Route("/crm/v8/org", crm_records.org_details, methods=["GET"]),
    Route("/crm/v8/coql", coql.coql, methods=["POST"]),
    Route("/crm/v8/{module}/deleted", crm_records.list_deleted, methods=["GET"]),
    Route("/crm/v8/{module}", crm_records.list_records, methods=["GET"]),
    Route("/books/v3/organizations", books_routes.organizations, methods=["GET"]),
    Route("/books/v3/{entity}", books_routes.list_entity, methods=["GET"]),
]


def create_sandbox_app(state: SandboxState) -> Starlette:
    """The sandbox app over `state`; its lifespan runs the callback deliverer."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5.0) as http:
            task = asyncio.create_task(deliver_forever(state, http))
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(
        routes=[
            Mount("/dc/{dc}/accounts", routes=accounts.routes),
            Mount("/dc/{dc}/api", routes=_API),
            Mount("/_sandbox", routes=control.routes),
        ],
        lifespan=lifespan,
    )
    app.state.sandbox = state
    return app
