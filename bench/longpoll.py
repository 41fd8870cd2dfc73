"""Webhook latency while many pull consumers long-poll, against the same latency without them.

    python bench/longpoll.py [--polls 1000] [--seconds 10] [--connections 16]
                             [--root DIR] [--env BRIDGE_X=value ...]

Starts `zoho-bridge serve` (SQLite in a temporary directory) as its own process, creates a
pull subscription filtered to a module the webhooks never name (so its consumers keep
waiting, as idle consumers do), then:

1. sends CRM webhooks for `--seconds` from `--connections` closed-loop connections (or,
   with `--rate`, open-loop at that many a second, so a slow server queues them up as
   Zoho's retries would) and notes p50/p99 (no long-polls open);
2. opens `--polls` long-polls (`wait=25`, re-polled as soon as one is answered; a 429 is
   retried after its `Retry-After`), waits for them to settle, and sends webhooks again.

`--root` runs the bridge of another checkout (e.g. `git archive HEAD | tar -x -C DIR`), for
a before/after comparison. Bounded by `--seconds`; stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    ADMIN,
    bridge_env,
    configure,
    crm_maker,
    free_port,
    settings,
    wait_up,
)
from bench.loadgen import Result, run  # noqa: E402

WAIT = 25


class Poller(asyncio.Protocol):
    """One keep-alive consumer: GET events with `wait`, and again once answered."""

    def __init__(self, request: bytes, statuses: Counter[int], stop: asyncio.Event) -> None:
        self._request = request
        self._statuses = statuses
        self._stop = stop
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self.waiting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send()

    def _send(self) -> None:
        if self._transport is not None and not self._stop.is_set():
            self.waiting = True
            self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head, sep, rest = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        headers = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
        length = int(headers.get(b"content-length", b"0"))
        if len(rest) < length:
            return
        self._buffer = rest[length:]
        self.waiting = False
        status = int(head.split(b" ", 2)[1])
        self._statuses[status] += 1
        if status == 429:
            delay = float(headers.get(b"retry-after", b"1"))
            asyncio.get_running_loop().call_later(delay, self._send)
        else:
            self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


def serve(port: int, env: dict[str, str], root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--port", str(port)],
                            env=env, cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def set_up(port: int) -> str:
    """The channel for the webhooks, and a subscription no webhook matches: its token."""
    wait_up(port, "/readyz")
    configure(port)
    answer = httpx.post(f"http://127.0.0.1:{port}/admin/subscriptions",
                        headers={"Authorization": f"Bearer {ADMIN}"},
                        json={"name": "idle", "module": "Deals"})  # fmt: skip
    answer.raise_for_status()
    token: str = answer.json()["token"]
    return token


async def webhooks(port: int, seconds: float, connections: int, rate: float) -> Result:
    make = crm_maker(uuid.uuid4().hex[:8])
    if not rate:
        return await run("127.0.0.1", port, make, connections=connections, seconds=seconds)
    result = Result()
    limits = httpx.Limits(max_connections=connections * 8, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=60) as http:  # fmt: skip

        async def one(i: int) -> None:
            path, body = make(i)
            sent = time.perf_counter()
            answer = await http.post(path, content=body,
                                     headers={"content-type": "application/json"})  # fmt: skip
            result.latencies.append(time.perf_counter() - sent)
            result.statuses[answer.status_code] = result.statuses.get(answer.status_code, 0) + 1

        started = time.perf_counter()
        tasks = []
        for i in range(int(seconds * rate)):
            await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        result.elapsed = time.perf_counter() - started
    return result


def show(label: str, result: Result) -> None:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(result.statuses.items()))
    print(f"{label:<28} {result.rate():8.0f} req/s  p50 {result.percentile(50) * 1000:7.1f} ms"
          f"  p99 {result.percentile(99) * 1000:8.1f} ms  ({statuses})")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=0.0, help="open loop: webhooks a second")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run")
    parser.add_argument("--env", action="append", default=[], help="BRIDGE_X=value for serve")
    args = parser.parse_args()
    root = args.root.resolve()
    tmp = tempfile.TemporaryDirectory()
    env = bridge_env(f"sqlite+aiosqlite:///{tmp.name}/bench.db", root)
    env.update(BRIDGE_RECONCILE="false", BRIDGE_SCHEDULER="false")
    env.update(settings(args.env))
    port = free_port()
    proc = serve(port, env, root)
    stop = asyncio.Event()
    pollers: list[Poller] = []
    try:
        token = set_up(port)
        how = f"{args.rate:g}/s open loop" if args.rate else f"{args.connections} connections"
        print(f"bridge at {root}, webhooks {how}, {args.seconds:g} s")
        load = (args.seconds, args.connections, args.rate)
        show("webhooks, no long-polls", await webhooks(port, *load))
        request = (
            f"GET /v1/subscriptions/idle/events?wait={WAIT} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
        statuses: Counter[int] = Counter()
        loop = asyncio.get_running_loop()
        for _ in range(args.polls):
            poller = Poller(request, statuses, stop)
            await loop.create_connection(lambda p=poller: p, "127.0.0.1", port)  # type: ignore[misc]
            pollers.append(poller)
        await asyncio.sleep(2.0)  # let the over-cap answers come back
        waiting = sum(p.waiting for p in pollers)
        started = time.perf_counter()
        result = await webhooks(port, *load)
        show(f"webhooks, {args.polls} long-polls", result)
        answered = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        print(f"long-polls: {waiting} held by the server at the start; answers so far "
              f"({time.perf_counter() - started + 2:.0f} s): {answered or 'none'}")  # fmt: skip
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=30)
        tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
