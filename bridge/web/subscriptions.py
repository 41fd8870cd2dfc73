"""Pull consumers' API under /v1/subscriptions (per-subscription bearer token)."""

from __future__ import annotations

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.errors import VerificationFailed
from bridge.runtime import Runtime
from bridge.services.records import SubscriptionInfo
from bridge.services.subscriptions import MAX_WAIT, TooManyLongPolls
from bridge.web.input_models import StrictBody
from bridge.web.inputs import int_param, json_body, optional_int


class AckIn(StrictBody):
    seq: int = Field(ge=0, description="The last seq processed; the next read starts after it.")


def _rt(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def _authorized(request: Request, *, current: bool) -> SubscriptionInfo:
    """The subscription the request names, if its token is right; `current=False`: its
    acknowledged position may be behind (see `SubscriptionService`)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise VerificationFailed("send the subscription token as 'Authorization: Bearer <token>'")
    return await _rt(request).subscriptions.authenticate(
        request.path_params["name"], token.strip(), current=current
    )


async def read_events(request: Request) -> Response:
    # A read without `after` starts at the acknowledged position: read it afresh.
    sub = await _authorized(request, current=not request.query_params.get("after"))
    try:
        items, cursor = await _rt(request).subscriptions.read(
            sub,
            after=optional_int(request, "after"),
            limit=int_param(request, "limit", 100, 1, 1000),
            wait=float(int_param(request, "wait", 0, 0, int(MAX_WAIT))),
        )
    except TooManyLongPolls as exc:
        # Not an error of the consumer's: it asked in the right way at a busy moment.
        return JSONResponse(
            {"error": "too_many_requests", "message": exc.message},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after)},
        )
    # The envelopes come as UTF-8 JSON from the database: joined, never parsed again.
    body = b'{"items":[' + b",".join(items) + b'],"next":%d}' % cursor
    return Response(body, media_type="application/json")


async def ack(request: Request) -> Response:
    sub = await _authorized(request, current=False)
    body = await json_body(request, AckIn)
    stored = await _rt(request).subscriptions.ack(sub.name, body.seq)
    return JSONResponse({"acked_seq": stored})


routes = [
    Route("/v1/subscriptions/{name}/events", read_events, methods=["GET"]),
    Route("/v1/subscriptions/{name}/ack", ack, methods=["POST"]),
]
