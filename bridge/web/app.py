"""The app factory. Nothing is opened at import time: the lifespan owns the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from starlette.applications import Starlette

from bridge.runtime import open_runtime, utc_now
from bridge.settings import Settings
from bridge.web import admin, delivery_admin, health, hooks, openapi, subscriptions
from bridge.web.errors import HANDLERS


def create_app(settings: Settings, *, clock: Callable[[], datetime] = utc_now) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, clock=clock)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    return Starlette(
        routes=[
            *hooks.routes,
            *health.routes,
            *admin.routes,
            *delivery_admin.routes,
            *subscriptions.routes,
            *openapi.routes,
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
