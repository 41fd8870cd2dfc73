"""The app factory. Nothing is opened at import time: the lifespan owns the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from bridge.runtime import open_runtime, utc_now
from bridge.settings import Settings
from bridge.web import (
    admin,
    admin_channels,
    admin_connections,
    admin_reconcile,
    console,
    console_deliveries,
    console_overview,
    console_requests,
    console_setup,
    dashboard,
    delivery_admin,
    front,
    health,
    hooks,
    openapi,
    status,
    subscriptions,
)
from bridge.web.errors import HANDLERS
from bridge.web.routing import one_route_per_path
from bridge.web.statuses import status_for


class BridgeApp(Starlette):
    """Starlette, behind the front door (web/front.py): the header limit, webhook
    deliveries answered before its middleware and router (they are most of the traffic,
    and neither adds anything to them), and the last line of defence for the rest."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await front.serve_http(self, scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings, *, clock: Callable[[], datetime] = utc_now, relay_child: bool = False
) -> Starlette:
    """The bridge's ASGI app; `relay_child`: deliver from a child process (`serve`)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await open_runtime(
            settings, clock=clock, status_of=status_for, relay_child=relay_child
        )
        app.state.runtime = runtime
        app.state.background_runs = admin_reconcile.BackgroundRuns()
        if settings.scheduler:
            await runtime.start_scheduler()
        try:
            yield
        finally:
            # Runs started over HTTP first: they need the database to be queued again.
            await app.state.background_runs.close()
            await runtime.close()

    return BridgeApp(
        routes=one_route_per_path(
            [
                *hooks.routes,
                *health.routes,
                *admin.routes,
                *admin_connections.routes,
                *admin_channels.routes,
                *admin_reconcile.routes,
                *delivery_admin.routes,
                *subscriptions.routes,
                *status.routes,
                *dashboard.routes,
                *console.routes,
                *console_deliveries.routes,
                *console_overview.routes,
                *console_requests.routes,
                *console_setup.routes,
                *openapi.routes,
            ]
        ),
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
