"""Durable-ack throughput and latency of the ingest path, beside a bare Starlette endpoint.

    python bench/ingest.py [--seconds 5] [--rounds 5] [--connections 32] [--no-postgres]
                           [--compare-with DIR]

Starts each server as its own process (uvicorn, one worker, same options), drives each in
turn with a closed-loop HTTP/1.1 load generator over 127.0.0.1, in interleaved rounds so
that the shared machine's noise hits every target alike, and prints median requests/s,
p50 and p99 beside the bare endpoint, and the server's CPU time per request (all its
threads and worker processes, from /proc: steadier than throughput on a shared machine).
After each bridge run it counts the stored events and checks that every acknowledged event
is in the database. `--compare-with DIR` also runs the bridge from another checkout (say a
`git worktree` of the previous commit) in the same interleaved rounds, each on a database
of its own: a before/after comparison made in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import Result, run  # noqa: E402
from bridge.store.database import create_engine  # noqa: E402
from bridge.store.models import EventRow  # noqa: E402

ADMIN = "bench-admin-token-0123456789"
CRM_TOKEN = "bench-channel-token-0123456789"
BOOKS_TOKEN = "bench-books-token-0123456789"
INVOICE = json.loads((ROOT / "samples" / "books-invoice.json").read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


def own_cpu(pid: int) -> float:
    """User + system CPU of a process and its threads, without its child processes."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, its threads and its child processes (Linux /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    return own_cpu(pid) + sum(cpu_seconds(int(child)) for child in children)


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
    # The invoice is serialised once: the load generator shares the server's two cores, so
    # it should spend as little CPU per request as it can.
    head, tail = json.dumps({"invoice": dict(INVOICE["invoice"], invoice_id="@")}).split('"@"')
    path = f"/hooks/books/bench?token={BOOKS_TOKEN}"

    def make(i: int) -> tuple[str, bytes]:
        return path, f'{head}"{run_id}{i}"{tail}'.encode()

    return make


async def count_events(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(EventRow)) or 0)
    finally:
        await engine.dispose()


def settings(items: list[str]) -> dict[str, str]:
    """`BRIDGE_X=VALUE` arguments (--env, --variant) as an environment."""
    return dict(item.split("=", 1) for item in items)


def bridge_env(database_url: str, root: Path = ROOT) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(BRIDGE_DATABASE_URL=database_url, BRIDGE_ADMIN_TOKEN=ADMIN,
               BRIDGE_LOG_LEVEL="warning", PYTHONPATH=str(root))  # fmt: skip
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


@dataclass
class Target:
    """One server to measure with one kind of delivery, and what each round measured."""

    label: str
    port: int
    pid: int
    maker: Callable[[str], Callable[[int], tuple[str, bytes]]]
    database_url: str | None = None  # set for the bridge: every ack is checked against it
    results: list[Result] = field(default_factory=list)
    cpu_per_request: list[float] = field(default_factory=list)
    lost: int = 0


async def measure(target: Target, args: argparse.Namespace) -> None:
    # Each run sends records of its own, so nothing measured is a duplicate of the warm-up.
    await run("127.0.0.1", target.port, target.maker(uuid.uuid4().hex[:8]),
              connections=args.connections, seconds=0.5)  # fmt: skip
    before = await count_events(target.database_url) if target.database_url else 0
    cpu_before = cpu_seconds(target.pid)
    result = await run("127.0.0.1", target.port, target.maker(uuid.uuid4().hex[:8]),
                       connections=args.connections, seconds=args.seconds,
                       keep_bodies=target.database_url is not None)  # fmt: skip
    target.cpu_per_request.append((cpu_seconds(target.pid) - cpu_before) / max(1, result.count))
    if target.database_url:
        stored = await count_events(target.database_url) - before
        acked = sum(json.loads(b).get("events", 0) for b in result.bodies)
        result.bodies.clear()
        if acked != result.statuses.get(200, 0) or stored < acked:
            target.lost += 1
    target.results.append(result)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(targets: list[Target], args: argparse.Namespace) -> None:
    bare = targets[0]
    bare_rate = median([r.rate() for r in bare.results])
    print(f"\n{args.connections} concurrent senders, {args.rounds} interleaved rounds of "
          f"{args.seconds:.0f} s, HTTP/1.1 keep-alive on 127.0.0.1, {os.cpu_count()} cores; "
          "medians over rounds")  # fmt: skip
    print(f"{'target':<30} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'of bare':>8} "
          f"{'range of bare':>14} {'CPU us/req':>10} {'non-200':>7}")  # fmt: skip
    for target in targets:
        rates = [r.rate() for r in target.results]
        shares = [r.rate() / b.rate() for r, b in zip(target.results, bare.results, strict=True)]
        errors = sum(n for r in target.results for s, n in r.statuses.items() if s != 200)
        check = "" if target.database_url is None else ("  ok" if not target.lost else "  LOST")
        print(f"{target.label:<30} {median(rates):>8.0f} "
              f"{1000 * median([r.percentile(50) for r in target.results]):>7.2f} "
              f"{1000 * median([r.percentile(99) for r in target.results]):>7.2f} "
              f"{100 * median(rates) / bare_rate:>7.1f}% "
              f"{100 * min(shares):>6.1f}-{100 * max(shares):<6.1f}% "
              f"{1e6 * median(target.cpu_per_request):>10.0f} "
              f"{errors:>7}{check}")  # fmt: skip
    print("'ok' = in every round, every acknowledged event was in the database; CPU us/req = "
          "server CPU time (all threads and workers) per answered request")  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--workers", type=int, default=1,
                        help="also measure PostgreSQL with this many serve workers")  # fmt: skip
    parser.add_argument("--compare-with", type=Path, metavar="DIR",
                        help="also run the bridge of another checkout (a worktree)")  # fmt: skip
    args = parser.parse_args()
    checkouts = [("", ROOT)]
    if args.compare_with is not None:
        checkouts.append((" (other)", args.compare_with.resolve()))

    procs: list[subprocess.Popen[bytes]] = []
    targets: list[Target] = []
    tmp = tempfile.TemporaryDirectory()
    pg_names = [f"zb_bench_{uuid.uuid4().hex[:8]}" for _ in checkouts]
    pg_dsn = args.postgres.replace("postgresql+asyncpg://", "postgresql://")
    try:
        port = free_port()
        procs.append(start([sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--port",
                            str(port), "--no-access-log", "--log-level", "warning"],
                           dict(os.environ, PYTHONPATH=str(ROOT))))  # fmt: skip
        wait_up(port, "/hooks/crm")
        targets.append(Target("bare Starlette", port, procs[-1].pid, crm_maker))
        bridges: list[tuple[str, str, int, Path]] = []
        for (suffix, root), pg_name in zip(checkouts, pg_names, strict=True):
            sqlite_url = f"sqlite+aiosqlite:///{tmp.name}/bench{len(bridges)}.db"
            bridges.append((f"sqlite{suffix}", sqlite_url, 1, root))
            if not args.no_postgres:
                admin = await asyncpg.connect(pg_dsn)
                await admin.execute(f'CREATE DATABASE "{pg_name}"')
                await admin.close()
                pg_url = args.postgres.rsplit("/", 1)[0] + "/" + pg_name
                bridges.append((f"postgres{suffix}", pg_url, 1, root))
                if args.workers > 1:
                    bridges.append((f"postgres x{args.workers}{suffix}", pg_url, args.workers,
                                    root))  # fmt: skip
        # Each kind of delivery on each database, this checkout's next to the other's.
        bridges.sort(key=lambda b: (b[0].split(" (")[0], b[3] != ROOT))
        for label, url, workers, root in bridges:
            port = free_port()
            command = [sys.executable, "-m", "bridge", "serve", "--port", str(port),
                       "--workers", str(workers)]  # fmt: skip
            procs.append(start(command, bridge_env(url, root), root))
            wait_up(port, "/readyz")
            configure(port)
            pid = procs[-1].pid
            targets.append(Target(f"bridge crm   {label}", port, pid, crm_maker, url))
            targets.append(Target(f"bridge books {label}", port, pid, books_maker, url))
        for _ in range(args.rounds):
            for target in targets:
                await measure(target, args)
        report(targets, args)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
        tmp.cleanup()
        if not args.no_postgres:
            admin = await asyncpg.connect(pg_dsn)
            for pg_name in pg_names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    try:
        import uvloop  # the load generator's own CPU comes out of the server's two cores
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.install()
        asyncio.run(main())
