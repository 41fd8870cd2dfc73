"""A small closed-loop HTTP/1.1 load generator (keep-alive, N connections, asyncio).

Lean on purpose: a general HTTP client costs more CPU per request than the server under
test, and both share two cores here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field


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


async def _connection(
    host: str,
    port: int,
    make: Callable[[int], tuple[str, bytes]],
    content_type: str,
    stop_at: float,
    result: Result,
    counter: list[int],
    keep_bodies: bool,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            counter[0] += 1
            path, body = make(counter[0])
            started = time.perf_counter()
            writer.write(_request(host, port, path, body, content_type))
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length) if length else b""
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if keep_bodies:
                result.bodies.append(payload)
    finally:
        writer.close()


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
    result = Result()
    counter = [0]
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(
            _connection(host, port, make, content_type, stop_at, result, counter, keep_bodies)
            for _ in range(connections)
        )
    )
    result.elapsed = time.perf_counter() - started
    return result
