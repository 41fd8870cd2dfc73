"""Webhook acknowledgement latency at fixed offered rates, with and without a push sink.

    python bench/acklatency.py [--rates 500,1000,2000] [--seconds 15] [--rounds 2]
                               [--no-postgres] [--connections 64]

Starts two `serve` processes per database: one with only the pull subscription
(`BRIDGE_SINKS=pull`), one also relaying to Redis Streams (`pull,redis`; a stream of its
own, deleted after). Each is driven open-loop with CRM callbacks at each fixed rate in
turn (interleaved rounds; medians): a request's latency runs from the moment it was due to
be sent, so a server that falls behind is charged for the queue it causes. Reports p50 and
p99 of the acknowledgements, the rate achieved, and the Redis sink's backlog when the run
ends (rows still pending in the outbox: a backlog that grows means the relay does not keep
up at that rate).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg
import httpx
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import ADMIN, bridge_env, configure, free_port, start, wait_up  # noqa: E402
from bench.sustained import drive  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"


async def _drive(port: int, rate: float, seconds: float, connections: int) -> dict[str, float]:
    result = await drive(port, rate, seconds, connections)
    ordered = sorted(result.latencies)
    return {
        "p50": 1000 * ordered[len(ordered) // 2],
        "p99": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "rate": len(result.latencies) / result.elapsed,
        "failed": result.failures,
    }


def _pending(port: int) -> int | None:
    answer = httpx.get(f"http://127.0.0.1:{port}/admin/status",
                       headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
    sinks = {s["name"]: s["pending"] for s in answer.json()["sinks"]}
    return sinks.get("redis")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="500,1000,2000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    stream = f"zb.acklatency.{uuid.uuid4().hex[:8]}"
    tmp = tempfile.TemporaryDirectory()
    databases = [("sqlite", None)] + ([] if args.no_postgres else [("postgres", "pg")])
    procs, targets, pg_names = [], [], []
    try:
        for db, _ in databases:
            for sinks in ("pull", "pull,redis"):
                if db == "sqlite":
                    url = f"sqlite+aiosqlite:///{tmp.name}/{sinks.replace(',', '_')}.db"
                else:
                    name = f"zb_ack_{uuid.uuid4().hex[:8]}"
                    admin = await asyncpg.connect(f"{PG}/postgres")
                    await admin.execute(f'CREATE DATABASE "{name}"')
                    await admin.close()
                    pg_names.append(name)
                    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
                env = bridge_env(url) | {"BRIDGE_SINKS": sinks, "BRIDGE_REDIS_STREAM": stream}
                port = free_port()
                procs.append(start([sys.executable, "-m", "bridge", "serve", "--port", str(port)],
                                   env))  # fmt: skip
                wait_up(port, "/readyz")
                configure(port)
                targets.append((db, sinks, port))
        runs: dict[tuple[str, str, float], list[dict[str, float]]] = {}
        for _ in range(args.rounds):
            for rate in rates:
                for db, sinks, port in targets:
                    result = await _drive(port, rate, args.seconds, args.connections)
                    result["backlog"] = float(_pending(port) or 0)
                    runs.setdefault((db, sinks, rate), []).append(result)
                    await asyncio.sleep(2)  # let a relay catch up before the next run
        print(f"\nCRM callbacks offered open-loop for {args.seconds:.0f} s, {args.connections} "
              f"connections, medians of {args.rounds} interleaved rounds")  # fmt: skip
        print(f"{'database':<9} {'sinks':<11} {'offered/s':>9} {'acked/s':>8} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'redis backlog at end':>21}")  # fmt: skip
        for (db, sinks, rate), rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            backlog = f"{med['backlog']:.0f}" if "redis" in sinks else "-"
            print(f"{db:<9} {sinks:<11} {rate:>9.0f} {med['rate']:>8.0f} {med['p50']:>7.1f} "
                  f"{med['p99']:>7.1f} {backlog:>21}")  # fmt: skip
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
        tmp.cleanup()
        client = Redis.from_url("redis://127.0.0.1:6379/0")
        await client.delete(stream)
        await client.aclose()
        for name in pg_names:
            admin = await asyncpg.connect(f"{PG}/postgres")
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
