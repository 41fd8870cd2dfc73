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
    dashboard,
    delivery_admin,
    health,
    hooks,
    openapi,
    status,
    subscriptions,
)
from bridge.web.errors import HANDLERS
from bridge.web.statuses import status_for


class BridgeApp(Starlette):
    """Starlette, with webhook deliveries answered before its middleware and router: they
    are most of the traffic, and neither adds anything to them (they catch their own errors)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            target = hooks.match(path, scope["method"])
            if target is not None:
                scope["app"] = self
                await hooks.handle(scope, receive, send, self.state.runtime, *target)
                return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, clock=clock, status_of=status_for)
        app.state.runtime = runtime
        if settings.scheduler:
            await runtime.start_scheduler()
        try:
            yield
        finally:
            await runtime.close()

    return BridgeApp(
        routes=[
            *hooks.routes,
            *health.routes,
            *admin.routes,
            *admin_connections.routes,
            *admin_channels.routes,
            *delivery_admin.routes,
            *subscriptions.routes,
            *status.routes,
            *dashboard.routes,
            *openapi.routes,
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
