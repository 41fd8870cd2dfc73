"""Pull consumers' API under /v1/subscriptions (per-subscription bearer token)."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import VerificationFailed
from bridge.runtime import Runtime
from bridge.services import subscriptions as service
from bridge.store import subscriptions as store
from bridge.web.inputs import int_param, json_body, optional_int


class AckIn(BaseModel):
    seq: int = Field(ge=0, description="The last seq processed; the next read starts after it.")


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _authorized(request: Request) -> store.SubscriptionInfo:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise VerificationFailed("send the subscription token as 'Authorization: Bearer <token>'")
    return await service.authenticate(_rt(request).engine, request.path_params["name"],
                                      token.strip())  # fmt: skip


async def read_events(request: Request) -> Response:
    sub = await _authorized(request)
    rt = _rt(request)
    items, cursor = await service.read(
        rt.engine,
        rt.new_events,
        sub,
        after=optional_int(request, "after"),
        limit=int_param(request, "limit", 100, 1, 1000),
        wait=float(int_param(request, "wait", 0, 0, int(service.MAX_WAIT))),
    )
    return JSONResponse({"items": items, "next": cursor})


async def ack(request: Request) -> Response:
    sub = await _authorized(request)
    rt = _rt(request)
    body = await json_body(request, AckIn)
    stored = await service.move_cursor(rt.engine, sub.name, body.seq, rt.clock(), forward_only=True)
    return JSONResponse({"acked_seq": stored})


routes = [
    Route("/v1/subscriptions/{name}/events", read_events, methods=["GET"]),
    Route("/v1/subscriptions/{name}/ack", ack, methods=["POST"]),
]
