"""The admin API for reconciliation: /admin/reconciliation (watches, runs, the overview).

A run asked for over HTTP executes in this server process, as a task `BackgroundRuns`
holds until it ends; shutdown cancels it, and the run is queued again for whichever
replica looks next (`RunService.execute`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import structlog
from pydantic import ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import NotFound
from bridge.runtime import Runtime
from bridge.services.reconcile_runs import RunService
from bridge.services.watches import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS, OPTIONS
from bridge.web.admin_auth import admin
from bridge.web.input_models import IsoTime, StrictBody
from bridge.web.inputs import json_body

log = structlog.get_logger(__name__)

Strategy = Literal["filter", "sorted", "scan"]
_INTERVAL = (f"Seconds between runs, {MIN_INTERVAL_SECONDS}-{MAX_INTERVAL_SECONDS} "
             "(default: BRIDGE_RECONCILE_CRM_MINUTES or _BOOKS_MINUTES).")  # fmt: skip
_STRATEGY = "Books listing strategy; probed on the first run when omitted."
_OPTIONS = f"Any of {', '.join(OPTIONS)}, e.g. {{'full_records': false}}."
_LARGEST_ID = 2**63 - 1


class WatchIn(StrictBody):
    model_config = ConfigDict(extra="forbid")

    connection: str
    product: Literal["crm", "books"]
    module: str = Field(description="CRM module API name (Leads) or Books entity (invoices).")
    interval_seconds: int | None = Field(None, description=_INTERVAL)
    strategy: Strategy | None = Field(None, description=_STRATEGY)
    options: dict[str, Any] | None = Field(None, description=_OPTIONS)


class WatchChange(StrictBody):
    model_config = ConfigDict(extra="forbid")

    interval_seconds: int | None = Field(None, description=_INTERVAL)
    strategy: Strategy | None = Field(None, description=_STRATEGY)
    options: dict[str, Any] | None = Field(None, description=f"Merged in. {_OPTIONS}")


class RunIn(StrictBody):
    # A misspelt `dry_run` must not quietly turn a dry run into a real one.
    model_config = ConfigDict(extra="forbid")

    connection: str | None = Field(None, description="Only this connection's watches.")
    module: str | None = Field(None, description="Only watches of this module or entity.")
    since: IsoTime | None = Field(
        None, description="Backfill changes from (ISO 8601 with offset); omit to run now."
    )
    until: IsoTime | None = Field(None, description="Backfill up to (needs since).")
    dry_run: bool = Field(False, description="Backfill only: count what would be emitted.")


class BackgroundRuns:
    """Runs started over HTTP, executing in this process. Holding the tasks keeps them
    from being garbage-collected mid-run; `close` cancels them at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, runs: RunService, run_id: str) -> None:
        task = asyncio.create_task(self._execute(runs, run_id), name=f"reconcile-run-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _execute(runs: RunService, run_id: str) -> None:
        try:
            await runs.execute(run_id)
        except Exception as exc:
            # The service has marked the run failed; its type only (the message may hold data).
            log.error("reconciliation run crashed", run=run_id, error_type=type(exc).__name__)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _watch_id(request: Request) -> int:
    raw: str = request.path_params["watch_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or not 0 < int(raw) <= _LARGEST_ID:
        raise NotFound("no such watch: watch ids are whole numbers (see GET /admin/reconciliation)")
    return int(raw)


async def _filters(request: Request) -> tuple[str | None, str | None]:
    connection = request.query_params.get("connection") or None
    if connection is not None:
        await _rt(request).connections.get(connection)  # a typo is a 404, not an empty list
    return connection, request.query_params.get("module") or None


@admin
async def overview(request: Request) -> Response:
    connection, module = await _filters(request)
    rt = _rt(request)
    return JSONResponse(
        {
            "watches": await rt.watches.views(connection=connection, module=module),
            "problems": await rt.watches.problems(connection=connection, module=module),
            "runs": await rt.runs.views(connection=connection, module=module),
            "budgets": await rt.budgets.views([connection] if connection is not None else None),
        }
    )


@admin
async def list_watches(request: Request) -> Response:
    connection, module = await _filters(request)
    items = await _rt(request).watches.views(connection=connection, module=module)
    return JSONResponse({"items": items})


@admin
async def add_watch(request: Request) -> Response:
    body = await json_body(request, WatchIn)
    watches = _rt(request).watches
    created = await watches.add(
        body.connection, body.product, body.module, interval_seconds=body.interval_seconds,
        strategy=body.strategy, options=body.options,
    )  # fmt: skip
    return JSONResponse(await watches.view_one(created.id), status_code=201)


@admin
async def get_watch(request: Request) -> Response:
    return JSONResponse(await _rt(request).watches.view_one(_watch_id(request)))


@admin
async def change_watch(request: Request) -> Response:
    watch_id = _watch_id(request)
    body = await json_body(request, WatchChange)
    watches = _rt(request).watches
    await watches.change(watch_id, **body.model_dump())
    return JSONResponse(await watches.view_one(watch_id))


@admin
async def remove_watch(request: Request) -> Response:
    await _rt(request).watches.remove(_watch_id(request))
    return Response(status_code=204)


@admin
async def pause_watch(request: Request) -> Response:
    watches = _rt(request).watches
    watch = await watches.pause(_watch_id(request))
    return JSONResponse(await watches.view_one(watch.id))


@admin
async def resume_watch(request: Request) -> Response:
    watches = _rt(request).watches
    watch = await watches.resume(_watch_id(request))
    return JSONResponse(await watches.view_one(watch.id))


@admin
async def start_run(request: Request) -> Response:
    body = await json_body(request, RunIn)
    runs = _rt(request).runs
    run = await runs.queue(**body.model_dump())
    background: BackgroundRuns = request.app.state.background_runs
    background.start(runs, run.id)
    return JSONResponse(
        {"id": run.id, "state": run.state},
        status_code=202,
        headers={"Location": f"/admin/reconciliation/runs/{run.id}"},
    )


@admin
async def list_runs(request: Request) -> Response:
    connection, module = await _filters(request)
    return JSONResponse(
        {"items": await _rt(request).runs.views(connection=connection, module=module)}
    )


@admin
async def get_run(request: Request) -> Response:
    runs = _rt(request).runs
    return JSONResponse(runs.view(await runs.get(request.path_params["run_id"])))


_WATCH = "/admin/reconciliation/watches/{watch_id}"
routes = [
    Route("/admin/reconciliation", overview, methods=["GET"]),
    Route("/admin/reconciliation/watches", list_watches, methods=["GET"]),
    Route("/admin/reconciliation/watches", add_watch, methods=["POST"]),
    Route(_WATCH, get_watch, methods=["GET"]),
    Route(_WATCH, change_watch, methods=["PATCH"]),
    Route(_WATCH, remove_watch, methods=["DELETE"]),
    Route(f"{_WATCH}/pause", pause_watch, methods=["POST"]),
    Route(f"{_WATCH}/resume", resume_watch, methods=["POST"]),
    Route("/admin/reconciliation/runs", start_run, methods=["POST"]),
    Route("/admin/reconciliation/runs", list_runs, methods=["GET"]),
    Route("/admin/reconciliation/runs/{run_id}", get_run, methods=["GET"]),
]
