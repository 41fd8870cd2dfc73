"""Durable-ack throughput and latency of the ingest path, beside a bare Starlette endpoint.

    python bench/ingest.py [--seconds 5] [--connections 32] [--postgres URL] [--no-postgres]

Starts each server as its own process (uvicorn, one worker, same options), drives it with
a closed-loop HTTP/1.1 load generator over 127.0.0.1, and prints requests/s, p50 and p99
beside the bare endpoint measured in the same run. After each bridge run it counts the
stored events and checks that every acknowledged event is in the database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import Result, run  # noqa: E402
from bridge.store.database import create_engine  # noqa: E402
from bridge.store.models import Event  # noqa: E402

ADMIN = "bench-admin-token-0123456789"
CRM_TOKEN = "bench-channel-token-0123456789"
BOOKS_TOKEN = "bench-books-token-0123456789"
INVOICE = json.loads((ROOT / "samples" / "books-invoice.json").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def wait_up(port: int, path: str = "/healthz") -> None:
    for _ in range(200):
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"server on {port} did not start")


def crm_maker(run_id: str) -> Callable[[int], tuple[str, bytes]]:
    def make(i: int) -> tuple[str, bytes]:
        body = (
            '{"server_time":%d,"query_params":{},"module":"Leads","resource_uri":'  # noqa: UP031
            '"https://www.zohoapis.com/crm/v2/Leads","ids":["%s%d"],"affected_fields":[],'
            '"operation":"update","channel_id":"1000000068001","token":"%s"}'
            % (1718117126473 + i, run_id, i, CRM_TOKEN)
        )
        return "/hooks/crm", body.encode()

    return make


def books_maker(run_id: str) -> Callable[[int], tuple[str, bytes]]:
    def make(i: int) -> tuple[str, bytes]:
        invoice = dict(INVOICE["invoice"], invoice_id=f"{run_id}{i}")
        return f"/hooks/books/bench?token={BOOKS_TOKEN}", json.dumps({"invoice": invoice}).encode()

    return make


async def count_events(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(Event)) or 0)
    finally:
        await engine.dispose()


def bridge_env(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_DATABASE_URL=database_url, BRIDGE_ADMIN_TOKEN=ADMIN,
               BRIDGE_LOG_LEVEL="warning", PYTHONPATH=str(ROOT))  # fmt: skip
    return env


def configure(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {ADMIN}"}
    for path, body in (
        ("/admin/channels/import", {"channel_id": "1000000068001", "token": CRM_TOKEN}),
        ("/admin/sources", {"name": "bench", "tokens": [BOOKS_TOKEN]}),
    ):
        answer = httpx.post(f"{base}{path}", headers=headers, json=body)
        if answer.status_code != 409:  # 409: set up by an earlier run on this database
            answer.raise_for_status()


def row(name: str, result: Result, bare: Result | None) -> str:
    share = f"{100 * result.rate() / bare.rate():5.1f}%" if bare else "  100%"
    errors = sum(n for s, n in result.statuses.items() if s != 200)
    return (f"{name:<34} {result.rate():>9.0f} {1000 * result.percentile(50):>8.2f} "
            f"{1000 * result.percentile(99):>8.2f} {share:>8} {errors:>7}")  # fmt: skip


async def measure(port: int, maker: Callable[[str], Callable[[int], tuple[str, bytes]]],
                  args: argparse.Namespace, *, keep_bodies: bool = False) -> Result:  # fmt: skip
    # Each run sends records of its own, so nothing measured is a duplicate of the warm-up.
    await run("127.0.0.1", port, maker(uuid.uuid4().hex[:8]), connections=args.connections,
              seconds=0.5)  # fmt: skip
    return await run("127.0.0.1", port, maker(uuid.uuid4().hex[:8]),
                     connections=args.connections, seconds=args.seconds,
                     keep_bodies=keep_bodies)  # fmt: skip


async def bench_bridge(label: str, database_url: str, args: argparse.Namespace,
                       bare: Result, lines: list[str], workers: int = 1) -> None:  # fmt: skip
    port = free_port()
    proc = start([sys.executable, "-m", "bridge", "serve", "--port", str(port),
                  "--workers", str(workers)], bridge_env(database_url))  # fmt: skip
    try:
        wait_up(port, "/readyz")
        configure(port)
        for kind, maker in (("crm", crm_maker), ("books", books_maker)):
            before = await count_events(database_url)
            result = await measure(port, maker, args, keep_bodies=True)
            stored = await count_events(database_url) - before
            acked = sum(json.loads(b).get("events", 0) for b in result.bodies)
            # Warm-up deliveries are stored too: stored counts them, acked does not.
            check = "ok" if stored >= acked == result.statuses.get(200, 0) else "LOST"
            lines.append(row(f"bridge {kind:<5} {label}", result, bare) + f"  {check}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workers", type=int, default=1,
                        help="also measure PostgreSQL with this many serve workers")  # fmt: skip
    args = parser.parse_args()

    lines: list[str] = []
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    bare_proc = start([sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port),
                       "--no-access-log", "--log-level", "warning"], env)  # fmt: skip
    try:
        wait_up(port, "/hooks/crm")
        bare = await measure(port, crm_maker, args)
    finally:
        bare_proc.terminate()
        bare_proc.wait(timeout=10)
    lines.append(row("bare Starlette", bare, None))

    with tempfile.TemporaryDirectory() as tmp:
        await bench_bridge("sqlite", f"sqlite+aiosqlite:///{tmp}/bench.db", args, bare, lines)
    if not args.no_postgres:
        name = f"zb_bench_{uuid.uuid4().hex[:8]}"
        dsn = args.postgres.replace("postgresql+asyncpg://", "postgresql://")
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = args.postgres.rsplit("/", 1)[0] + "/" + name
            await bench_bridge("postgres", url, args, bare, lines)
            if args.workers > 1:
                await bench_bridge(f"postgres x{args.workers}", url, args, bare, lines,
                                   args.workers)  # fmt: skip
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()

    print(f"\n{args.connections} concurrent senders, {args.seconds:.0f} s each, "
          f"HTTP/1.1 keep-alive on 127.0.0.1, {os.cpu_count()} cores")  # fmt: skip
    print(f"{'target':<34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'of bare':>8} {'non-200':>7}")
    for line in lines:
        print(line)
    print("'ok' = every acknowledged event is in the database")


if __name__ == "__main__":
    asyncio.run(main())
