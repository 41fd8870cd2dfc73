"""Reading a request body with the size limit enforced while reading, not after."""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Receive

from bridge.errors import MalformedRequest, PayloadTooLarge


async def read_body(receive: Receive, content_length: str | None, limit: int) -> bytes:
    """The body from ASGI `receive`, refusing past `limit` bytes without reading further."""
    if content_length is not None:
        if not content_length.isdigit():
            raise MalformedRequest("Content-Length is not a number")
        if int(content_length) > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        body: bytes = message.get("body", b"")  # the usual case: the whole body at once
        if len(body) > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] == "http.disconnect":
            raise MalformedRequest("the client went away before the body was read")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


async def read_limited(request: Request, limit: int) -> bytes:
    return await read_body(request.receive, request.headers.get("content-length"), limit)
