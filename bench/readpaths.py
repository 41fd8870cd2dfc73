"""Read paths at a million events: admin event filters, `/admin/status`, and the pull API
against a raw read of the same pages, before and after, in the same run.

    python bench/readpaths.py [--events 1000000] [--db sqlite,postgresql] [--rounds 3]
                              [--queries 15] [--pages 60] [--before /tmp/before_rp]

For each database it creates a throwaway one (SQLite in a temporary directory; PostgreSQL a
database with a unique name on 127.0.0.1:5432, user postgres, dropped at the end), migrates
it to 0005 (the schema before the read-path indexes), seeds `--events` events with one
outbox row each for a `redis` sink (the last thousand pending, fifty dead) through the
driver's bulk path, and runs PostgreSQL's ANALYZE as autovacuum would (SQLite is never
analysed: the bridge does not run ANALYZE, so its plans must not need statistics).

Each measurement runs the real app in a child process (`PYTHONPATH` = the tree measured),
called over ASGI in-process, so the figures are the handlers' own cost:

- every filter of `GET /admin/events` alone (and a few combinations): p50 / p99 / max of
  `--queries` requests with varied values, including values that match nothing;
- `GET /admin/status`: p50 / p99 / max;
- the pull API (`GET /v1/subscriptions/{name}/events?limit=1000`, an unfiltered and a
  module-filtered subscription) over `--pages` consecutive pages, and a raw read of the
  same pages straight from the driver (sqlite3 / asyncpg, rows fetched, nothing built),
  interleaved, as events/s and the ratio.

With `--before DIR` (e.g. `git worktree add /tmp/before_rp HEAD` taken before the change)
that tree is measured first on the old schema, then the database is migrated to head and
the two trees are measured in interleaved rounds; medians of the rounds are printed. After
the migration the seeded events get the envelope heads the writer stores with each event
since migration 0011 (the raw read leaves that column out: it reads the event's own).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN = "readpaths-admin-token-0123456789"
SUB_TOKEN = "readpaths-subscription-token"
SINK = "redis"
PENDING, DEAD = 1000, 50
CRM_MODULES = ("Leads", "Contacts", "Deals", "Accounts", "Tasks")
BOOKS_MODULES = ("invoice", "contact", "bill")
RECORDS = 200_000
# One record in a thousand belongs to a rare Books source and module: an operator's filter
# on it must not walk the whole table to find its few events.
RARE_SOURCE, RARE_MODULE = "books-rare", "vendorpayment"


def record_of(i: int) -> int:
    return (i * 7919) % RECORDS


def shape(record: int) -> tuple[str, str, str]:
    """(product, source, module) of a record."""
    if record % 1000 == 7:
        return "books", RARE_SOURCE, RARE_MODULE
    if record % 5 == 0:
        return "books", "books-main", BOOKS_MODULES[record // 5 % len(BOOKS_MODULES)]
    return "crm", "crm", CRM_MODULES[record // 5 % len(CRM_MODULES)]


def record_id(record: int) -> str:
    return f"57257670{record:011d}"


def rows(count: int, start: datetime) -> Iterator[tuple[Any, ...]]:
    """Event rows in seq order (seq = i + 1), received over 30 days up to `start`."""
    step = timedelta(days=30) / count
    first = start - timedelta(days=30)
    for i in range(count):
        record = record_of(i)
        product, source, module = shape(record)
        roll = i % 200
        origin = "reconciliation" if roll < 5 else "replay" if roll == 5 else "webhook"
        op_roll = (i * 2_654_435_761 >> 9) % 100  # not aligned with the record's module
        operation = (
            "created" if op_roll < 10 else "deleted" if op_roll < 14
            else "changed" if op_roll < 15 else "updated"
        )  # fmt: skip
        received = first + step * i
        rid = record_id(record)
        data = json.dumps(
            {"id": rid, "Last_Name": f"Name {record}", "Email": f"r{record}@example.com",
             "Modified_Time": received.isoformat(timespec="seconds"), "Amount": i % 977}
        )  # fmt: skip
        yield (
            i + 1, f"01EVT{i:021d}", product, source, module, operation, rid,
            received - timedelta(seconds=1), received, origin, f"bench/{i}", data,
            None if origin == "reconciliation" else f"01REQ{i // 2:021d}",
            "missed" if origin == "reconciliation" else None,
        )  # fmt: skip


EVENT_COLUMNS = (
    "seq", "id", "product", "source", "module", "operation", "record_id", "occurred_at",
    "received_at", "origin", "dedup_key", "data", "request_id", "miss_cause",
)  # fmt: skip
DELIVERY_COLUMNS = (
    "id", "event_seq", "sink", "record_key", "status", "attempts", "next_attempt_at",
    "delivered_at", "created_at", "replay",
)  # fmt: skip


def delivery(event: tuple[Any, ...], count: int) -> tuple[Any, ...]:
    seq, received = event[0], event[8]
    status = "pending" if seq > count - PENDING else "dead" if seq % 20_000 == 0 else "delivered"
    key = f"{event[3]}/{event[4]}/{event[6]}"
    done = received if status == "delivered" else None
    return (seq, seq, SINK, key, status, 1, received, done, received, False)


# --- seeding ---------------------------------------------------------------------------


def heads(count: int, start: datetime) -> Iterator[tuple[int, str | None]]:
    """(seq, envelope head) of every seeded event, as the writer stores it since 0011."""
    from bridge.domain.envelope import envelope_head
    from bridge.domain.events import Event, Operation, Origin, Product

    for row in rows(count, start):
        seq, event_id, product, source, module, operation, rid, occurred, _, origin = row[:10]
        event = Event(Product(product), source, module, Operation(operation), rid, occurred,
                      Origin(origin), row[10], id=event_id)  # fmt: skip
        yield seq, envelope_head(event)


def seed_heads(url: str, count: int, start: datetime) -> None:
    """Give the seeded events the envelope heads the writer would have stored (migration
    0011 adds the column empty: events stored before it are written field by field)."""
    if url.startswith("sqlite"):
        db = sqlite3.connect(url.split("///", 1)[1])
        with db:
            db.executemany("UPDATE events SET envelope_head = ? WHERE seq = ?",
                           ((head, seq) for seq, head in heads(count, start)))  # fmt: skip
        db.close()
        return
    asyncio.run(_seed_heads_postgres(url.replace("+asyncpg", ""), count, start))


async def _seed_heads_postgres(dsn: str, count: int, start: datetime) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        found = list(heads(count, start))
        for at in range(0, len(found), 20_000):
            chunk = found[at : at + 20_000]
            await conn.execute(
                "UPDATE events AS e SET envelope_head = u.h FROM unnest($1::bigint[], "
                "$2::text[]) AS u(s, h) WHERE e.seq = u.s",
                [seq for seq, _ in chunk], [head for _, head in chunk],
            )  # fmt: skip
        await conn.execute("VACUUM ANALYZE events")  # autovacuum may be off (it is here)
    finally:
        await conn.close()


def _sqlite_time(moment: datetime) -> str:
    return moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def seed_sqlite(path: str, count: int, start: datetime) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    marks = ",".join("?" * len(EVENT_COLUMNS))
    dmarks = ",".join("?" * len(DELIVERY_COLUMNS))
    batch: list[tuple[Any, ...]] = []
    deliveries: list[tuple[Any, ...]] = []

    def flush() -> None:
        db.executemany(f"INSERT INTO events ({','.join(EVENT_COLUMNS)}) VALUES ({marks})", batch)
        db.executemany(
            f"INSERT INTO deliveries ({','.join(DELIVERY_COLUMNS)}) VALUES ({dmarks})", deliveries
        )
        batch.clear()
        deliveries.clear()

    for row in rows(count, start):
        d = delivery(row, count)
        batch.append((*row[:7], _sqlite_time(row[7]), _sqlite_time(row[8]), *row[9:]))
        deliveries.append(
            (*d[:6], _sqlite_time(d[6]), d[7] and _sqlite_time(d[7]), _sqlite_time(d[8]), d[9])
        )
        if len(batch) >= 50_000:
            flush()
    flush()
    db.commit()
    db.close()


async def seed_postgres(dsn: str, count: int, start: datetime) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        batch: list[tuple[Any, ...]] = []
        deliveries: list[tuple[Any, ...]] = []

        async def flush() -> None:
            await conn.copy_records_to_table("events", records=batch, columns=EVENT_COLUMNS)
            await conn.copy_records_to_table(
                "deliveries", records=deliveries, columns=DELIVERY_COLUMNS
            )
            batch.clear()
            deliveries.clear()

        for row in rows(count, start):
            batch.append(row)
            deliveries.append(delivery(row, count))
            if len(batch) >= 50_000:
                await flush()
        await flush()
        for table, column in (("events", "seq"), ("deliveries", "id")):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), {count})"
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def add_subscriptions(url: str, start: datetime) -> None:
    """An unfiltered and a module-filtered subscription, both at seq 0."""
    from sqlalchemy import insert

    from bridge.domain.credentials import token_digest
    from bridge.store.database import create_engine
    from bridge.store.models import SubscriptionRow

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for name, module in (("all", None), ("leads", "Leads")):
                await conn.execute(
                    insert(SubscriptionRow).values(
                        name=name, token_hash=token_digest(SUB_TOKEN), module=module,
                        acked_seq=0, created_at=start, updated_at=start,
                    )
                )  # fmt: skip
    finally:
        await engine.dispose()


def migrate(url: str, revision: str) -> None:
    code = "import asyncio, sys; from bridge.store.migrate import upgrade; "
    code += "asyncio.run(upgrade(sys.argv[1], sys.argv[2]))"
    subprocess.run(
        [sys.executable, "-c", code, url, revision], check=True, env=_env(ROOT, url), cwd=ROOT
    )


# --- measuring (in a child process, with the measured tree first on PYTHONPATH) ---------


def _env(tree: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(PYTHONPATH=str(tree), BRIDGE_DATABASE_URL=url, BRIDGE_ADMIN_TOKEN=ADMIN)
    env.update(BRIDGE_SCHEDULER="false", BRIDGE_LOG_LEVEL="warning", BRIDGE_SINKS="pull")
    return env


async def _call(app: Any, path: str, query: str, token: str) -> tuple[int, bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
    }  # fmt: skip
    status = 0
    body: list[bytes] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(body)


def filters(count: int, queries: int) -> dict[str, list[str]]:
    """Label -> the query strings sent for it (varied values; some match nothing)."""
    pick = random.Random(14)
    now = datetime(2026, 12, 6, tzinfo=UTC)
    first = now - timedelta(days=30)

    def records(n: int) -> list[str]:
        found = [record_id(record_of(pick.randrange(count))) for _ in range(n - n // 3)]
        return found + [record_id(RECORDS + k) for k in range(n // 3)]  # no events at all

    def at(days: float) -> str:
        return (first + timedelta(days=days)).isoformat().replace("+00:00", "Z")

    def cycle(*values: str) -> list[str]:
        return [values[k % len(values)] for k in range(queries)]

    return {
        "record_id": [f"record_id={r}" for r in records(queries)],
        "source": cycle("source=crm", f"source={RARE_SOURCE}", "source=nosuch"),
        "module": cycle("module=Leads", f"module={RARE_MODULE}", "module=Nosuch"),
        "operation": cycle("operation=deleted", "operation=changed", "operation=created"),
        "origin": cycle("origin=reconciliation", "origin=replay", "origin=webhook"),
        "product": cycle("product=books", "product=crm"),
        "request_id": [
            f"request_id=01REQ{pick.randrange(count // 2 + 50):021d}" for _ in range(queries)
        ],
        "since (recent)": cycle(f"since={at(29.9)}"),
        "until (old)": cycle(f"until={at(0.5)}", f"until={at(3)}"),
        "since+until (1 h, old)": cycle(f"since={at(2)}&until={at(2 + 1 / 24)}"),
        "source+module+record_id": [
            "source={}&module={}&record_id={}".format(*shape(r)[1:], record_id(r))
            for r in (record_of(pick.randrange(count)) for _ in range(queries))
        ],
        "source+module (rare)": cycle(f"source={RARE_SOURCE}&module={RARE_MODULE}"),
        "module+operation": cycle(
            "module=Leads&operation=deleted", f"module={RARE_MODULE}&operation=created"
        ),
        "cursor page (deep)": cycle(f"cursor={count // 2}", f"cursor={count // 10}"),
    }


def _stats(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered) * 1000, "p99": p99 * 1000, "max": ordered[-1] * 1000}


# An event's own columns, without `envelope_head` (migration 0011): what a raw read of
# the events costs, not of what the bridge stores to write their envelopes faster.
RAW_COLUMNS = (
    "seq, id, product, source, module, operation, record_id, occurred_at, received_at, "
    "origin, dedup_key, data, request_id, miss_cause, collapsed"
)


class RawReader:
    """The same page straight from the driver: rows fetched, nothing built."""

    def __init__(self, url: str, module: str | None) -> None:
        self.url = url
        where = "seq > {} AND module = 'Leads'" if module else "seq > {}"
        self.sql = f"SELECT {RAW_COLUMNS} FROM events WHERE {where} ORDER BY seq LIMIT 1000"
        self.db: Any = None

    async def __aenter__(self) -> RawReader:
        if self.url.startswith("sqlite"):
            self.db = sqlite3.connect(self.url.split("///", 1)[1])
        else:
            import asyncpg

            self.db = await asyncpg.connect(self.url.replace("+asyncpg", ""))
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.url.startswith("sqlite"):
            self.db.close()
        else:
            await self.db.close()

    async def page(self, cursor: int) -> int:
        if self.url.startswith("sqlite"):
            return len(self.db.execute(self.sql.format(cursor)).fetchall())
        return len(await self.db.fetch(self.sql.format(cursor)))


async def _timed(call: Any) -> tuple[Any, float]:
    began = time.perf_counter()
    found = await call
    return found, time.perf_counter() - began


async def _stats_functions(url: str, rounds: int) -> dict[str, dict[str, float]]:
    """The events part of the status, as queried today and by `events_stats` (if this tree
    has it): the one piece of the status that grew with the table."""
    from bridge.store import outbox_queries
    from bridge.store.database import create_engine

    engine = create_engine(url)
    found: dict[str, dict[str, float]] = {}
    try:
        functions = {"outbox_queries.event_stats": outbox_queries.event_stats}
        try:
            from bridge.store import events_stats

            functions["events_stats.event_stats"] = events_stats.event_stats
        except ImportError:
            pass
        for name, function in functions.items():
            times = [(await _timed(function(engine)))[1] for _ in range(rounds)]
            found[name] = _stats(times)
    finally:
        await engine.dispose()
    return found


async def _plans(url: str, count: int) -> dict[str, str]:
    """Each filter's plan, as the database explains this tree's admin events query."""
    from urllib.parse import parse_qsl

    from sqlalchemy.dialects import postgresql
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from bridge.domain.events import EventFilter
    from bridge.store.event_queries import events_query

    on_sqlite = url.startswith("sqlite")
    dialect = sqlite_dialect.dialect() if on_sqlite else postgresql.dialect()
    explain = "EXPLAIN QUERY PLAN " if on_sqlite else "EXPLAIN "
    plans: dict[str, str] = {}
    async with RawReader(url, None) as raw:
        for label, sent in filters(count, 1).items():
            params: dict[str, Any] = dict(parse_qsl(sent[0]))
            cursor = params.pop("cursor", None)
            for key in ("since", "until"):
                if key in params:
                    params[key] = datetime.fromisoformat(params[key].replace("Z", "+00:00"))
            before = int(cursor) if cursor else None
            query = events_query(EventFilter(**params), dialect.name, before_seq=before)
            compiled = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
            if on_sqlite:
                lines = [str(r[-1]) for r in raw.db.execute(explain + str(compiled)).fetchall()]
            else:
                found = [r[0].strip() for r in await raw.db.fetch(explain + str(compiled))]
                lines = [line for line in found if "Scan" in line or "Sort" in line]
            plans[label] = " / ".join(lines)
    return plans


async def _status_with_bounded_count(app: Any, queries: int) -> dict[str, float] | None:
    """`/admin/status` as it is once `DeliveryService.status` counts events with
    `events_stats.event_stats` (a measurement of the proposed call, swapped in here only;
    None when this tree has no `events_stats`)."""
    try:
        from bridge.store import events_stats, outbox_queries
    except ImportError:
        return None
    today = outbox_queries.event_stats
    outbox_queries.event_stats = events_stats.event_stats
    try:
        times = [(await _timed(_call(app, "/admin/status", "", ADMIN)))[1] for _ in range(queries)]
    finally:
        outbox_queries.event_stats = today
    return _stats(times)


async def measure(url: str, count: int, queries: int, pages: int) -> dict[str, Any]:
    from bridge.settings import Settings
    from bridge.web.app import create_app

    app = create_app(Settings.from_environ(os.environ))
    result: dict[str, Any] = {"filters": {}, "pull": {}}
    async with app.router.lifespan_context(app):
        await _call(app, "/admin/status", "", ADMIN)  # warm up: imports, pools, caches
        for label, sent in filters(count, queries).items():
            times = []
            for query in sent:
                began = time.perf_counter()
                status, _ = await _call(app, "/admin/events", query, ADMIN)
                times.append(time.perf_counter() - began)
                assert status == 200, (label, query, status)
            result["filters"][label] = _stats(times)
        times = []
        for _ in range(queries):
            began = time.perf_counter()
            status, _ = await _call(app, "/admin/status", "", ADMIN)
            times.append(time.perf_counter() - began)
            assert status == 200, status
        result["status"] = _stats(times)
        wired = await _status_with_bounded_count(app, queries)
        if wired is not None:
            result["status (events_stats wired)"] = wired
        for name, module in (("all", None), ("leads", "Leads")):
            events, took, raw_took = 0, 0.0, 0.0
            cursor = count // 3
            async with RawReader(url, module) as raw:
                for _ in range(pages):  # interleaved page by page: the same load on both
                    (status, body), spent = await _timed(
                        _call(app, f"/v1/subscriptions/{name}/events",
                              f"after={cursor}&limit=1000", SUB_TOKEN)
                    )  # fmt: skip
                    assert status == 200, (status, body[:200])
                    rows, raw_spent = await _timed(raw.page(cursor))
                    page = json.loads(body)
                    assert len(page["items"]) == rows
                    events, took, raw_took = events + rows, took + spent, raw_took + raw_spent
                    cursor = page["next"]
            result["pull"][name] = {"api": events / took, "raw": events / raw_took}
    result["event_stats"] = await _stats_functions(url, queries)
    return result


def run_measure(tree: Path, url: str, args: argparse.Namespace) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "readpaths.py"), "--measure", url,
         "--events", str(args.events), "--queries", str(args.queries),
         "--pages", str(args.pages)],
        env=_env(tree, url), cwd=tree, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- reporting -------------------------------------------------------------------------


def _median_of(runs: list[dict[str, Any]], *path: str) -> float:
    values = []
    for run in runs:
        node: Any = run
        for key in path:
            node = node[key]
        values.append(float(node))
    return statistics.median(values)


def report(db: str, phases: dict[str, list[dict[str, Any]]]) -> None:
    labels = list(phases)
    rounds = ", ".join(f"{k}: {len(v)}" for k, v in phases.items())
    print(f"\n== {db}: medians of rounds ({rounds})")
    first = phases[labels[0]][0]
    head = "".join(f" | {label:>28}" for label in labels)
    print(f"{'GET /admin/events filter (ms)':34}{head}")
    for name in first["filters"]:
        cells = "".join(
            " | {:>8.1f} {:>8.1f} {:>9.1f}".format(
                *(_median_of(phases[label], "filters", name, k) for k in ("p50", "p99", "max"))
            )
            for label in labels
        )
        print(f"{name:34}{cells}")
    cells = "".join(
        " | {:>8.1f} {:>8.1f} {:>9.1f}".format(
            *(_median_of(phases[label], "status", k) for k in ("p50", "p99", "max"))
        )
        for label in labels
    )
    print(f"{'/admin/status (ms, p50 p99 max)':34}{cells}")
    if "status (events_stats wired)" in phases[labels[-1]][0]:
        cells = "".join(
            " | {:>8.1f} {:>8.1f} {:>9.1f}".format(
                *(_median_of(phases[label], "status (events_stats wired)", k)
                  for k in ("p50", "p99", "max"))
            )
            if "status (events_stats wired)" in phases[label][0]
            else f" | {'-':>28}"
            for label in labels
        )  # fmt: skip
        print(f"{'  with events_stats wired (ms)':34}{cells}")
    for name in phases[labels[-1]][0]["event_stats"]:
        cells = "".join(
            " | {:>8.1f} {:>8.1f} {:>9.1f}".format(
                *(_median_of(phases[label], "event_stats", name, k) for k in ("p50", "p99", "max"))
            )
            if name in phases[label][0]["event_stats"]
            else f" | {'-':>28}"
            for label in labels
        )
        print(f"{'  ' + name + ' (ms)':34}{cells}")
    for name in first["pull"]:
        cells = ""
        for label in labels:
            ratios = [r["pull"][name]["api"] / r["pull"][name]["raw"] for r in phases[label]]
            cells += " | {:>8.0f} {:>8.0f} {:>9.2f}".format(
                _median_of(phases[label], "pull", name, "api"),
                _median_of(phases[label], "pull", name, "raw"),
                statistics.median(ratios),
            )
        print(f"{'pull ' + name + ' (ev/s api, raw, ratio)':34}{cells}")


def bench_database(db: str, args: argparse.Namespace) -> None:
    start = datetime(2026, 12, 6, tzinfo=UTC)
    tmp = tempfile.TemporaryDirectory()
    name = f"readpaths_{uuid.uuid4().hex[:12]}"
    if db == "sqlite":
        path = f"{tmp.name}/bridge.db"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        import asyncpg

        async def admin(sql: str) -> None:
            conn = await asyncpg.connect(PG_ADMIN)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        migrate(url, "0005")
        began = time.perf_counter()
        if db == "sqlite":
            seed_sqlite(path, args.events, start)
        else:
            asyncio.run(seed_postgres(url.replace("+asyncpg", ""), args.events, start))
        asyncio.run(add_subscriptions(url, start))
        print(f"{db}: seeded {args.events} events + outbox rows in "
              f"{time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
        phases: dict[str, list[dict[str, Any]]] = {}
        before = Path(args.before) if args.before else None
        if before is not None:
            phases["before (old schema)"] = [run_measure(before, url, args)]
        migrate(url, "head")
        seed_heads(url, args.events, start)
        if db == "postgresql":
            asyncio.run(admin_analyze(url))
        for _ in range(args.rounds):
            if before is not None:
                phases.setdefault("before code, new schema", []).append(
                    run_measure(before, url, args)
                )
            phases.setdefault("after", []).append(run_measure(ROOT, url, args))
            print(".", end="", flush=True)
        report(db, phases)
        plans = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "readpaths.py"), "--plans", url,
             "--events", str(args.events)],
            env=_env(ROOT, url), cwd=ROOT, check=True, capture_output=True, text=True,
        )  # fmt: skip
        print(f"\n{db}: plans of GET /admin/events (this tree)")
        for label, plan in json.loads(plans.stdout.strip().splitlines()[-1]).items():
            print(f"  {label:28} {plan}")
    finally:
        tmp.cleanup()
        if db == "postgresql":
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def admin_analyze(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--pages", type=int, default=60)
    parser.add_argument("--before", help="another checkout to measure first (same run)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child process: this URL
    parser.add_argument("--plans", help=argparse.SUPPRESS)  # child process: this URL
    args = parser.parse_args()
    if args.plans:
        print(json.dumps(asyncio.run(_plans(args.plans, args.events))))
        return
    if args.measure:
        found = asyncio.run(measure(args.measure, args.events, args.queries, args.pages))
        print(json.dumps(found))
        return
    for db in args.db.split(","):
        bench_database(db, args)


if __name__ == "__main__":
    main()
