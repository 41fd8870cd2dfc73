"""`create_sandbox_app`: the fake Zoho as one Starlette app.

Every data centre lives under `/dc/{dc}/`: its accounts server at `/dc/{dc}/accounts` and
its API domain at `/dc/{dc}/api`, so one server plays US, EU and the rest, and a token
from one DC is refused by another, as with the real hosts. Every answer carries a `Date`
header from the sandbox's clock plus `state.date_skew`: Zoho's clock, not the bridge's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.utils import formatdate

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.sandbox import (
    accounts,
    books_routes,
    control,
    control_faults,
    coql,
    crm_deleted,
    crm_records,
    crm_watch,
)
from bridge.sandbox.callbacks import deliver_forever
from bridge.sandbox.state import SandboxState

_API = [
    Route(
        "/crm/v8/actions/watch",
        crm_watch.watch,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    ),
    Route("/crm/v8/org", crm_deleted.org_details, methods=["GET"]),
    Route("/crm/v8/coql", coql.coql, methods=["POST"]),
    Route("/crm/v8/{module}/deleted", crm_deleted.list_deleted, methods=["GET"]),
    Route("/crm/v8/{module}", crm_records.list_records, methods=["GET"]),
    Route("/books/v3/organizations", books_routes.organizations, methods=["GET"]),
    Route(books_routes.FAILED_ACTIONS_PATH, books_routes.failed_actions, methods=["GET"]),
    Route("/books/v3/{entity}/{record_id}", books_routes.get_record, methods=["GET"]),
    Route("/books/v3/{entity}", books_routes.list_entity, methods=["GET"]),
]


class ZohoDate:
    """Sets `Date` on every answer from the sandbox clock plus `date_skew` (serve the app
    with uvicorn's own Date header off, as `serve_app(..., date_header=False)` does)."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def dated(message: Message) -> None:
            if message["type"] == "http.response.start":
                when = self.state.clock.now() + self.state.date_skew
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                headers.append((b"date", formatdate(int(when), usegmt=True).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, dated)


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
            Mount("/_sandbox", routes=[*control.routes, *control_faults.routes]),
        ],
        middleware=[Middleware(ZohoDate, state=state)],
        lifespan=lifespan,
    )
    app.state.sandbox = state
    return app
