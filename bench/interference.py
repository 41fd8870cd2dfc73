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
The variant's comparison leans its way: on PostgreSQL at ~3,700/s, the same two settings
swapped between the servers moved acknowledgement p50 by 1-1.5 ms towards whichever was
the variant. Not because the first relayed server takes four windows of events per cycle
to the variant's one: giving the variant as many (unmeasured; tried once, not kept) left
it so. The first one's relay is stopped and its backlog drained three times a cycle; the
variant's never. For an A/B of settings, `bench/sustained.py --variant` treats its
configurations alike.
Reported per condition: the medians over cycles of acknowledgement p50 and p99; per
acknowledged event, the CPU time of `serve` (without its relay child), of the relay
child, of every PostgreSQL process on the machine (0 on SQLite), of the Redis server, of
the bench's readers and of its load generator; how busy the machine's CPUs were; and per
acknowledged event, the time `serve`'s threads, PostgreSQL's processes and the load
generator spent runnable but waiting for a CPU (the scheduler's run-queue wait,
/proc/<pid>/task/<tid>/schedstat). The wake-ups `serve` sends its child run in every
condition of the relayed servers.
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
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import cpu_seconds, own_cpu, settings  # noqa: E402
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


class Unnoted(Arrivals):
    """Arrivals not timed: here the readers only consume, on as little CPU as they can
    (they share the machine with what is measured)."""

    def note(self, envelope: bytes, now: float) -> None:
        pass


def pull_main(port: int, name: str, token: str) -> None:
    """Read the subscription until terminated."""
    asyncio.run(consume_pull(port, name, token, Unnoted(), asyncio.Event()))


def redis_main(stream: str) -> None:
    """Read the stream until terminated."""
    asyncio.run(consume_redis(stream, Unnoted(), asyncio.Event()))


def postgres_pids() -> list[int]:
    """Every PostgreSQL process on the machine (its backends included: each is counted on
    its own, with `own_cpu`, not within the postmaster's children)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().startswith("postgres"):
                found.append(int(entry.name))
    return found


def runqueue_wait(pid: int) -> float:
    """Seconds the threads of a process spent runnable but waiting for a CPU (Linux
    /proc/<pid>/task/<tid>/schedstat, second field), its live threads only."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def machine_busy() -> tuple[float, float]:
    """(busy, all) CPU time of the whole machine so far, in clock ticks (/proc/stat)."""
    ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # idle and iowait are not busy


CPU_COLUMNS = ("serve", "relay", "db", "redis", "readers", "bench")
WAIT_COLUMNS = ("serve", "db", "bench")


def reading(serve: int, child: int | None, readers: list[int]) -> list[float]:
    """Counters that only grow, read before and after a window: the CPU seconds of
    `CPU_COLUMNS` (`serve` without its relay child; every PostgreSQL process; the Redis
    server; the bench's stream and pull readers; this process, the load generator, its
    own threads only), the run-queue wait of `WAIT_COLUMNS`, and the machine's busy and
    total ticks."""
    relay = cpu_seconds(child) if child else 0.0
    postgres = postgres_pids()
    found = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True)
    redis = [int(pid) for pid in found.stdout.split()]
    return [cpu_seconds(serve) - relay, relay, sum(map(own_cpu, postgres)),
            sum(map(cpu_seconds, redis)), sum(map(cpu_seconds, readers)), time.process_time(),
            runqueue_wait(serve), sum(map(runqueue_wait, postgres)),
            runqueue_wait(os.getpid()), *machine_busy()]  # fmt: skip


def _figures(values: list[float], width: int) -> str:
    return " ".join(f"{v:>{width}.0f}" for v in values)


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
        cpu_head = " ".join(f"{c:>7}" for c in CPU_COLUMNS)
        wait_head = " ".join(f"{c:>5}" for c in WAIT_COLUMNS)
        print(f"{'':>21} | {'':>23} | CPU us/ev {'':>46} | busy | run-queue wait us/ev\n"
              f"{'cycle':>5} {'condition':<15} | {'acked/s':>7} {'p50 ms':>7} {'p99 ms':>7} | "
              f"{cpu_head} | {'':>4} | {wait_head}")  # fmt: skip
        results: dict[str, list[list[float]]] = {c: [] for c in conditions}
        readers = [reader.pid or 0 for one in started for reader in (one.pull, one.redis)]
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
                serve = (target.server if target else plain).procs[0].pid
                child = target.child if target else None
                before = reading(serve, child, readers)
                try:
                    run = await drive(port, rate, args.window, args.connections)
                finally:
                    os.kill(busy.pid, signal.SIGSTOP)
                    os.kill(main.child, signal.SIGCONT)
                    os.kill(main.pull.pid, signal.SIGCONT)
                used = [b - a for b, a in zip(reading(serve, child, readers), before, strict=True)]
                acked = max(1, len(run.acked))
                # p50, p99 (ms); CPU and run-queue wait per event (us); the machine busy (%).
                row = [1000 * _percentile(run.latencies, 50),
                       1000 * _percentile(run.latencies, 99),
                       *(1e6 * u / acked for u in used[:-2]),
                       100 * used[-2] / max(1, used[-1])]  # fmt: skip
                results[condition].append(row)
                print(f"{cycle:>5} {condition:<15} | {acked / run.elapsed:>7.0f} {row[0]:>7.1f} "
                      f"{row[1]:>7.1f} | {_figures(row[2:8], 7)} | {row[11]:>3.0f}% | "
                      f"{_figures(row[8:11], 5)}")  # fmt: skip
                if target:
                    await drained(target.server.port, DRAIN_TIMEOUT)
        print(f"{db}: medians over {args.cycles} cycles (CPU, and run-queue wait, in us per "
              "acknowledged event)")  # fmt: skip
        paused = statistics.median(r[0] for r in results["relay paused"])
        for condition, rows in results.items():
            middle = [statistics.median(r[i] for r in rows) for i in range(len(rows[0]))]
            cpu = ", ".join(f"{c} {v:.0f}" for c, v in zip(CPU_COLUMNS, middle[2:8], strict=True))
            wait = ", ".join(
                f"{c} {v:.0f}" for c, v in zip(WAIT_COLUMNS, middle[8:11], strict=True)
            )
            print(f"  {condition:<15} p50 {middle[0]:6.1f} ms ({middle[0] / paused:4.2f}x paused)"
                  f"  p99 {middle[1]:6.1f} ms  machine busy {middle[11]:3.0f}%\n"
                  f"  {'':<15} CPU: {cpu} (all {sum(middle[2:8]):.0f})\n"
                  f"  {'':<15} run-queue wait: {wait}")  # fmt: skip
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
