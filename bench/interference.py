"""Does delivering slow acknowledgements? The same `serve`, the same offered rate, the relay
running or paused, in alternating windows.

    python bench/interference.py [--fraction 0.5 | --rate 2700] [--window 10] [--cycles 4]
                                 [--no-sqlite] [--no-postgres] [--env BRIDGE_X=VALUE ...]

Per database (SQLite in a temporary directory, PostgreSQL in a database of its own), one
`serve` on 127.0.0.1 with a Redis Streams sink and a pull subscription, relaying from its
child process as it does by default, with the Redis and pull consumers of
`bench/sustained.py` reading all along in a process of their own. Its maximum ingest rate
is measured first (closed loop, 32 connections, the relay paused); then, cycle after
cycle, CRM callbacks are offered open-loop at `--fraction` of it for `--window` seconds
in each of three conditions, one after the other:

- relay running: delivery as `serve` does it;
- relay paused: the child stopped (SIGSTOP), its rows waiting (sent after the window);
- busy loop: the relay paused and, instead, a Python busy loop at idle CPU priority
  (`SCHED_IDLE`, the lowest there is): what any CPU work beside `serve` costs on this
  machine, whatever its priority, for comparison.

Windows of one cycle run back to back, so a slow spell of a shared machine falls on all
three. Reported per condition: the medians over cycles of acknowledgement p50 and p99,
and the relay's CPU per acknowledged event. A pull consumer and the wake-ups `serve`
sends its child run in every condition: what differs is the relay's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import cpu_seconds  # noqa: E402
from bench.sustained import (  # noqa: E402
    DRAIN_TIMEOUT,
    PG,
    REDIS_URL,
    Arrivals,
    _percentile,
    consume_pull,
    consume_redis,
    drained,
    drive,
    max_ingest,
    start_server,
)

CONDITIONS = ("relay running", "relay paused", "busy loop")
BUSY_LOOP = "while True: pass"


def consumers_main(stream: str, port: int, name: str, token: str) -> None:
    """Read the stream and the subscription until terminated."""

    async def run() -> None:
        stop = asyncio.Event()
        await asyncio.gather(consume_redis(stream, Arrivals(), stop),
                             consume_pull(port, name, token, Arrivals(), stop))  # fmt: skip

    asyncio.run(run())


def relay_child(serve_pid: int) -> int:
    out = subprocess.run(["pgrep", "-P", str(serve_pid), "-f", "bridge relay"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.split()[0])


def busy_loop() -> subprocess.Popen[bytes]:
    """The busy loop at idle CPU priority, stopped until its windows."""
    busy = subprocess.Popen(["chrt", "--idle", "0", sys.executable, "-c", BUSY_LOOP])
    os.kill(busy.pid, signal.SIGSTOP)
    return busy


async def bench_database(db: str, url: str, args: Any) -> None:
    stream = f"zb.interference.{uuid.uuid4().hex[:8]}"
    extra = dict(item.split("=", 1) for item in args.env)
    server = await start_server("relayed", url, "pull,redis", stream, extra)
    busy = busy_loop()
    consumers = None
    try:
        assert server.subscription is not None
        child = relay_child(server.procs[0].pid)
        consumers = multiprocessing.get_context("spawn").Process(
            target=consumers_main, args=(server.stream, server.port, *server.subscription)
        )
        consumers.start()
        os.kill(child, signal.SIGSTOP)
        try:
            ceiling = await max_ingest(server.port, args.max_seconds)
        finally:
            os.kill(child, signal.SIGCONT)
        await drained(server.port, DRAIN_TIMEOUT)
        rate = args.rate or args.fraction * ceiling
        print(f"\n{db}: maximum ingest rate {ceiling:.0f}/s (closed loop, relay paused); "
              f"offered {rate:.0f}/s open-loop, {args.window:.0f} s windows, "
              f"{args.cycles} cycles")  # fmt: skip
        print(f"{'cycle':>5} {'condition':<14} | {'acked/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'relay us/ev':>11}")  # fmt: skip
        results: dict[str, list[tuple[float, float, float]]] = {c: [] for c in CONDITIONS}
        await drive(server.port, rate, 3.0, args.connections)  # warm-up
        await drained(server.port, DRAIN_TIMEOUT)
        for cycle in range(args.cycles):
            for condition in CONDITIONS:
                if condition != "relay running":
                    os.kill(child, signal.SIGSTOP)
                if condition == "busy loop":
                    os.kill(busy.pid, signal.SIGCONT)
                relay_cpu = cpu_seconds(child)
                try:
                    run = await drive(server.port, rate, args.window, args.connections)
                finally:
                    os.kill(busy.pid, signal.SIGSTOP)
                    os.kill(child, signal.SIGCONT)
                relay_cpu = cpu_seconds(child) - relay_cpu
                acked = max(1, len(run.acked))
                row = (1000 * _percentile(run.latencies, 50),
                       1000 * _percentile(run.latencies, 99), 1e6 * relay_cpu / acked)  # fmt: skip
                results[condition].append(row)
                print(f"{cycle:>5} {condition:<14} | {acked / run.elapsed:>7.0f} {row[0]:>7.1f} "
                      f"{row[1]:>7.1f} {row[2]:>11.0f}")  # fmt: skip
                await drained(server.port, DRAIN_TIMEOUT)
        print(f"{db}: medians over {args.cycles} cycles")
        paused = statistics.median(r[0] for r in results["relay paused"])
        for condition, rows in results.items():
            p50 = statistics.median(r[0] for r in rows)
            print(f"  {condition:<14} p50 {p50:6.1f} ms ({p50 / paused:4.2f}x paused)  "
                  f"p99 {statistics.median(r[1] for r in rows):6.1f} ms  relay "
                  f"{statistics.median(r[2] for r in rows):4.0f} us/ev")  # fmt: skip
    finally:
        busy.kill()
        if consumers is not None:
            consumers.terminate()
            consumers.join(timeout=10)
        for proc in server.procs:
            proc.terminate()
        for proc in server.procs:
            proc.wait(timeout=30)
        client = Redis.from_url(REDIS_URL)
        await client.delete(stream)
        await client.aclose()


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fraction", type=float, default=0.5,
                        help="offered rate as a share of the maximum ingest rate")  # fmt: skip
    parser.add_argument("--rate", type=float, help="offered events/s (instead of --fraction)")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="BRIDGE_X=VALUE",
                        help="a setting for serve (repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    name = f"zb_interference_{uuid.uuid4().hex[:8]}"
    created = False
    try:
        if not args.no_sqlite:
            await bench_database("sqlite", f"sqlite+aiosqlite:///{tmp.name}/bridge.db", args)
        if not args.no_postgres:
            admin = await asyncpg.connect(f"{PG}/postgres")
            await admin.execute(f'CREATE DATABASE "{name}"')
            created = True
            await admin.close()
            await bench_database(
                "postgres", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", args
            )
    finally:
        tmp.cleanup()
        if created:
            admin = await asyncpg.connect(f"{PG}/postgres")
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
