"""A small closed-loop HTTP/1.1 load generator (keep-alive, N connections, asyncio).

Lean on purpose: it shares the two cores with the server under test, and every
microsecond it spends is taken from the server (from the bridge's writer thread and
PostgreSQL most of all: the bare endpoint only ever needs one core). So each connection is
a bare `asyncio.Protocol` that sends the next request from inside `data_received`, with no
stream objects, futures or task switches per request, on uvloop when it is installed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _request(host: str, port: int, path: str, body: bytes, content_type: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send, read the whole response, send the next."""

    def __init__(
        self,
        request: Callable[[], bytes],
        stop_at: float,
        result: Result,
        keep_bodies: bool,
        done: asyncio.Future[None],
    ) -> None:
        self._request = request
        self._stop_at = stop_at
        self._result = result
        self._keep_bodies = keep_bodies
        self._done = done
        self._buffer = b""
        self._started = 0.0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        self._started = time.perf_counter()
        self._transport.write(self._request())

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            self._buffer = buffer
            return
        head = buffer[:end]
        length = 0
        at = head.lower().find(b"\r\ncontent-length:")
        if at >= 0:
            line_end = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : line_end if line_end >= 0 else len(head)])
        if len(buffer) < end + 4 + length:
            self._buffer = buffer
            return
        now = time.perf_counter()
        result = self._result
        result.latencies.append(now - self._started)
        status = int(head[9:12])
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if self._keep_bodies:
            result.bodies.append(buffer[end + 4 : end + 4 + length])
        self._buffer = buffer[end + 4 + length :]
        if now < self._stop_at:
            self._send()
        else:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc or ConnectionError("the server closed the connection"))

    def _finish(self, error: BaseException | None = None) -> None:
        if self._transport is not None:
            self._transport.close()
        if not self._done.done():
            if error is None:
                self._done.set_result(None)
            else:
                self._done.set_exception(error)


async def run(
    host: str,
    port: int,
    make: Callable[[int], tuple[str, bytes]],
    *,
    content_type: str = "application/json",
    connections: int = 32,
    seconds: float = 5.0,
    keep_bodies: bool = False,
) -> Result:
    loop = asyncio.get_running_loop()
    result = Result()
    counter = 0

    def request() -> bytes:
        nonlocal counter
        counter += 1
        path, body = make(counter)
        return _request(host, port, path, body, content_type)

    started = time.perf_counter()
    stop_at = started + seconds
    finished: list[asyncio.Future[None]] = []
    for _ in range(connections):
        done: asyncio.Future[None] = loop.create_future()
        finished.append(done)
        await loop.create_connection(
            lambda done=done: _Connection(request, stop_at, result, keep_bodies, done),  # type: ignore[misc]
            host,
            port,
        )
    await asyncio.gather(*finished)
    result.elapsed = time.perf_counter() - started
    return result
