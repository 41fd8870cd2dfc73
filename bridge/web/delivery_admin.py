"""Admin API for delivery: subscriptions, outbox and dead letters, replay, status."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.domain.delivery import DeliveryStatus
from bridge.domain.events import EventFilter
from bridge.runtime import Runtime
from bridge.services.views import delivery_detail_view, delivery_view, subscription_view
from bridge.web.admin_auth import admin
from bridge.web.input_models import IsoTime, StrictBody
from bridge.web.inputs import choice_param, int_param, json_body, optional_int


class SubscriptionIn(StrictBody):
    name: str
    source: str | None = None
    module: str | None = None
    operation: Literal["created", "updated", "deleted", "changed"] | None = None
    from_start: bool = Field(False, description="Start at the oldest stored event, not now.")


class RewindIn(StrictBody):
    seq: int = Field(ge=0, description="Reads resume after this seq (0: from the start).")


class RetryIn(StrictBody):
    sink: str | None = None
    # Row ids are positive 64-bit integers; the list is bounded so that the query's
    # parameters stay within what SQLite and asyncpg take.
    ids: list[Annotated[int, Field(ge=1, le=2**63 - 1)]] = Field(
        default_factory=list, max_length=1000, description="Only these dead rows."
    )


class ReplayOne(StrictBody):
    sink: str | None = Field(None, description="One push sink; all of them when omitted.")


class ReplayIn(StrictBody):
    source: str | None = None
    module: str | None = None
    record_id: str | None = None
    operation: Literal["created", "updated", "deleted", "changed"] | None = None
    origin: Literal["webhook", "reconciliation", "replay"] | None = None
    product: Literal["crm", "books"] | None = None
    since: IsoTime | None = Field(None, description="Received at or after (ISO 8601, UTC).")
    until: IsoTime | None = Field(None, description="Received before.")
    request_id: str | None = Field(None, description="Only the events of this delivery.")
    sink: str | None = Field(None, description="One push sink; all of them when omitted.")

    def event_filter(self) -> EventFilter:
        return EventFilter(**self.model_dump(exclude={"sink"}))


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@admin
async def create_subscription(request: Request) -> Response:
    body = await json_body(request, SubscriptionIn)
    created = await _rt(request).subscriptions.add(
        body.name, source=body.source, module=body.module, operation=body.operation,
        from_start=body.from_start,
    )  # fmt: skip
    # Shown once: only its digest is stored.
    return JSONResponse(subscription_view(created.info) | {"token": created.token}, 201)


@admin
async def list_subscriptions(request: Request) -> Response:
    items = await _rt(request).subscriptions.all()
    return JSONResponse({"items": [subscription_view(s) for s in items]})


@admin
async def delete_subscription(request: Request) -> Response:
    await _rt(request).subscriptions.remove(request.path_params["name"])
    return Response(status_code=204)


@admin
async def rewind_subscription(request: Request) -> Response:
    body = await json_body(request, RewindIn)
    stored = await _rt(request).subscriptions.rewind(request.path_params["name"], body.seq)
    return JSONResponse({"acked_seq": stored})


@admin
async def list_outbox(request: Request) -> Response:
    limit = int_param(request, "limit", 100, 1, 1000)
    items = await _rt(request).deliveries.find(
        status=choice_param(request, "status", tuple(DeliveryStatus)),
        sink=request.query_params.get("sink") or None,
        before_id=optional_int(request, "cursor"),
        limit=limit,
    )
    following = str(items[-1].id) if len(items) == limit else None
    return JSONResponse({"items": [delivery_view(d) for d in items], "next": following})


@admin
async def get_outbox_row(request: Request) -> Response:
    raw = request.path_params["delivery_id"]
    deliveries = _rt(request).deliveries
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else 0
    found = await deliveries.get(number)
    attempts = (await deliveries.attempts([found.id]))[found.id]
    return JSONResponse(delivery_detail_view(found, attempts))


@admin
async def retry_outbox(request: Request) -> Response:
    body = await json_body(request, RetryIn)
    count = await _rt(request).deliveries.retry(sink=body.sink, ids=body.ids)
    return JSONResponse({"retried": count})


@admin
async def replay_event(request: Request) -> Response:
    body = await json_body(request, ReplayOne)
    sinks = await _rt(request).deliveries.replay_event(request.path_params["event_id"], body.sink)
    return JSONResponse({"queued": len(sinks), "sinks": sinks}, status_code=202)


@admin
async def replay_matching(request: Request) -> Response:
    body = await json_body(request, ReplayIn)
    deliveries = _rt(request).deliveries
    count = await deliveries.replay_matching(body.event_filter(), body.sink)
    sinks = deliveries.target_sinks(body.sink)
    return JSONResponse({"events": count, "sinks": sinks}, status_code=202)


routes = [
    Route("/admin/subscriptions", create_subscription, methods=["POST"]),
    Route("/admin/subscriptions", list_subscriptions, methods=["GET"]),
    Route("/admin/subscriptions/{name}", delete_subscription, methods=["DELETE"]),
    Route("/admin/subscriptions/{name}/rewind", rewind_subscription, methods=["POST"]),
    Route("/admin/outbox", list_outbox, methods=["GET"]),
    Route("/admin/outbox/retry", retry_outbox, methods=["POST"]),
    Route("/admin/outbox/{delivery_id}", get_outbox_row, methods=["GET"]),
    Route("/admin/events/{event_id}/replay", replay_event, methods=["POST"]),
    Route("/admin/replay", replay_matching, methods=["POST"]),
]
