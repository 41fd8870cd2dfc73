"""Claiming and settling outbox rows as the backlog grows, on SQLite and PostgreSQL.

    python bench/claim.py [--sizes 1000,100000,1000000] [--limit 100] [--rounds 3]
                          [--no-postgres] [--compare-with DIR]

For each database the outbox of one sink is filled to each size in turn (two events per
record, so half the pending rows wait behind their record's first one), and at each size
`outbox.claim` of `--limit` rows (released again after, so the backlog stays put) and
`outbox.mark_delivered` of a claimed batch (put back to pending after) are timed. On
PostgreSQL autovacuum is off for the bench database and the statistics are those taken
at the first size: the plans must not depend on fresh statistics. A last line per database
is measured after ANALYZE at the largest size, and one more with the statistics of an
outbox whose every row was delivered (all rows set delivered, VACUUM ANALYZE, set pending
again: what autovacuum usually sees when the relay keeps up; migration 0010).

`--compare-with DIR` times the `bridge` package of another checkout (say a `git worktree`
of the commit before) on the same databases, in interleaved rounds, each measurement in a
process of its own. Prints the median ms per call.
PostgreSQL is reached at 127.0.0.1:5432 as postgres (database `bench_claim`, dropped and
created anew).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/bench_claim"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
REPS = 5


def _fill_sql(dialect: str, start: int, stop: int) -> list[str]:
    """Events start+1..stop (one a millisecond) and one pending row each for sink `s`;
    record = n // 2."""
    if dialect == "sqlite":
        numbers = (f"WITH RECURSIVE n(i) AS (SELECT {start + 1} UNION ALL SELECT i + 1 FROM n "
                   f"WHERE i < {stop}) ")  # fmt: skip
        num = "n.i"
        source = "FROM n"
        pad = "printf('%026d', n.i)"
        # One event a millisecond, stored as SQLAlchemy stores SQLite datetimes.
        ts = ("strftime('%Y-%m-%d %H:%M:%S', '2026-11-30', '+' || (n.i / 1000) || ' seconds')"
              " || printf('.%06d', (n.i % 1000) * 1000)")  # fmt: skip
    else:
        numbers = ""
        num = "g.i"
        source = f"FROM generate_series({start + 1}, {stop}) AS g(i)"
        pad = "lpad(g.i::text, 26, '0')"
        ts = "timestamptz '2026-11-30 00:00:00+00' + g.i * interval '1 millisecond'"
    false = "0" if dialect == "sqlite" else "false"
    return [
        f"{numbers}INSERT INTO events (id, product, source, module, operation, record_id, "
        f"occurred_at, received_at, origin, dedup_key, data) SELECT {pad}, 'crm', 'bench', "
        f"'Leads', 'updated', 'r' || ({num} / 2), {ts}, {ts}, 'webhook', 'bench:' || {num}, "
        f"'{{}}' {source}",
        f"INSERT INTO deliveries (event_seq, sink, record_key, status, attempts, "
        f"next_attempt_at, created_at, replay) SELECT seq, 's', 'bench/Leads/' || record_id, "
        f"'pending', 0, received_at, received_at, {false} FROM events WHERE seq > "
        f"(SELECT coalesce(max(event_seq), 0) FROM deliveries)",
    ]


async def _exec(url: str, statements: list[str]) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await engine.dispose()


async def measure(url: str, limit: int) -> dict[str, float]:
    """Median ms of claim and mark_delivered with the `bridge` first on sys.path."""
    from sqlalchemy import text

    from bridge.store import database, outbox

    # The relay's own engine where the measured tree has one (its session settings).
    engine = getattr(database, "create_relay_engine", database.create_engine)(url)
    lease = timedelta(seconds=60)
    claims, marks = [], []
    try:
        for rep in range(REPS + 1):  # the first warms the connection up, untimed
            started = time.perf_counter()
            rows = await outbox.claim(engine, "s", "bench", now=NOW, lease=lease, limit=limit)
            if rep:
                claims.append(time.perf_counter() - started)
            assert len(rows) == limit, len(rows)
            ids = [r.delivery_id for r in rows]
            started = time.perf_counter()
            await outbox.mark_delivered(engine, ids, NOW)
            if rep:
                marks.append(time.perf_counter() - started)
            async with engine.begin() as conn:  # back as they were: the backlog stays put
                await conn.execute(
                    text(
                        "UPDATE deliveries SET status = 'pending', attempts = 0, "
                        "lease_owner = NULL, lease_until = NULL, delivered_at = NULL "
                        f"WHERE id IN ({', '.join(map(str, ids))})"
                    )
                )
    finally:
        await engine.dispose()
    return {"claim": 1000 * statistics.median(claims), "mark": 1000 * statistics.median(marks)}


def _measure_in(root: Path, url: str, limit: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure", url, "--root", str(root),
         "--limit", str(limit)],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"measuring with {root} failed:\n{out.stderr}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def bench_database(
    name: str, url: str, sizes: list[int], roots: dict[str, Path], rounds: int, limit: int
) -> list[tuple[str, str, dict[str, dict[str, float]]]]:
    from bridge.store.migrate import upgrade

    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    if dialect == "postgresql":
        await _exec(
            PG_ADMIN, ["DROP DATABASE IF EXISTS bench_claim", "CREATE DATABASE bench_claim"]
        )
    await upgrade(url)
    if dialect == "postgresql":
        await _exec(url, ["ALTER TABLE deliveries SET (autovacuum_enabled = false)",
                          "ALTER TABLE events SET (autovacuum_enabled = false)"])  # fmt: skip
    lines = []
    filled = 0
    steps = [(size, "") for size in sizes]
    if dialect != "sqlite":
        steps += [(sizes[-1], "analyzed"), (sizes[-1], "analyzed all delivered")]
    for size, analyze in steps:
        started = time.perf_counter()
        if size > filled:
            await _exec(url, _fill_sql(dialect, filled, size))
            filled = size
        first = size == sizes[0] and not analyze
        if dialect == "postgresql" and (analyze == "analyzed" or first):
            await _exec(url, ["ANALYZE deliveries", "ANALYZE events"])
        if analyze == "analyzed all delivered":
            # Autovacuum's usual view of an outbox that keeps up: history, nothing pending.
            await _exec(url, ["UPDATE deliveries SET status = 'delivered'",
                              "VACUUM ANALYZE deliveries",
                              "UPDATE deliveries SET status = 'pending'"])  # fmt: skip
        print(f"  {name} {size:,} pending (filled in {time.perf_counter() - started:.0f} s)",
              file=sys.stderr)  # fmt: skip
        runs: dict[str, list[dict[str, float]]] = {label: [] for label in roots}
        for _ in range(rounds):
            for label, root in roots.items():
                runs[label].append(_measure_in(root, url, limit))
        medians = {
            label: {k: statistics.median(r[k] for r in rs) for k in ("claim", "mark")}
            for label, rs in runs.items()
        }
        lines.append((name, f"{size:,} {analyze}".strip(), medians))
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--compare-with", type=Path)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        sys.path.insert(0, str(args.root))
        print(json.dumps(await measure(args.measure, args.limit)))
        return
    sys.path.insert(0, str(ROOT))
    sizes = [int(s) for s in args.sizes.split(",")]
    roots = {"this": ROOT}
    if args.compare_with:
        roots["other"] = args.compare_with.resolve()
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        lines += await bench_database("sqlite", f"sqlite+aiosqlite:///{tmp}/claim.db", sizes,
                                      roots, args.rounds, args.limit)  # fmt: skip
    if not args.no_postgres:
        lines += await bench_database("postgres", PG_URL, sizes, roots, args.rounds, args.limit)
        await _exec(PG_ADMIN, ["DROP DATABASE IF EXISTS bench_claim"])
    print(f"\nclaim of {args.limit} / mark_delivered of {args.limit}, median ms per call "
          f"({REPS} calls per process, medians of {args.rounds} interleaved rounds)")  # fmt: skip
    header = f"{'database':<9} {'pending':<30}" + "".join(
        f" {label + ' claim':>12} {label + ' mark':>11}" for label in roots
    )
    print(header + (f" {'claim ratio':>11}" if len(roots) > 1 else ""))
    for name, size, medians in lines:
        row = f"{name:<9} {size:<30}" + "".join(
            f" {m['claim']:>12.2f} {m['mark']:>11.2f}" for m in medians.values()
        )
        if len(roots) > 1:
            row += f" {medians['other']['claim'] / medians['this']['claim']:>10.1f}x"
        print(row)


if __name__ == "__main__":
    asyncio.run(main())
