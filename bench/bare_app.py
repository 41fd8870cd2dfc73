"""The baseline: a bare Starlette endpoint that reads the body and answers JSON."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def hook(request: Request) -> Response:
    await request.body()
    return JSONResponse({"status": "accepted"})


app = Starlette(routes=[Route("/hooks/crm", hook, methods=["POST"]),
                        Route("/hooks/books/{source}", hook, methods=["POST"])])  # fmt: skip
