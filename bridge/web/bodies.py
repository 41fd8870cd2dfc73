"""Reading a request body with the size limit enforced while reading, not after."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from bridge.errors import MalformedRequest, PayloadTooLarge


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise MalformedRequest("Content-Length is not a number")
        if int(declared) > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise MalformedRequest("the client went away before the body was read") from None
    return b"".join(chunks)
