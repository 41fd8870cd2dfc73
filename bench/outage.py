"""Drain time after a broker outage: how long the outbox backlog takes once Redis is back.

    python bench/outage.py [--events 1800] [--outage 71] [--root DIR] [--env BRIDGE_X=v ...]

Starts its own `redis-server` on a free port (never the shared one) and `zoho-bridge
serve` (SQLite in a temporary directory, the `redis` sink, default retry settings) as
processes, stops Redis, sends `--events` CRM webhooks (one event each, distinct records)
spread evenly over `--outage` seconds, starts Redis again on the same port, and reports:
when the outage showed in `/admin/status`, the time from Redis being back to an empty
outbox, and how many distinct events reached the stream. `--root` runs the bridge of
another checkout (e.g. `git archive HEAD | tar -x -C DIR`) for a before/after comparison.
Bounded: gives up 15 minutes after Redis is back.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

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

GIVE_UP = 900.0


def start_redis(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def serve(port: int, env: dict[str, str], root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--port", str(port)],
                            env=env, cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip


async def redis_up(url: str) -> None:
    for _ in range(200):
        client = Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            await client.ping()
            return
        except Exception:
            await asyncio.sleep(0.05)
        finally:
            await client.aclose()
    raise SystemExit("redis did not start")


async def status(http: httpx.AsyncClient) -> dict[str, Any]:
    answer = await http.get("/admin/status", headers={"Authorization": f"Bearer {ADMIN}"})
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1800)
    parser.add_argument("--outage", type=float, default=71.0, help="seconds Redis is down")
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to run")
    parser.add_argument("--env", action="append", default=[], help="BRIDGE_X=value for serve")
    args = parser.parse_args()
    root = args.root.resolve()
    tmp = tempfile.TemporaryDirectory()
    redis_port, port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    stream = f"bench.outage.{uuid.uuid4().hex[:8]}"
    env = bridge_env(f"sqlite+aiosqlite:///{tmp.name}/bench.db", root)
    env.update(BRIDGE_RECONCILE="false", BRIDGE_SCHEDULER="false", BRIDGE_SINKS="pull,redis",
               BRIDGE_REDIS_URL=redis_url, BRIDGE_REDIS_STREAM=stream)  # fmt: skip
    env.update(settings(args.env))
    redis = start_redis(redis_port)
    bridge = serve(port, env, root)
    make = crm_maker(uuid.uuid4().hex[:8])
    try:
        await redis_up(redis_url)
        wait_up(port, "/readyz")
        configure(port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            redis.terminate()
            redis.wait()
            down_at = time.perf_counter()
            shown_after = None
            for i in range(args.events):
                path, body = make(i)
                answer = await http.post(path, content=body,
                                         headers={"content-type": "application/json"})  # fmt: skip
                answer.raise_for_status()
                if (
                    shown_after is None
                    and i % 20 == 0
                    and any("redis" in p for p in (await status(http))["problems"])
                ):
                    shown_after = time.perf_counter() - down_at
                await asyncio.sleep(max(0.0, down_at + (i + 1) * args.outage / args.events
                                        - time.perf_counter()))  # fmt: skip
            [sink] = (await status(http))["sinks"]
            print(f"bridge at {root}: {args.events} events during a "
                  f"{time.perf_counter() - down_at:.0f} s Redis outage")  # fmt: skip
            print(f"  outage in /admin/status problems after: "
                  f"{'never' if shown_after is None else f'{shown_after:.1f} s'}")  # fmt: skip
            print(f"  pending when Redis came back: {sink['pending']}, dead: {sink['dead']}")
            redis = start_redis(redis_port)
            await redis_up(redis_url)
            back_at = time.perf_counter()
            while time.perf_counter() - back_at < GIVE_UP:
                [sink] = (await status(http))["sinks"]
                if sink["pending"] == 0:
                    break
                await asyncio.sleep(0.1)
            drained = time.perf_counter() - back_at
            client = Redis.from_url(redis_url)
            ids = {fields[b"id"] for _, fields in await client.xrange(stream)}
            await client.aclose()
            print(f"  drained {drained:.1f} s after Redis was back "
                  f"(pending {sink['pending']}, dead {sink['dead']}); "
                  f"{len(ids)} distinct events in the stream")  # fmt: skip
    finally:
        bridge.terminate()
        bridge.wait(timeout=30)
        redis.terminate()
        redis.wait(timeout=30)
        tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
