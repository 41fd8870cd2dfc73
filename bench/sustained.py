"""End to end at fixed rates for a sustained minute: does delivery keep up with ingest?

    python bench/sustained.py [--seconds 60] [--fractions 0.25,0.5,0.75] [--no-postgres]
                              [--no-sqlite] [--max-seconds 10] [--connections 64]
                              [--relay serve,equal,inline,process] [--env BRIDGE_X=VALUE ...]
                              [--variant BRIDGE_X=VALUE ...]
                              [--rates 1500,2500 (instead of fractions)]

(also `python bench/deliver.py --sustained ...`). Per database (SQLite in a temporary
directory, PostgreSQL in databases of their own), `serve` processes on 127.0.0.1:

- A: only the pull sink, nothing to relay. First driven closed-loop (bench/loadgen.py, 32
  connections, `--max-seconds`) for the bridge's own maximum ingest rate.
- B: a Redis Streams sink (a stream of its own, deleted after), relayed by `serve` as it
  is by default (its relay in a child process), and a pull subscription whose consumer
  long-polls and acknowledges as it reads.
- B0: the same with the child at `serve`'s own CPU priority (BRIDGE_RELAY_NICE=0; by
  default it runs 10 steps nicer).
- B': the same with the relay on `serve`'s own event loop (BRIDGE_RELAY_PROCESS=false).
- C: the same with `serve` under BRIDGE_RELAY=false and a `zoho-bridge relay` process
  beside it (`--relay serve,equal,inline,process` picks among B, B0, B' and C).
- V: with `--variant BRIDGE_X=VALUE`, B under those settings as well.

Then, for each fraction of that maximum in turn, CRM callbacks are offered open-loop at that
fixed rate for `--seconds`, to A, then B, then C and V (a request's latency runs from the
moment it was due, so a server that falls behind is charged for the queue it causes). For
B, C and V the outbox backlog is sampled every 2 s; each record's arrival on Redis and on the pull
subscription is matched with its acknowledgement (the two consumers run in a process of
their own: in the load generator's they fell behind it, and their arrival times measured
the bench). After each run the backlog drains, and every acknowledged event must have
arrived on both (`lost` must be 0).

Reported per rate and configuration: acks/s, acknowledgement p50/p99, the bridge's CPU
time per acknowledged event (us/ev: its processes, all threads), backlog growth per second
(least squares over the run) and at the end, ack-to-arrival p50/p99 on Redis and on the
pull subscription; and per configuration the max flat rate: the highest rate it took on
time (answered at 98% of the offered rate) with a backlog that did not grow (growth under
1% of the rate, at most 1 s of events pending at the end), as a share of the maximum
ingest rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import (  # noqa: E402
    ADMIN,
    bridge_env,
    configure,
    cpu_seconds,
    crm_maker,
    free_port,
    settings,
    start,
    wait_up,
)
from bench.loadgen import run as closed_loop  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
HEADERS = {"Authorization": f"Bearer {ADMIN}"}
RECORD = re.compile(rb'"zohorecordid":\s*"([^"]+)"')
SAMPLE_EVERY = 2.0
DRAIN_TIMEOUT = 300.0


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass
class Drive:
    """One open-loop run: when each request was acknowledged, and how long it waited."""

    acked: dict[str, float] = field(default_factory=dict)  # record id -> ack time
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    elapsed: float = 0.0


async def drive(port: int, rate: float, seconds: float, connections: int) -> Drive:
    run_id = uuid.uuid4().hex[:8]
    make = crm_maker(run_id)
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    out = Drive()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (item := await due.get()) is not None:
                n, when = item
                path, body = make(n)
                writer.write(
                    f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json"
                    f"\r\ncontent-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                now = time.perf_counter()
                out.latencies.append(now - when)
                if head.startswith(b"HTTP/1.1 200"):
                    out.acked[f"{run_id}{n}"] = now
                else:
                    out.failures += 1
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    started = time.perf_counter()
    total = int(rate * seconds)
    sent = 0
    while sent < total:
        now = time.perf_counter()
        while sent < total and started + sent / rate <= now:
            due.put_nowait((sent, started + sent / rate))
            sent += 1
        await asyncio.sleep(0.002)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    out.elapsed = time.perf_counter() - started
    return out


class Arrivals:
    """Record id -> first arrival time, for one consumer."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def note(self, envelope: bytes, now: float) -> None:
        for match in RECORD.finditer(envelope):
            self.at.setdefault(match.group(1).decode(), now)


async def consume_redis(stream: str, arrivals: Arrivals, stop: asyncio.Event) -> None:
    client = Redis.from_url(REDIS_URL)
    newest = await client.xrevrange(stream, count=1)  # earlier runs' entries are not read
    last = newest[0][0] if newest else "0"
    try:
        while not stop.is_set():
            for _, entries in await client.xread({stream: last}, count=1000, block=200) or []:
                now = time.perf_counter()
                for entry_id, fields in entries:
                    last = entry_id
                    arrivals.note(fields[b"envelope"], now)
    finally:
        await client.aclose()


async def consume_pull(port: int, name: str, token: str, arrivals: Arrivals,
                       stop: asyncio.Event) -> None:  # fmt: skip
    """A pull consumer as the README shows it: long-poll, handle, acknowledge. It starts
    where the subscription was acknowledged (an earlier run's consumer left it there)."""
    base = f"http://127.0.0.1:{port}/v1/subscriptions/{name}"
    auth = {"Authorization": f"Bearer {token}"}
    cursor: int | None = None
    async with httpx.AsyncClient(timeout=30) as http:
        while not stop.is_set():
            after = {} if cursor is None else {"after": cursor}
            answer = await http.get(f"{base}/events", headers=auth,
                                    params={**after, "limit": 1000, "wait": 1})  # fmt: skip
            if answer.status_code == 429:
                await asyncio.sleep(0.1)
                continue
            answer.raise_for_status()
            arrivals.note(answer.content, time.perf_counter())
            found = re.search(rb'"next":\s*(\d+)\}\s*$', answer.content)
            assert found is not None, answer.content[-200:]
            if int(found.group(1)) != cursor:
                cursor = int(found.group(1))
                (
                    await http.post(f"{base}/ack", headers=auth, json={"seq": cursor})
                ).raise_for_status()


async def pending(http: httpx.AsyncClient, port: int) -> int:
    answer = await http.get(f"http://127.0.0.1:{port}/admin/status", headers=HEADERS)
    answer.raise_for_status()
    return int({s["name"]: s["pending"] for s in answer.json()["sinks"]}.get("redis", 0))


async def drained(port: int, within: float) -> None:
    """Until the outbox has nothing pending, or `within` seconds have passed."""
    deadline = time.perf_counter() + within
    async with httpx.AsyncClient(timeout=30) as http:
        while time.perf_counter() < deadline and await pending(http, port):  # noqa: ASYNC110
            await asyncio.sleep(0.2)


async def sample_backlog(port: int, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        started = time.perf_counter()
        while not stop.is_set():
            samples.append((time.perf_counter() - started, await pending(http, port)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY)


def growth_per_second(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of the backlog over the run, rows per second."""
    if len(samples) < 2:
        return 0.0
    ts, ys = [t for t, _ in samples], [float(y) for _, y in samples]
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var if var else 0.0


@dataclass
class Server:
    label: str
    port: int
    procs: list[Any]  # `serve`, and the `relay` process beside it if any
    stream: str
    subscription: tuple[str, str] | None = None  # (name, token)

    def cpu(self) -> float:
        return sum(cpu_seconds(proc.pid) for proc in self.procs)


async def start_server(
    label: str,
    url: str,
    sinks: str,
    stream: str,
    extra: dict[str, str] | None = None,
    relay_process: bool = False,
    inline: bool = False,
    nice: str | None = None,
) -> Server:
    env = bridge_env(url) | {"BRIDGE_SINKS": sinks, "BRIDGE_REDIS_STREAM": stream} | (extra or {})
    env |= {"BRIDGE_RELAY_NICE": nice} if nice is not None else {}
    port = free_port()
    serve_env = env | ({"BRIDGE_RELAY": "false"} if relay_process else {})
    serve_env |= {"BRIDGE_RELAY_PROCESS": "false"} if inline else {}
    procs = [start([sys.executable, "-m", "bridge", "serve", "--port", str(port)], serve_env)]
    try:
        wait_up(port, "/readyz")
    except BaseException:
        procs[0].terminate()  # never left running (with its relay) after the bench
        raise
    if relay_process:  # after `serve`, which applies the migrations
        procs.append(start([sys.executable, "-m", "bridge", "relay"], env))
    configure(port)
    server = Server(label, port, procs, stream)
    if "redis" in sinks:
        name = f"bench{uuid.uuid4().hex[:6]}"
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"http://127.0.0.1:{port}/admin/subscriptions",
                                     headers=HEADERS, json={"name": name})  # fmt: skip
        answer.raise_for_status()
        server.subscription = (name, answer.json()["token"])
    return server


async def max_ingest(port: int, seconds: float) -> float:
    make = crm_maker(uuid.uuid4().hex[:8])
    await closed_loop("127.0.0.1", port, make, connections=32, seconds=1.0)  # warm-up
    result = await closed_loop("127.0.0.1", port, crm_maker(uuid.uuid4().hex[:8]),
                               connections=32, seconds=seconds)  # fmt: skip
    return result.rate()


def consumers_main(stream: str, port: int, name: str, token: str, conn: Any) -> None:
    """The Redis and pull consumers, in a process of their own (`multiprocessing`): in the
    load generator's process they fell behind it (their arrival times then measured the
    bench, not the bridge). Consumes until told which records to expect (`conn`), then until
    all have arrived or 30 s have passed; sends back {record id: arrival} per consumer.
    `time.perf_counter` is the system's monotonic clock: comparable across processes."""

    async def run() -> tuple[dict[str, float], dict[str, float]]:
        stop = asyncio.Event()
        on_redis, on_pull = Arrivals(), Arrivals()
        tasks = [
            asyncio.create_task(consume_redis(stream, on_redis, stop)),
            asyncio.create_task(consume_pull(port, name, token, on_pull, stop)),
        ]
        loop = asyncio.get_running_loop()
        expected: set[str] = set(await loop.run_in_executor(None, conn.recv))
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and not (  # noqa: ASYNC110
            expected <= set(on_redis.at) and expected <= set(on_pull.at)
        ):
            await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*tasks)
        return on_redis.at, on_pull.at

    conn.send(asyncio.run(run()))
    conn.close()


async def run_with_sink(server: Server, rate: float, args: Any) -> dict[str, Any]:
    assert server.subscription is not None
    stop = asyncio.Event()
    samples: list[tuple[float, int]] = []
    spawn = multiprocessing.get_context("spawn")
    mine, theirs = spawn.Pipe()
    consumers = spawn.Process(
        target=consumers_main,
        args=(server.stream, server.port, *server.subscription, theirs),
    )
    consumers.start()
    await asyncio.sleep(1.0)  # the consumers are reading before the load starts
    sampler = asyncio.create_task(sample_backlog(server.port, samples, stop))
    cpu = server.cpu()
    result = await drive(server.port, rate, args.seconds, args.connections)
    cpu = server.cpu() - cpu
    async with httpx.AsyncClient(timeout=30) as http:
        at_end = await pending(http, server.port)
    started = time.perf_counter()
    await drained(server.port, DRAIN_TIMEOUT)
    drain_seconds = time.perf_counter() - started
    stop.set()
    await sampler
    mine.send(list(result.acked))
    loop = asyncio.get_running_loop()
    redis_at, pull_at = await loop.run_in_executor(None, mine.recv)
    consumers.join(timeout=30)
    on_redis, on_pull = Arrivals(), Arrivals()
    on_redis.at, on_pull.at = redis_at, pull_at
    growth = growth_per_second(samples)
    redis_lat = [on_redis.at[r] - t for r, t in result.acked.items() if r in on_redis.at]
    pull_lat = [on_pull.at[r] - t for r, t in result.acked.items() if r in on_pull.at]
    lost = sum(1 for r in result.acked if r not in on_redis.at or r not in on_pull.at)
    # Flat: every request answered on time (a server that cannot take the rate does not
    # grow a backlog either), and the outbox did not grow.
    kept_up = len(result.acked) / result.elapsed >= 0.98 * rate
    flat = kept_up and growth < 0.01 * rate and at_end <= max(rate, 100)
    return {
        "acked/s": len(result.acked) / result.elapsed,
        "p50": 1000 * _percentile(result.latencies, 50),
        "p99": 1000 * _percentile(result.latencies, 99),
        "failed": result.failures,
        "growth": growth,
        "backlog": at_end,
        "drain": drain_seconds,
        "redis p50": 1000 * _percentile(redis_lat, 50),
        "redis p99": 1000 * _percentile(redis_lat, 99),
        "pull p50": 1000 * _percentile(pull_lat, 50),
        "pull p99": 1000 * _percentile(pull_lat, 99),
        "lost": lost,
        "flat": flat,
        "cpu": 1e6 * cpu / max(1, len(result.acked)),
    }


async def run_without_sink(server: Server, rate: float, args: Any) -> dict[str, Any]:
    cpu = server.cpu()
    result = await drive(server.port, rate, args.seconds, args.connections)
    cpu = server.cpu() - cpu
    return {
        "cpu": 1e6 * cpu / max(1, len(result.acked)),
        "acked/s": len(result.acked) / result.elapsed,
        "p50": 1000 * _percentile(result.latencies, 50),
        "p99": 1000 * _percentile(result.latencies, 99),
        "failed": result.failures,
    }


# Where the relay runs: --relay name, label, database suffix, start_server's options.
PLACEMENTS: list[tuple[str, str, str, dict[str, Any]]] = [
    ("serve", "redis, serve's child", "b", {}),
    ("equal", "redis, child nice 0", "e", {"nice": "0"}),
    ("inline", "redis, serve's loop", "d", {"inline": True}),
    ("process", "redis, relay process", "c", {"relay_process": True}),
]


async def bench_database(db: str, url: str, args: Any) -> None:
    stream = f"zb.sustained.{uuid.uuid4().hex[:8]}"
    servers: list[Server] = []
    try:
        extra = settings(args.env)
        plain = await start_server("no push sink", url.replace("{}", "a"), "pull", stream, extra)
        servers.append(plain)
        relayed: list[Server] = []  # each also in `servers` at once: stopped in `finally`
        for name, label, db_name, how in PLACEMENTS:
            if name in args.relay:
                servers.append(await start_server(
                    label, url.replace("{}", db_name), "pull,redis", f"{stream}.{db_name}", extra,
                    **how,
                ))  # fmt: skip
                relayed.append(servers[-1])
        if args.variant:  # serve's child under the --variant settings too
            variant = settings(args.variant)
            servers.append(await start_server(
                "redis, variant", url.replace("{}", "f"), "pull,redis", f"{stream}.f",
                extra | variant,
            ))  # fmt: skip
            relayed.append(servers[-1])
        ceiling = await max_ingest(plain.port, args.max_seconds)
        print(f"\n{db}: maximum ingest rate (no push sink, closed loop, 32 connections, "
              f"{args.max_seconds:.0f} s): {ceiling:.0f} acks/s")  # fmt: skip
        print(f"CRM callbacks offered open-loop for {args.seconds:.0f} s at each rate, "
              f"{args.connections} connections; latencies in ms; us/ev: CPU time of the "
              "bridge's processes per acknowledged event")  # fmt: skip
        print(f"{'offered/s':>9} {'share':>5} {'configuration':<21} | {'acked/s':>7} {'p50':>6} "
              f"{'p99':>6} {'us/ev':>5} | {'growth/s':>8} {'at end':>7} {'drain s':>7} | "
              f"{'redis p50':>9} {'p99':>6} {'pull p50':>8} {'p99':>6} | {'lost':>4} "
              f"{'flat':>4}")  # fmt: skip
        best = {server.label: 0.0 for server in relayed}
        rates = args.rates or [fraction * ceiling for fraction in args.fractions]
        for rate in rates:
            fraction = rate / ceiling
            a = await run_without_sink(plain, rate, args)
            print(f"{rate:>9.0f} {fraction:>5.2f} {plain.label:<21} | {a['acked/s']:>7.0f} "
                  f"{a['p50']:>6.1f} {a['p99']:>6.1f} {a['cpu']:>5.0f} |")  # fmt: skip
            for server in relayed:
                b = await run_with_sink(server, rate, args)
                if b["flat"]:
                    best[server.label] = max(best[server.label], rate)
                print(f"{'':>9} {'':>5} {server.label:<21} | {b['acked/s']:>7.0f} "
                      f"{b['p50']:>6.1f} {b['p99']:>6.1f} {b['cpu']:>5.0f} | "
                      f"{b['growth']:>8.1f} {b['backlog']:>7} {b['drain']:>7.1f} | "
                      f"{b['redis p50']:>9.1f} {b['redis p99']:>6.0f} {b['pull p50']:>8.1f} "
                      f"{b['pull p99']:>6.0f} | {b['lost']:>4} "
                      f"{'yes' if b['flat'] else 'NO':>4}")  # fmt: skip
        for label, rate in best.items():
            print(f"{db}, {label}: max flat rate {rate:.0f}/s = {rate / ceiling:.2f} of the "
                  f"maximum ingest rate ({ceiling:.0f}/s)")  # fmt: skip
    finally:
        for server in servers:
            for proc in server.procs:
                proc.terminate()
            for proc in server.procs:
                proc.wait(timeout=30)
        client = Redis.from_url(REDIS_URL)
        await client.delete(*(server.stream for server in servers))
        await client.aclose()


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--fractions", default="0.25,0.5,0.75")
    parser.add_argument("--rates", help="offered rates (events/s) instead of fractions")
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--relay", default="serve,inline,process",
                        help="where the relay runs, one configuration each: serve (its child "
                        "process, the default), equal (the child at serve's own CPU priority: "
                        "BRIDGE_RELAY_NICE=0), inline (serve's event loop: "
                        "BRIDGE_RELAY_PROCESS=false), process (a `zoho-bridge relay` beside "
                        "serve under BRIDGE_RELAY=false)")  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="BRIDGE_X=VALUE",
                        help="a setting for every server (repeatable)")  # fmt: skip
    parser.add_argument("--variant", action="append", default=[], metavar="BRIDGE_X=VALUE",
                        help="one more configuration: serve's child under this setting too "
                        "(repeatable)")  # fmt: skip
    args = parser.parse_args(argv)
    args.fractions = [float(f) for f in args.fractions.split(",")]
    args.relay = args.relay.split(",")
    if not set(args.relay) <= {name for name, *_ in PLACEMENTS}:
        parser.error("--relay takes serve, equal, inline and process, separated by commas")
    args.rates = [float(r) for r in args.rates.split(",")] if args.rates else None
    tmp = tempfile.TemporaryDirectory()
    pg_names: list[str] = []
    try:
        if not args.no_sqlite:
            await bench_database("sqlite", f"sqlite+aiosqlite:///{tmp.name}/{{}}.db", args)
        if not args.no_postgres:
            base = f"zb_sustained_{uuid.uuid4().hex[:8]}"
            admin = await asyncpg.connect(f"{PG}/postgres")
            for suffix in ("a", "b", "c", "d", "e", "f"):
                await admin.execute(f'CREATE DATABASE "{base}_{suffix}"')
                pg_names.append(f"{base}_{suffix}")
            await admin.close()
            await bench_database(
                "postgres", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{base}_{{}}", args
            )
    finally:
        tmp.cleanup()
        for name in pg_names:
            admin = await asyncpg.connect(f"{PG}/postgres")
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    asyncio.run(main())
