"""Does delivering slow acknowledgements? The same offered rate, in alternating windows,
with the relay running or paused, the pull consumer reading or not, and without a push
sink at all.

    python bench/interference.py [--fraction 0.5 | --rate 2700] [--window 10] [--cycles 4]
                                 [--no-sqlite] [--no-postgres] [--env BRIDGE_X=VALUE ...]
                                 [--variant BRIDGE_X=VALUE ...] [--variant-sql STATEMENT ...]

Per database (SQLite in a temporary directory, PostgreSQL in databases of their own),
`serve` processes on 127.0.0.1: one with a Redis Streams sink and a pull subscription,
relaying from its child process as it does by default, with the Redis and pull consumers
of `bench/sustained.py` reading all along (each in a process of its own); with
`--variant`, a second one alike under those settings too (or, with `--variant-sql`, with
those statements run on its PostgreSQL database); and one with no push sink and no
consumer. The first one's maximum ingest rate is measured first (closed loop, 32
connections, the relay paused); then, cycle after cycle, CRM callbacks are offered
open-loop at `--fraction` of it for `--window` seconds in each condition, one after the
other:

- relay running: delivery as `serve` does it (Redis and pull);
- variant running: the same on the variant server (only with `--variant` or `--variant-sql`);
- relay paused: the child stopped (SIGSTOP), its rows waiting (sent after the window);
  the pull consumer still reading;
- pull paused: the relay and the pull consumer stopped: what storing the outbox rows
  costs by itself;
- no push sink: the server without a push sink or a consumer;
- busy loop: the relay paused and, instead, a Python busy loop at idle CPU priority
  (`SCHED_IDLE`, the lowest there is): what any CPU work beside `serve` costs on this
  machine, whatever its priority, for comparison.

Windows of one cycle run back to back, so a slow spell of a shared machine falls on all.
Reported per condition: the medians over cycles of acknowledgement p50 and p99, the relay
child's CPU per acknowledged event, and the CPU of every PostgreSQL process on the
machine per acknowledged event (0 on SQLite). The wake-ups `serve` sends its child run in
every condition of the relayed servers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
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
    Server,
    _percentile,
    consume_pull,
    consume_redis,
    drained,
    drive,
    max_ingest,
    settings,
    start_server,
)

CONDITIONS = (
    "relay running",
    "variant running",
    "relay paused",
    "pull paused",
    "no push sink",
    "busy loop",
)
BUSY_LOOP = "while True: pass"


def pull_main(port: int, name: str, token: str) -> None:
    """Read the subscription until terminated."""
    asyncio.run(consume_pull(port, name, token, Arrivals(), asyncio.Event()))


def redis_main(stream: str) -> None:
    """Read the stream until terminated."""
    asyncio.run(consume_redis(stream, Arrivals(), asyncio.Event()))


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on the machine (its backends included)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().startswith("postgres"):
                total += cpu_seconds(int(entry.name))
    return total


def relay_child(serve_pid: int) -> int:
    out = subprocess.run(["pgrep", "-P", str(serve_pid), "-f", "bridge relay"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return int(out.stdout.split()[0])


def busy_loop() -> subprocess.Popen[bytes]:
    """The busy loop at idle CPU priority, stopped until its windows."""
    busy = subprocess.Popen(["chrt", "--idle", "0", sys.executable, "-c", BUSY_LOOP])
    os.kill(busy.pid, signal.SIGSTOP)
    return busy


@dataclass
class Relayed:
    """A `serve` with a Redis sink, its relay child, and the consumers reading it (the
    pull consumer and the Redis one in processes of their own)."""

    server: Server
    child: int
    pull: multiprocessing.process.BaseProcess
    redis: multiprocessing.process.BaseProcess


async def relayed(
    label: str, url: str, stream: str, env: dict[str, str], sql: list[str] | None = None
) -> Relayed:
    server = await start_server(label, url, "pull,redis", stream, env)
    try:
        if sql:  # after the migrations `serve` applied
            conn = await asyncpg.connect(url.replace("+asyncpg", ""))
            for statement in sql:
                await conn.execute(statement)
            await conn.close()
        child = relay_child(server.procs[0].pid)
    except BaseException:
        for proc in server.procs:  # never left running (with its relay) after the bench
            proc.terminate()
        raise
    assert server.subscription is not None
    spawn = multiprocessing.get_context("spawn")
    pull = spawn.Process(target=pull_main, args=(server.port, *server.subscription))
    redis = spawn.Process(target=redis_main, args=(server.stream,))
    pull.start()
    redis.start()
    return Relayed(server, child, pull, redis)


async def bench_database(db: str, url: str, args: Any) -> None:
    stream = f"zb.interference.{uuid.uuid4().hex[:8]}"
    extra, variant = settings(args.env), settings(args.variant)
    if args.variant_sql and db != "postgres":
        print(f"\n{db}: --variant-sql is for PostgreSQL: skipped")
        return
    has_variant = bool(variant or args.variant_sql)
    conditions = [c for c in CONDITIONS if has_variant or c != "variant running"]
    busy = busy_loop()
    started: list[Relayed] = []
    servers: list[Server] = []
    try:
        plain = await start_server("no push sink", url.replace("{}", "a"), "pull", stream, extra)
        servers.append(plain)
        main = await relayed("relayed", url.replace("{}", "b"), f"{stream}.b", extra)
        started.append(main)
        servers.append(main.server)
        if has_variant:
            other = await relayed("variant", url.replace("{}", "c"), f"{stream}.c",
                                  extra | variant, args.variant_sql)  # fmt: skip
            started.append(other)
            servers.append(other.server)
        os.kill(main.child, signal.SIGSTOP)
        try:
            ceiling = await max_ingest(main.server.port, args.max_seconds)
        finally:
            os.kill(main.child, signal.SIGCONT)
        rate = args.rate or args.fraction * ceiling
        print(f"\n{db}: maximum ingest rate {ceiling:.0f}/s (closed loop, relay paused); "
              f"offered {rate:.0f}/s open-loop, {args.window:.0f} s windows, "
              f"{args.cycles} cycles" + (f"; variant: {' '.join(args.variant + args.variant_sql)}"
                                         if has_variant else ""))  # fmt: skip
        print(f"{'cycle':>5} {'condition':<15} | {'acked/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'relay us/ev':>11} {'db us/ev':>8}")  # fmt: skip
        results: dict[str, list[tuple[float, float, float, float]]] = {c: [] for c in conditions}
        for one in started:
            await drained(one.server.port, DRAIN_TIMEOUT)
            await drive(one.server.port, rate, 3.0, args.connections)  # warm-up
            await drained(one.server.port, DRAIN_TIMEOUT)
        for cycle in range(args.cycles):
            for condition in conditions:
                target = {"variant running": started[-1], "no push sink": None}.get(condition, main)
                if condition not in ("relay running", "variant running"):
                    os.kill(main.child, signal.SIGSTOP)
                if condition == "busy loop":
                    os.kill(busy.pid, signal.SIGCONT)
                if condition == "pull paused":
                    os.kill(main.pull.pid, signal.SIGSTOP)
                port = target.server.port if target else plain.port
                relay_cpu = cpu_seconds(target.child) if target else 0.0
                db_cpu = postgres_cpu()
                try:
                    run = await drive(port, rate, args.window, args.connections)
                finally:
                    os.kill(busy.pid, signal.SIGSTOP)
                    os.kill(main.child, signal.SIGCONT)
                    os.kill(main.pull.pid, signal.SIGCONT)
                relay_cpu = cpu_seconds(target.child) - relay_cpu if target else 0.0
                db_cpu = postgres_cpu() - db_cpu
                acked = max(1, len(run.acked))
                row = (1000 * _percentile(run.latencies, 50),
                       1000 * _percentile(run.latencies, 99), 1e6 * relay_cpu / acked,
                       1e6 * db_cpu / acked)  # fmt: skip
                results[condition].append(row)
                print(f"{cycle:>5} {condition:<15} | {acked / run.elapsed:>7.0f} {row[0]:>7.1f} "
                      f"{row[1]:>7.1f} {row[2]:>11.0f} {row[3]:>8.0f}")  # fmt: skip
                if target:
                    await drained(target.server.port, DRAIN_TIMEOUT)
        print(f"{db}: medians over {args.cycles} cycles")
        paused = statistics.median(r[0] for r in results["relay paused"])
        for condition, rows in results.items():
            p50 = statistics.median(r[0] for r in rows)
            print(f"  {condition:<15} p50 {p50:6.1f} ms ({p50 / paused:4.2f}x paused)  "
                  f"p99 {statistics.median(r[1] for r in rows):6.1f} ms  relay "
                  f"{statistics.median(r[2] for r in rows):4.0f} us/ev  postgres "
                  f"{statistics.median(r[3] for r in rows):4.0f} us/ev")  # fmt: skip
    finally:
        busy.kill()
        for one in started:
            for reader in (one.pull, one.redis):
                reader.terminate()
                reader.join(timeout=10)
        procs = [proc for server in servers for proc in server.procs]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        client = Redis.from_url(REDIS_URL)
        await client.delete(*(one.server.stream for one in started), stream)
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
                        help="a setting for every serve (repeatable)")  # fmt: skip
    parser.add_argument("--variant", action="append", default=[], metavar="BRIDGE_X=VALUE",
                        help="a setting for a second relayed serve, run in windows of its own "
                        "(repeatable)")  # fmt: skip
    parser.add_argument("--variant-sql", action="append", default=[], metavar="STATEMENT",
                        help="a statement run on the variant server's PostgreSQL database "
                        "after its migrations, e.g. \"ALTER TABLE deliveries SET "
                        "(fillfactor = 100)\" (repeatable; SQLite is skipped)")  # fmt: skip
    args = parser.parse_args(argv)
    tmp = tempfile.TemporaryDirectory()
    name = f"zb_interference_{uuid.uuid4().hex[:8]}"
    created = False
    try:
        if not args.no_sqlite:
            await bench_database("sqlite", f"sqlite+aiosqlite:///{tmp.name}/{{}}.db", args)
        if not args.no_postgres:
            admin = await asyncpg.connect(f"{PG}/postgres")
            created = True
            for suffix in "abc":
                await admin.execute(f'CREATE DATABASE "{name}_{suffix}"')
            await admin.close()
            await bench_database(
                "postgres", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}_{{}}", args
            )
    finally:
        tmp.cleanup()
        if created:
            admin = await asyncpg.connect(f"{PG}/postgres")
            for suffix in "abc":
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}_{suffix}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
