"""Relays of several replicas share one outbox: drain time with 1 and with 2 `serve`
processes on PostgreSQL, and no event published twice.

    python bench/replicas.py [--events 40000] [--replicas 1,2] [--rounds 2]

Per round and replica count, in a database of its own: the `serve` processes start with a
Redis Streams sink (a stream of their own, deleted after) and nothing to do; then one
transaction stores `--events` events with their outbox rows (one record each), and the
clock runs until the stream holds them all. Reported: events/s (medians over interleaved
rounds), the share each replica delivered (the rows' `lease_owner`), and duplicates (stream
entries beyond the events, and event ids seen twice), which must be 0: leases keep two
relays from publishing the same row at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import bridge_env, free_port, start, wait_up  # noqa: E402
from bridge.store.migrate import upgrade  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
TIMEOUT = 600.0


def _fill(count: int) -> list[str]:
    """`count` events (one record each) and one pending `redis` row per event."""
    ts = "now() - (g.i * interval '1 millisecond')"
    return [
        "INSERT INTO events (id, product, source, module, operation, record_id, occurred_at, "
        "received_at, origin, dedup_key, data) SELECT lpad(g.i::text, 26, '0'), 'crm', "
        f"'bench', 'Leads', 'updated', 'r' || g.i, {ts}, {ts}, 'webhook', 'bench:' || g.i, "
        f'\'{{"Last_Name": "M\u00fcller"}}\' FROM generate_series(1, {count}) AS g(i)',
        "INSERT INTO deliveries (event_seq, sink, record_key, status, attempts, "
        "next_attempt_at, created_at, replay) SELECT seq, 'redis', 'bench/Leads/' || "
        "record_id, 'pending', 0, received_at, received_at, false FROM events",
    ]


async def one_run(replicas: int, count: int) -> dict[str, Any]:
    name = f"zb_replicas_{uuid.uuid4().hex[:8]}"
    stream = f"zb.replicas.{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{PG}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    procs = []
    redis = Redis.from_url(REDIS_URL)
    try:
        await upgrade(url)
        env = bridge_env(url) | {"BRIDGE_SINKS": "redis", "BRIDGE_REDIS_STREAM": stream,
                                 "BRIDGE_RELAY_POLL_SECONDS": "0.05"}  # fmt: skip
        for n in range(replicas):
            port = free_port()
            procs.append(start([sys.executable, "-m", "bridge", "serve", "--port", str(port)],
                               env | {"BRIDGE_REPLICA_ID": f"replica-{n + 1}"}))  # fmt: skip
            wait_up(port, "/readyz")
        engine = create_async_engine(url)
        async with engine.begin() as conn:  # all visible at once
            for statement in _fill(count):
                await conn.execute(text(statement))
        started = time.perf_counter()
        while await redis.xlen(stream) < count:
            if time.perf_counter() - started > TIMEOUT:
                raise TimeoutError(f"{await redis.xlen(stream)} of {count} after {TIMEOUT} s")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(1.0)  # anything published twice would show by now
        entries = await redis.xlen(stream)
        ids: set[bytes] = set()
        repeated = 0
        last = "0"
        while batch := await redis.xrange(stream, min=f"({last}" if last != "0" else "-",
                                          count=10_000):  # fmt: skip
            for entry_id, fields in batch:
                repeated += fields[b"id"] in ids
                ids.add(fields[b"id"])
                last = entry_id.decode()
        shares_sql = "SELECT lease_owner, count(*) FROM deliveries GROUP BY lease_owner"
        async with engine.connect() as conn:
            shares = dict((await conn.execute(text(shares_sql))).all())
        await engine.dispose()
        return {"rate": count / elapsed, "extra": entries - count, "repeated": repeated,
                "shares": shares}  # fmt: skip
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        await redis.delete(stream)
        await redis.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--replicas", default="1,2")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    counts = [int(r) for r in args.replicas.split(",")]
    runs: dict[int, list[dict[str, Any]]] = {k: [] for k in counts}
    for _ in range(args.rounds):
        for k in counts:
            runs[k].append(await one_run(k, args.events))
    print(f"\n{args.events:,} events in the outbox, Redis Streams sink, PostgreSQL, "
          f"{os.cpu_count()} cores; medians of {args.rounds} interleaved rounds")  # fmt: skip
    print(f"{'replicas':>8} {'events/s':>9} {'vs 1':>5} {'extra entries':>13} "
          f"{'ids seen twice':>14}  delivered by")  # fmt: skip
    base = statistics.median(r["rate"] for r in runs[counts[0]])
    for k, rs in runs.items():
        rate = statistics.median(r["rate"] for r in rs)
        shares = ", ".join(f"{owner}: {n}" for owner, n in sorted(rs[-1]["shares"].items()))
        print(f"{k:>8} {rate:>9.0f} {rate / base:>5.2f} {sum(r['extra'] for r in rs):>13} "
              f"{sum(r['repeated'] for r in rs):>14}  {shares}")  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
