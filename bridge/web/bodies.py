"""A request within its limits: headers no larger than BRIDGE_MAX_HEADER_BYTES, a body
no larger than its limit (enforced while reading, not after) and read within
BRIDGE_BODY_TIMEOUT_SECONDS."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Generator
from types import CoroutineType
from typing import Any

from starlette.requests import Request
from starlette.types import Message, Receive

from bridge.errors import BridgeError, MalformedRequest, PayloadTooLarge


class RequestTimeout(BridgeError):
    """The request body was not received in time."""


class HeadersTooLarge(BridgeError):
    """The request headers are larger than the configured limit."""


def header_bytes(headers: list[tuple[bytes, bytes]]) -> int:
    """The size of ASGI headers, names and values (what BRIDGE_MAX_HEADER_BYTES bounds)."""
    return sum(len(name) + len(value) for name, value in headers)


async def read_body(
    receive: Receive, content_length: str | None, limit: int, seconds: float | None = None
) -> bytes:
    """The body from ASGI `receive`, refusing past `limit` bytes without reading further,
    and with `RequestTimeout` when it has not all arrived within `seconds`."""
    if content_length is not None:
        if not (content_length.isascii() and content_length.isdigit()):
            raise MalformedRequest("Content-Length is not a number")
        if len(content_length) > 18 or int(content_length) > limit:
            raise PayloadTooLarge(f"body is larger than {limit} bytes")
    if seconds is None:
        return await _read(receive, limit, await receive())
    # The usual delivery has arrived whole before the app runs, and `receive` returns it
    # without waiting: its first step runs here, and only if it has to wait does the rest
    # run under the deadline. (An `asyncio.timeout` around every read cost about 5 µs of
    # the ~70 µs the bridge spends on a delivery; this costs nothing when nothing waits.)
    first: Awaitable[Message] = receive()
    if type(first) is CoroutineType:  # an ABC isinstance() costs as much again
        try:
            waits_on = first.send(None)
        except StopIteration as done:
            message: Message = done.value
            if message["type"] != "http.request" or not message.get("more_body", False):
                return await _read(receive, limit, message)
            first = _Ready(message)
        else:
            first = _Resumed(first, waits_on)
    try:
        async with asyncio.timeout(seconds):
            return await _read(receive, limit, await first)
    except TimeoutError:
        raise RequestTimeout(f"the body was not received within {seconds:g} seconds") from None


class _Ready:
    """An awaitable of a message already received."""

    def __init__(self, message: Message) -> None:
        self.message = message

    def __await__(self) -> Generator[Any, Any, Message]:
        return self.message
        yield  # makes this a generator that never yields


class _Resumed:
    """The rest of a coroutine whose first step ran and yielded `waits_on` (what the event
    loop must wait for): awaiting this hands that on, then drives the coroutine as `await`
    would have: values sent, exceptions thrown (a cancellation) and closing alike."""

    def __init__(self, coroutine: Coroutine[Any, Any, Message], waits_on: Any) -> None:
        self.coroutine = coroutine
        self.waits_on = waits_on

    def __await__(self) -> Generator[Any, Any, Message]:
        coroutine, waits_on = self.coroutine, self.waits_on
        while True:
            try:
                sent = yield waits_on
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # handed on to the coroutine, as `await` does
                try:
                    waits_on = coroutine.throw(exc)
                except StopIteration as done:
                    result: Message = done.value
                    return result
            else:
                try:
                    waits_on = coroutine.send(sent)
                except StopIteration as done:
                    result = done.value
                    return result


async def _read(receive: Receive, limit: int, message: Message) -> bytes:
    """The body, from its first message on."""
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
    runtime = getattr(request.app.state, "runtime", None)
    seconds = runtime.settings.body_timeout_seconds if runtime is not None else None
    return await read_body(request.receive, request.headers.get("content-length"), limit, seconds)
