"""Reconciliation's Zoho cost and detection time, against the minimum, on the sandbox Zoho.

    python bench/reconcile.py [--hours 4] [--rates 60/20,1500/500] [--drop-rate 0.25]
                              [--floor-minutes 5] [--pool 300]
                              [--backfill 20000] [--books-backfill 500] [--rounds 3]
                              [--only steady|backfill] [--limits lifted|bridge]
                              [--seed 1] [--postgres URL]

Everything runs in this process: the sandbox Zoho (`bridge.sandbox`) and a bridge served
by uvicorn on 127.0.0.1, wired together over real HTTP and sharing the sandbox's frozen
clock (as tests/channel_rig.py does), so simulated hours pass without sleeping. A wrapper
around the sandbox counts every Zoho request by kind (a CRM list walk apart from an
`ids=` fetch, which the sandbox's own labels do not tell apart); CRM credits are the
sandbox's (`state.crm_credits`: 1 a call, COQL 1/2/3 by LIMIT). SQLite in a temporary
directory unless `--postgres URL` (a database is made per bridge and dropped after).

1. Steady state, for each `--rates` pair (Leads/invoices changes per hour; by default a
   quiet and a busy org), twice: at the default intervals (15 min CRM, 60 min Books) and
   with both watches at the floor interval `--floor-minutes`. A managed CRM channel on
   Leads (automatic watch), a Books source linked to the connection, a watch on invoices,
   `--pool` records of each already there (one per 5 s: an org's history). For `--hours`
   of sandbox time records change (Poisson; CRM 20 % creates, 5 % deletes, the rest
   updates; Books 20 % creates, the rest updates) and the sandbox drops `--drop-rate` of
   the callbacks (seeded). The clock moves in the serve loop's ticks
   (BRIDGE_RECONCILE_TICK_SECONDS) and `rt.reconcile_loop.tick()` runs as `serve` would
   (webhook signals, due watches); ticks in which it could do nothing (no webhook since
   the last one, no watch due) are skipped. A quiet tail of max(interval, deletion-list
   interval) + grace + 2 min follows, so every dropped change can be found.
   - List calls against the minimum: per run, ceil(records changed since the previous run
     / 200), 1 for an idle run (the 304). Target: <= 1.05 x the busy minimum + 1 per idle
     run (+ 3 for Books: the one-time strategy probe, e #10). "Pages its read windows
     need": the same count over what each run actually reads (from its watermark -
     overlap), and what that would be if the watermark were never held at a version still
     in its grace period: where the calls above the minimum come from.
   - Record fetches against the minimum: CRM ceil(emitted / 100) `ids=` calls per run,
     Books one GET per emitted version. CRM credits (the sandbox's count, and the bridge's
     own `RunReport.credits`, which must agree) against list + fetch minimum + one
     deletion list per BRIDGE_RECONCILE_DELETES_MINUTES.
   - Detection: for every version the sandbox dropped (`dropped_versions`), the
     reconciliation event's `received_at` (the bridge's clock = the sandbox's) minus the
     change's time; p50 / p99 against interval + grace + 60 s (deletions: against the
     deletion-list interval + grace + 60 s). A dropped version nobody emitted is
     `superseded` if its record changed again before that bound (the poll sees the later
     version), else `undetected`. An emitted version the sandbox delivered is `spurious`.
2. Backfill: `--backfill` CRM Leads and `--books-backfill` Books invoices, one per second
   of sandbox time, made before any channel, webhook rule or watch existed (none was
   announced: every version is emitted and its record fetched), then `rt.runs.queue(since=
   ...)` + `execute`: CRM with BRIDGE_RECONCILE_COQL off and on, Books with the option
   `full_records` on and off, each on a fresh bridge database, `--rounds` interleaved
   rounds; calls and credits against the minimum (CRM: ceil(K/200) list calls, or 3
   credits per 2,000 COQL rows, + ceil(K/100) `ids=` fetches + the one deletion list;
   Books: ceil(K/200) list calls + one GET per record), records per second of wall time
   (median), and the same excluding the time the in-process fake Zoho spent answering.
   Books calls wait for the per-minute budget in sandbox time (the budget's sleep is
   replaced by advancing the frozen clock): "Zoho time" is how long that took.

`--limits lifted` (the default; backfills always use it) gives the connection a paid
plan's room (Books 100/min and 100,000/day, CRM 1,000,000 credits/day; the sandbox org
alike), so the figures are about the poller, not the governor. `--limits bridge` keeps
the bridge's default `Limits` (Books 60/min and 1,000/day, CRM 2,500 credits/day, of which
reconciliation may take 20 % / 10 %) and shows what the budget does to the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import math
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import asyncpg
import httpx
import structlog
from cryptography.fernet import Fernet
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.domain.reconcile_cursor import Cursor, read_from  # noqa: E402
from bridge.logs import configure_logging  # noqa: E402
from bridge.runtime import Runtime  # noqa: E402
from bridge.sandbox import RunningSandbox, SandboxState, create_sandbox_app, serve_app  # noqa: E402
from bridge.sandbox.model import Change, SandboxClock  # noqa: E402
from bridge.services.reconciler import RunReport  # noqa: E402
from bridge.settings import Settings  # noqa: E402
from bridge.store.migrate import upgrade  # noqa: E402
from bridge.store.models import EventRow  # noqa: E402
from bridge.web.app import create_app  # noqa: E402

ADMIN = "bench-admin-token-0123456789"
BOOKS_TOKEN = "bench-books-token-0123456789"
SECRET_KEY = Fernet.generate_key().decode()
ORG = "acme"
LIFTED_ORG: dict[str, Any] = {"books_per_minute": 100, "books_daily": 100_000,
                              "crm_concurrency": 10}  # fmt: skip
LIFTED_LIMITS = {"books_per_minute": 100, "books_daily": 100_000, "crm_concurrency": 10,
                 "crm_daily_credits": 1_000_000}  # fmt: skip
PER_PAGE, IDS_PER_CALL, COQL_ROWS, COQL_CREDITS = 200, 100, 2000, 3
# A Books watch probes its listing strategy once (e #10): at most three first pages.
PROBE_CALLS = 3


# -- the sandbox, counted ----------------------------------------------------------------


class FrozenClock(SandboxClock):
    """The sandbox's clock, standing still unless advanced: simulated time."""

    def __init__(self) -> None:
        super().__init__()
        self._base = float(int(time.time()))

    def now(self) -> float:
        return self._base + self.offset


def classify(method: str, path: str, query: bytes) -> str:
    """A sandbox request's kind: `crm list Leads`, `crm ids Leads`, `books get invoices`..."""
    parts = path.strip("/").split("/")
    if len(parts) < 3 or parts[0] != "dc":
        return "other"
    if parts[2] == "accounts":
        return "token"
    rest = parts[3:]
    if rest[:2] == ["crm", "v8"]:
        tail = rest[2:]
        if tail == ["coql"]:
            return "crm coql"
        if tail[:1] == ["actions"]:
            return "crm watch"
        if len(tail) == 2 and tail[1] == "deleted":
            return f"crm deleted {tail[0]}"
        if len(tail) == 1:
            fetch = "ids" in parse_qs(query.decode())
            return f"crm {'ids' if fetch else 'list'} {tail[0]}"
    if rest[:2] == ["books", "v3"]:
        tail = rest[2:]
        if tail[:1] == ["settings"]:
            return "books failed-actions"
        if len(tail) == 1:
            return f"books list {tail[0]}"
        if len(tail) == 2:
            return f"books get {tail[0]}"
    return f"other {method}"


class Tally:
    """ASGI wrapper around the sandbox app: requests by kind, 429s by kind, and the time
    spent inside the sandbox answering them."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.seconds = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        kind = classify(scope["method"], scope["path"], scope.get("query_string", b""))
        status = 0

        async def noted(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, noted)
        finally:
            self.seconds += time.perf_counter() - started
            self.calls[kind] += 1
            if status == 429:
                self.throttled[kind] += 1


@dataclass
class Zoho:
    """A running sandbox with its tally."""

    sandbox: RunningSandbox
    tally: Tally

    @property
    def state(self) -> SandboxState:
        return self.sandbox.state

    def now(self) -> datetime:
        return datetime.fromtimestamp(int(self.state.clock.now()), UTC)

    def credits(self) -> int:
        return self.state.crm_credits(ORG, window=1e12)


@asynccontextmanager
async def sandbox_zoho(seed: int, lifted: bool) -> AsyncIterator[Zoho]:
    state = SandboxState(seed=seed)
    state.clock = FrozenClock()
    state.add_org(ORG, **(LIFTED_ORG if lifted else {}))
    tally = Tally(create_sandbox_app(state))
    async with serve_app(tally, date_header=False) as url:
        yield Zoho(RunningSandbox(url, state), tally)


# -- bridges -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Databases:
    """A fresh, migrated database per bridge: copies of one migrated SQLite file, or
    PostgreSQL databases made (and dropped at the end) on the `--postgres` server."""

    def __init__(self, postgres: str | None, tmp: Path) -> None:
        self.postgres = postgres
        self.tmp = tmp
        self.template: Path | None = None
        self.made: list[str] = []

    async def new(self) -> str:
        if self.postgres is None:
            if self.template is None:
                self.template = self.tmp / "template.db"
                await upgrade(f"sqlite+aiosqlite:///{self.template}")
            path = self.tmp / f"bridge-{uuid.uuid4().hex[:8]}.db"
            shutil.copy(self.template, path)
            return f"sqlite+aiosqlite:///{path}"
        name = f"zb_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(_dsn(self.postgres))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        self.made.append(name)
        url = self.postgres.rsplit("/", 1)[0] + "/" + name
        await upgrade(url)
        return url

    async def drop(self) -> None:
        if self.postgres is None or not self.made:
            return
        admin = await asyncpg.connect(_dsn(self.postgres))
        try:
            for name in self.made:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass
class Bridge:
    url: str
    runtime: Runtime
    http: httpx.AsyncClient


@asynccontextmanager
async def bridge(
    database_url: str, zoho: Zoho, lifted: bool, **settings: Any
) -> AsyncIterator[Bridge]:
    """A bridge on 127.0.0.1 (no scheduler: the bench ticks it), its clock the sandbox's,
    with the connection `acme` to the sandbox org."""
    port = free_port()
    values: dict[str, Any] = {
        "database_url": database_url, "admin_token": ADMIN, "secret_key": SECRET_KEY,
        "public_url": f"http://127.0.0.1:{port}", "scheduler": False, "log_level": "warning",
    }  # fmt: skip
    config = Settings.from_environ({}, **{**values, **settings})
    app = create_app(config, clock=zoho.now)
    org = zoho.state.orgs[ORG]
    body: dict[str, Any] = {
        "name": ORG, "dc": org.dc, "client_id": org.client_id,
        "client_secret": org.client_secret, "refresh_token": next(iter(org.refresh_tokens)),
        "organization_id": org.organization_id,
        "accounts_url": zoho.sandbox.accounts_url(org.dc),
    }  # fmt: skip
    if lifted:
        body["limits"] = LIFTED_LIMITS
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with (
        serve_app(app, port=port) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http,
    ):
        added = await http.post("/admin/connections", json=body)
        if added.status_code != 201:
            raise SystemExit(f"adding the connection failed: {added.status_code} {added.text}")
        runtime: Runtime = app.state.runtime
        simulate_waits(runtime, zoho.state)
        yield Bridge(url, runtime, http)


def simulate_waits(runtime: Runtime, state: SandboxState) -> None:
    """The budget's and the retry loop's sleeps pass sandbox time instead of real time: a
    wait for the per-minute window (or a 429 backoff) takes simulated seconds, as it
    would take real ones in `serve`. (Private attributes: a bench's hook, not an API.)"""

    async def sleep(seconds: float) -> None:
        state.clock.advance(seconds)
        await asyncio.sleep(0)

    for holder in (runtime.zoho.budget, runtime.zoho.transport):
        if not hasattr(holder, "_sleep"):  # renamed: waits would be real, the clock frozen
            raise SystemExit(f"{type(holder).__name__} has no _sleep to simulate; update bench")
        holder._sleep = sleep


async def must(answer: Awaitable[httpx.Response], *ok: int) -> dict[str, Any]:
    response = await answer
    if response.status_code not in ok:
        raise SystemExit(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json() if response.content else {}
    return body


# -- statistics --------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ratio(measured: float, minimum: float) -> str:
    return f"{measured / minimum:.2f}" if minimum else "-"


Row = tuple[str, str, str, str, str]


def table(title: str, rows: list[Row], notes: list[str]) -> None:
    print(f"\n{title}")
    print(f"  {'':<34} {'measured':>16} {'minimum / target':>28} {'ratio':>6}  ok?")
    for name, measured, target, rate, ok in rows:
        print(f"  {name:<34} {measured:>16} {target:>28} {rate:>6}  {ok}")
    for note in notes:
        print(f"  {note}")


def mark(ok: bool) -> str:
    return "ok" if ok else "NO"


# -- steady state ------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """A change the simulation will make: at `offset` seconds after the start."""

    offset: int
    product: str  # crm | books


@dataclass(frozen=True)
class Applied:
    """A change the simulation made, at sandbox time `at`."""

    at: datetime
    product: str
    record_id: str
    op: str  # create | update | delete


@dataclass
class RunSeen:
    """One reconciliation run of a watch, as the bench saw it."""

    watch_id: int
    started: datetime
    read_from: datetime  # the oldest modified time the run reads (watermark - overlap)
    report: RunReport
    wall: float


def timeline(hours: float, rates: dict[str, float], rng: random.Random) -> list[Planned]:
    """Poisson arrivals per product over `hours`, whole seconds."""
    planned: list[Planned] = []
    for product, per_hour in rates.items():
        at = 0.0
        while per_hour > 0:
            at += rng.expovariate(per_hour / 3600)
            if at >= hours * 3600:
                break
            planned.append(Planned(int(at), product))
    planned.sort(key=lambda p: (p.offset, p.product))
    return planned


class Changer:
    """Makes the planned changes in the sandbox and remembers them. A record changed in
    the last 3 s is not picked again (one CRM callback window is +-1 s: two edits inside
    it are one version to any poll, reconcile_match's documented blind spot)."""

    def __init__(self, state: SandboxState, rng: random.Random, pool: int) -> None:
        self.state = state
        self.rng = rng
        self.alive: dict[str, list[str]] = {"crm": [], "books": []}
        self.touched: dict[str, float] = {}
        self.applied: list[Applied] = []
        for i in range(pool):  # an org's history: one record of each product every 5 s
            self.alive["crm"].append(state.crm_create("Leads", {"Last_Name": f"Seed {i}"}))
            self.alive["books"].append(
                state.books_create("invoices", {"invoice_number": f"S-{i}", "total": i})
            )
            state.clock.advance(5)

    def _pick(self, product: str, now: float) -> str:
        ids = self.alive[product]
        for _ in range(20 if ids else 0):
            record_id = ids[self.rng.randrange(len(ids))]
            if now - self.touched.get(record_id, -1e9) >= 3:
                return record_id
        return ""

    def make(self, product: str) -> None:
        state, now = self.state, self.state.clock.now()
        roll = self.rng.random()
        n = len(self.applied)
        record_id = "" if roll < 0.2 else self._pick(product, now)
        if product == "crm":
            if not record_id:
                record_id, op = state.crm_create("Leads", {"Last_Name": f"L{n}"}), "create"
                self.alive["crm"].append(record_id)
            elif roll > 0.95:
                state.crm_delete("Leads", record_id)
                self.alive["crm"].remove(record_id)
                op = "delete"
            else:
                state.crm_update("Leads", record_id, {"Description": f"edit {n}"})
                op = "update"
        elif not record_id:
            record_id = state.books_create("invoices", {"invoice_number": f"I-{n}", "total": n})
            self.alive["books"].append(record_id)
            op = "create"
        else:
            state.books_update("invoices", record_id, {"total": n})
            op = "update"
        self.touched[record_id] = now
        self.applied.append(Applied(state.clock.dt(), product, record_id, op))


@dataclass
class Steady:
    """What one steady-state simulation measured."""

    label: str
    rates: dict[str, float]
    intervals: dict[str, timedelta]
    overlaps: dict[str, timedelta]
    settle: timedelta
    grace: timedelta
    deletes_interval: timedelta
    runs: dict[str, list[RunSeen]]
    watch_start: dict[str, datetime]
    applied: list[Applied]
    dropped: set[Change]
    events: list[Any]
    calls: Counter[str]
    throttled: Counter[str]
    credits: int
    simulated: timedelta
    wall: float


async def steady_state(
    args: argparse.Namespace,
    dbs: Databases,
    label: str,
    rates: dict[str, float],
    floor: timedelta | None,
) -> Steady:
    rng = random.Random(args.seed)
    plan = timeline(args.hours, rates, rng)
    lifted = args.limits == "lifted"
    async with sandbox_zoho(args.seed, lifted) as zoho:
        state = zoho.state
        changer = Changer(state, random.Random(args.seed + 1), args.pool)
        state.clock.advance(120)  # the seeded records are older than every watch
        async with bridge(await dbs.new(), zoho, lifted) as b:
            rt = b.runtime
            channel = {"connection": ORG, "events": ["Leads.all"]}
            await must(b.http.post("/admin/channels", json=channel), 201)
            source = {"name": "acme-books", "tokens": [BOOKS_TOKEN]}
            await must(b.http.post("/admin/sources", json=source), 201)
            await must(b.http.patch("/admin/sources/acme-books", json={"connection": ORG}), 200)
            state.books_webhook("invoices", f"{b.url}/hooks/books/acme-books?token={BOOKS_TOKEN}")
            await rt.watches.add(ORG, "books", "invoices")
            watches = {w.product.value: w for w in await rt.watches.all()}
            assert set(watches) == {"crm", "books"}, watches
            policy = rt.reconciler.policy
            intervals = {p: policy.schedule(w).interval for p, w in watches.items()}
            if floor is not None:
                for w in watches.values():
                    await rt.watches.change(w.id, interval_seconds=int(floor.total_seconds()))
                intervals = dict.fromkeys(watches, floor)
            product_of = {w.id: p for p, w in watches.items()}
            runs: dict[str, list[RunSeen]] = {"crm": [], "books": []}
            original = rt.reconciler.run_watch

            async def observed(watch_id: int, *, due: bool = True) -> RunReport:
                watch = await rt.watches.get(watch_id)
                cursor = Cursor(watch.watermark, frozenset(watch.ids_at_watermark))
                since = read_from(cursor, policy.cursor(watch.product), watch.start_at)
                started, wall = zoho.now(), time.perf_counter()
                report = await original(watch_id, due=due)
                if report.outcome != "skipped":
                    seen = RunSeen(watch_id, started, since, report, time.perf_counter() - wall)
                    runs[product_of[watch_id]].append(seen)
                return report

            rt.reconciler.run_watch = observed  # type: ignore[method-assign]
            loop = rt.reconcile_loop
            assert loop is not None, "BRIDGE_RECONCILE must be on"
            state.drop_rate = args.drop_rate
            calls_before, throttled_before = (
                Counter(zoho.tally.calls),
                Counter(zoho.tally.throttled),
            )
            credits_before = zoho.credits()
            tick = timedelta(seconds=rt.settings.reconcile_tick_seconds)
            start = zoho.now()
            changes_end = start + timedelta(hours=args.hours)
            # Long enough for every dropped change to be found, deletions included.
            slowest = max(*intervals.values(), policy.deletes_interval)
            tail = slowest + policy.grace + timedelta(minutes=2)
            end = changes_end + tail
            wall = time.perf_counter()
            await loop.tick()
            next_due = await _next_due(rt)
            at, i, active = start, 0, False
            while at < end:
                at += tick
                while i < len(plan) and start + timedelta(seconds=plan[i].offset) < at:
                    when = start + timedelta(seconds=plan[i].offset)
                    _advance_to(state, when)
                    changer.make(plan[i].product)
                    await state.flush()  # the webhook arrives now, not later
                    i, active = i + 1, True
                _advance_to(state, at)
                if active or zoho.now() >= next_due:
                    await loop.tick()
                    next_due, active = await _next_due(rt), False
            await state.flush()
            wall = time.perf_counter() - wall
            events = await _reconciled(rt)
            return Steady(
                label=label, rates=rates, intervals=intervals, grace=policy.grace,
                overlaps={p: policy.cursor(w.product).overlap for p, w in watches.items()},
                settle=policy.settle,
                deletes_interval=policy.deletes_interval, runs=runs,
                watch_start={p: w.start_at for p, w in watches.items()},
                applied=changer.applied, dropped=state.dropped_versions(org=ORG),
                events=events, calls=zoho.tally.calls - calls_before,
                throttled=zoho.tally.throttled - throttled_before,
                credits=zoho.credits() - credits_before, simulated=zoho.now() - start,
                wall=wall,
            )  # fmt: skip


def _advance_to(state: SandboxState, moment: datetime) -> None:
    ahead = moment.timestamp() - state.clock.now()
    if ahead > 0:
        state.clock.advance(ahead)


async def _next_due(rt: Runtime) -> datetime:
    due = [w.next_run_at for w in await rt.watches.all() if w.status == "active"]
    return min(due) if due else datetime.max.replace(tzinfo=UTC)


async def _reconciled(rt: Runtime) -> list[Any]:
    query = select(
        EventRow.product, EventRow.module, EventRow.record_id, EventRow.operation,
        EventRow.occurred_at, EventRow.received_at, EventRow.miss_cause, EventRow.collapsed,
    ).where(EventRow.origin == "reconciliation")  # fmt: skip
    async with rt.engine.connect() as conn:
        return list(await conn.execute(query))


@dataclass
class Detection:
    latencies: list[float] = field(default_factory=list)
    delete_latencies: list[float] = field(default_factory=list)
    dropped: int = 0
    superseded: int = 0
    undetected: int = 0
    spurious: int = 0
    collapsed: int = 0
    causes: Counter[str] = field(default_factory=Counter)


def detection(result: Steady, product: str) -> Detection:
    found = Detection()
    bound = result.intervals[product] + result.grace + timedelta(seconds=60)
    delete_bound = result.deletes_interval + result.grace + timedelta(seconds=60)
    events = [e for e in result.events if e.product == product]
    emitted = {(e.record_id, e.occurred_at, e.operation == "deleted"): e for e in events}
    later: dict[str, list[datetime]] = {}
    for made in result.applied:
        if made.product == product:
            later.setdefault(made.record_id, []).append(made.at)
    matched = set()
    for change in sorted(result.dropped, key=lambda c: c.modified):
        if change.product != product:
            continue
        found.dropped += 1
        key = (change.record_id, change.modified, change.operation == "delete")
        event = emitted.get(key)
        if event is not None:
            matched.add(key)
            seconds = (event.received_at - change.modified).total_seconds()
            (found.delete_latencies if key[2] else found.latencies).append(seconds)
            continue
        times = later.get(change.record_id, [])
        nxt = bisect.bisect_right(times, change.modified)
        deadline = change.modified + (delete_bound if key[2] else bound)
        if nxt < len(times) and times[nxt] <= deadline:
            found.superseded += 1
        else:
            found.undetected += 1
    for key, event in emitted.items():
        found.causes[event.miss_cause or "?"] += 1
        found.collapsed += bool(event.collapsed)
        if key not in matched:
            found.spurious += 1
    return found


def listing_runs(result: Steady, product: str) -> list[RunSeen]:
    """The runs that listed (outcome ok): a run the budget deferred asked Zoho nothing,
    and the next run that lists reads its span."""
    return [r for r in result.runs[product] if r.report.outcome == "ok"]


def changed_per_run(result: Steady, product: str) -> list[int]:
    """For each run that listed: how many records (not deletions) changed since the
    previous one started (since the watch started, for the first)."""
    times = sorted(
        (c.at, c.record_id) for c in result.applied if c.product == product and c.op != "delete"
    )
    stamps = [t for t, _ in times]
    counts, previous = [], result.watch_start[product]
    for run in listing_runs(result, product):
        lo, hi = bisect.bisect_right(stamps, previous), bisect.bisect_right(stamps, run.started)
        counts.append(len({record_id for _, record_id in times[lo:hi]}))
        previous = run.started
    return counts


def window_pages(result: Steady, product: str, *, held: bool) -> int:
    """List pages the runs' read windows need: per run ceil(records modified since its
    `read_from` / 200), at least 1. `held=False`: as if the watermark were never held at
    a pending version (previous run's start - settle - overlap)."""
    times = sorted(
        (c.at, c.record_id) for c in result.applied if c.product == product and c.op != "delete"
    )
    stamps = [t for t, _ in times]
    pages, previous = 0, result.watch_start[product]
    lowest = result.settle + result.overlaps[product]
    for index, run in enumerate(listing_runs(result, product)):
        since = run.read_from
        if not held and index:
            since = max(previous - lowest, result.watch_start[product])
        lo, hi = bisect.bisect_left(stamps, since), bisect.bisect_right(stamps, run.started)
        pages += max(1, math.ceil(len({r for _, r in times[lo:hi]}) / PER_PAGE))
        previous = run.started
    return pages


def emitted_per_run(result: Steady, product: str) -> list[int]:
    """For each run that listed: the reconciled events (not deletions) it stored (by
    `received_at`)."""
    runs = listing_runs(result, product)
    starts = [r.started for r in runs]
    counts = [0] * len(runs)
    for event in result.events:
        if event.product == product and event.operation != "deleted":
            index = bisect.bisect_right(starts, event.received_at) - 1
            if index >= 0:
                counts[index] += 1
    return counts


def report_steady(result: Steady, args: argparse.Namespace) -> list[str]:
    """Print the CRM and Books tables of one simulation; return its failures."""
    failures: list[str] = []
    minutes = result.simulated.total_seconds() / 60
    print(f"\n=== Steady state, {result.label}: {args.hours:g} h of changes + a quiet tail "
          f"({minutes / 60:.1f} h simulated, {result.wall:.0f} s wall), drop rate "
          f"{args.drop_rate:.0%}, limits {args.limits}")  # fmt: skip
    for product in ("crm", "books"):
        failures += _product_table(result, product, args)
    return failures


def _product_table(result: Steady, product: str, args: argparse.Namespace) -> list[str]:
    runs = result.runs[product]
    interval = result.intervals[product]
    changed = changed_per_run(result, product)
    emitted = emitted_per_run(result, product)
    idle = sum(1 for n in changed if n == 0)
    busy_min = sum(math.ceil(n / PER_PAGE) for n in changed if n)
    list_min = busy_min + idle
    list_target = 1.05 * busy_min + idle
    outcomes = Counter(r.report.outcome for r in runs)
    calls, failures = result.calls, []
    found = detection(result, product)
    bound = (interval + result.grace + timedelta(seconds=60)).total_seconds()
    rows: list[Row] = []
    name = "CRM Leads" if product == "crm" else "Books invoices"
    rate = result.rates[product]
    scenario = f"{name} {rate:g}/h, {_minutes(interval)}"
    if product == "crm":
        listed = calls["crm list Leads"]
        fetched = calls["crm ids Leads"]
        fetch_min = sum(math.ceil(n / IDS_PER_CALL) for n in emitted)
        deleted = calls["crm deleted Leads"]
        deleted_ref = math.ceil(result.simulated / result.deletes_interval)
        credit_min = list_min + fetch_min + deleted_ref
        counted = sum(r.report.credits for r in runs)
        rows += [
            ("list calls (GET /Leads)", f"{listed:,}",
             f"{list_min:,} / {list_target:,.0f}", ratio(listed, list_min),
             mark(listed <= list_target)),
            ("ids= fetches (100 a call)", f"{fetched:,}", f"{fetch_min:,}",
             ratio(fetched, fetch_min), mark(fetched <= math.ceil(1.05 * fetch_min))),
            ("deleted-list calls", f"{deleted:,}", f"1 per {_minutes(result.deletes_interval)}"
             f" = {deleted_ref:,}", ratio(deleted, deleted_ref), "info"),
            ("CRM credits (sandbox)", f"{result.credits:,}", f"{credit_min:,}",
             ratio(result.credits, credit_min), "info"),
            ("  credits the bridge counted", f"{counted:,}", f"{result.credits:,}",
             ratio(counted, result.credits), mark(counted == result.credits)),
        ]  # fmt: skip
        if listed > list_target:
            failures.append(f"{scenario}: list calls {listed} > target {list_target:.0f}")
    else:
        listed = calls["books list invoices"]
        fetched = calls["books get invoices"]
        fetch_min = sum(emitted)
        failed_actions = calls["books failed-actions"]
        total = sum(v for k, v in calls.items() if k.startswith("books"))
        total_min = list_min + fetch_min
        list_target += PROBE_CALLS
        rows += [
            ("list calls (GET /invoices)", f"{listed:,}",
             f"{list_min:,} / {list_target:,.0f} w/ probe", ratio(listed, list_min),
             mark(listed <= list_target)),
            ("record GETs (one per version)", f"{fetched:,}", f"{fetch_min:,}",
             ratio(fetched, fetch_min), mark(fetched <= fetch_min)),
            ("failed-actions calls", f"{failed_actions:,}", f"1 per run = {len(runs):,}",
             ratio(failed_actions, len(runs)), "info"),
            ("Books calls in all", f"{total:,}", f"{total_min:,}", ratio(total, total_min),
             "info"),
        ]  # fmt: skip
        if listed > list_target:
            failures.append(f"{scenario}: list calls {listed} > target {list_target:.0f}")
    window, unheld = (
        window_pages(result, product, held=True),
        window_pages(result, product, held=False),
    )
    rows.insert(1, ("  pages its read windows need", f"{window:,}",
                    f"{unheld:,} if never held", ratio(window, list_min), "info"))  # fmt: skip
    p50, p99 = percentile(found.latencies, 50), percentile(found.latencies, 99)
    if found.latencies:
        rows.append((f"detection p50 / p99 (n={len(found.latencies)})",
                     f"{p50:,.0f} / {p99:,.0f} s", f"bound {bound:,.0f} s", ratio(p99, bound),
                     mark(p99 <= bound)))  # fmt: skip
    else:
        rows.append(("detection p50 / p99 (n=0)", "-", f"bound {bound:,.0f} s", "", "-"))
    if found.latencies and p99 > bound:
        failures.append(f"{scenario}: detection p99 {p99:.0f} s > {bound:.0f} s")
    if found.delete_latencies:
        d_bound = (result.deletes_interval + result.grace + timedelta(seconds=60)).total_seconds()
        d50, d99 = percentile(found.delete_latencies, 50), percentile(found.delete_latencies, 99)
        rows.append((f"  deletions p50 / p99 (n={len(found.delete_latencies)})",
                     f"{d50:,.0f} / {d99:,.0f} s", f"bound {d_bound:,.0f} s",
                     ratio(d99, d_bound), mark(d99 <= d_bound)))  # fmt: skip
        if not d99 <= d_bound:
            failures.append(f"{scenario}: deletion detection p99 {d99:.0f} s > {d_bound:.0f} s")
    clean = found.undetected == 0 and found.spurious == 0
    emitted_ok = found.dropped - found.superseded - found.undetected
    rows.append(("dropped: emitted/superseded/undetected",
                 f"{emitted_ok:,} / {found.superseded:,} / {found.undetected:,}",
                 "undetected 0", "", mark(found.undetected == 0)))  # fmt: skip
    rows.append(("spurious reconciled events", f"{found.spurious:,}", "0", "",
                 mark(found.spurious == 0)))  # fmt: skip
    if not clean:
        failures.append(
            f"{scenario}: {found.undetected} dropped versions undetected, {found.spurious} spurious"
        )
    versions = sum(r.report.versions for r in runs)
    run_wall = sum(r.wall for r in runs)
    rows.append(("versions matched per s of run time", f"{versions / run_wall:,.0f}/s"
                 if run_wall else "-", f"{1000 * statistics.median(r.wall for r in runs):.0f}"
                 " ms median run" if runs else "", "", "info"))  # fmt: skip
    changes = sum(1 for c in result.applied if c.product == product)
    notes = [
        f"{len(runs):,} runs ({len(changed):,} listed: {len(changed) - idle:,} with changes, "
        f"{idle:,} idle; outcomes "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()))
        + f"); {changes:,} changes made, {found.dropped:,} callbacks dropped; causes "
        + (", ".join(f"{k} {v}" for k, v in sorted(found.causes.items())) or "-")
        + f"; {found.collapsed} collapsed",
    ]
    throttled = sum(v for k, v in result.throttled.items() if k.startswith(product))
    if throttled:
        notes.append(f"{throttled} calls answered 429")
    verdict = (
        "list calls and detection within target, every dropped change found"
        if not failures
        else "MISSES: " + "; ".join(f.split(": ", 1)[1] for f in failures)
    )
    notes.append(f"verdict: {verdict}")
    title = (f"{name}, interval {_minutes(interval)}, grace {_minutes(result.grace)}, "
             f"{rate:g} changes/h")  # fmt: skip
    table(title, rows, notes)
    return failures


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:g} min"


# -- backfill ----------------------------------------------------------------------------


@dataclass
class Backfill:
    """One backfill run: its counts, the Zoho calls and credits, and its times."""

    variant: str
    records: int
    counts: dict[str, Any]
    calls: Counter[str]
    credits: int
    wall: float
    zoho_seconds: float
    simulated: float


VARIANTS = {
    "crm, COQL off": ("crm", {"reconcile_coql": False}, {}),
    "crm, COQL on": ("crm", {"reconcile_coql": True}, {}),
    "books, full_records on": ("books", {}, {"full_records": True}),
    "books, full_records off": ("books", {}, {"full_records": False}),
}


async def backfills(args: argparse.Namespace, dbs: Databases) -> list[str]:
    counts = {"crm": args.backfill, "books": args.books_backfill}
    async with sandbox_zoho(args.seed, lifted=True) as zoho:
        state = zoho.state
        since = zoho.now()
        made = max(counts.values())
        for i in range(made):
            if i < counts["crm"]:
                state.crm_create("Leads", {"Last_Name": f"Backfill {i}", "Email": f"b{i}@x.test"})
            if i < counts["books"]:
                state.books_create("invoices", {"invoice_number": f"B-{i}", "total": i})
            state.clock.advance(1)
        state.clock.advance(600)
        results: dict[str, list[Backfill]] = {v: [] for v in VARIANTS}
        wanted = [v for v in VARIANTS if counts[VARIANTS[v][0]] > 0]
        for _ in range(args.rounds):
            for variant in wanted:
                product, settings, options = VARIANTS[variant]
                done = await _backfill(
                    zoho, dbs, variant, product, since, counts[product], settings, options
                )
                results[variant].append(done)
    return report_backfills(results, wanted, args)


async def _backfill(
    zoho: Zoho, dbs: Databases, variant: str, product: str, since: datetime, records: int,
    settings: dict[str, Any], options: dict[str, Any],
) -> Backfill:  # fmt: skip
    async with bridge(await dbs.new(), zoho, True, **settings) as b:
        rt = b.runtime
        module = "Leads" if product == "crm" else "invoices"
        await rt.watches.add(ORG, product, module, options=options or None)
        run = await rt.runs.queue(connection=ORG, module=module, since=since)
        calls, credits = Counter(zoho.tally.calls), zoho.credits()
        in_zoho, simulated = zoho.tally.seconds, zoho.state.clock.now()
        wall = time.perf_counter()
        done = await rt.runs.execute(run.id)
        wall = time.perf_counter() - wall
        assert done is not None
        assert done.state == "done", done
        return Backfill(
            variant, records, dict(done.counts), zoho.tally.calls - calls,
            zoho.credits() - credits, wall, zoho.tally.seconds - in_zoho,
            zoho.state.clock.now() - simulated,
        )  # fmt: skip


def report_backfills(
    results: dict[str, list[Backfill]], wanted: list[str], args: argparse.Namespace
) -> list[str]:
    failures: list[str] = []
    print(f"\n=== Backfill: records made one per sandbox second before any channel, rule or "
          f"watch (none announced, all emitted and fetched); {args.rounds} interleaved "
          "rounds, each on a fresh bridge database; medians")  # fmt: skip
    for variant in wanted:
        rounds = results[variant]
        last = rounds[-1]
        k = last.records
        product = VARIANTS[variant][0]
        emitted = int(last.counts.get("emitted", 0))
        rows: list[Row] = []
        if product == "crm":
            listed, coql = last.calls["crm list Leads"], last.calls["crm coql"]
            fetched, deleted = last.calls["crm ids Leads"], last.calls["crm deleted Leads"]
            fetch_min = math.ceil(k / IDS_PER_CALL)
            if coql:
                walk_min, walk_credits = math.ceil(k / COQL_ROWS), COQL_CREDITS
                rows.append(("list calls + COQL calls", f"{listed:,} + {coql:,}",
                             f"COQL only: {walk_min:,}", ratio(listed + coql, walk_min),
                             "info"))  # fmt: skip
            else:
                walk_min, walk_credits = math.ceil(k / PER_PAGE), 1
                rows.append(("list calls (GET /Leads)", f"{listed:,}", f"{walk_min:,}",
                             ratio(listed, walk_min), mark(listed <= 1.05 * walk_min)))  # fmt: skip
            calls_min = walk_min + fetch_min + 1
            credit_min = walk_min * walk_credits + fetch_min + 1
            total = listed + coql + fetched + deleted
            rows += [
                ("ids= fetches", f"{fetched:,}", f"{fetch_min:,}", ratio(fetched, fetch_min),
                 mark(fetched <= fetch_min)),
                ("deleted-list calls", f"{deleted:,}", "1", ratio(deleted, 1), "info"),
                ("CRM calls", f"{total:,}", f"{calls_min:,}", ratio(total, calls_min),
                 mark(total <= 1.05 * calls_min)),
                ("CRM credits (sandbox)", f"{last.credits:,}", f"{credit_min:,}",
                 ratio(last.credits, credit_min), mark(last.credits <= 1.05 * credit_min)),
                ("  credits the bridge counted", f"{last.counts.get('credits', 0):,}",
                 f"{last.credits:,}", ratio(last.counts.get("credits", 0), last.credits),
                 mark(last.counts.get("credits") == last.credits)),
            ]  # fmt: skip
            ok = total <= 1.05 * calls_min and last.credits <= 1.05 * credit_min
        else:
            listed, fetched = last.calls["books list invoices"], last.calls["books get invoices"]
            full = VARIANTS[variant][2].get("full_records", True)
            walk_min, fetch_min = math.ceil(k / PER_PAGE), (k if full else 0)
            total = sum(v for kind, v in last.calls.items() if kind.startswith("books"))
            target = 1.05 * (walk_min + fetch_min) + PROBE_CALLS
            rows += [
                ("list calls (GET /invoices)", f"{listed:,}", f"{walk_min:,}",
                 ratio(listed, walk_min), "info"),
                ("record GETs", f"{fetched:,}", f"{fetch_min:,}", ratio(fetched, fetch_min),
                 mark(fetched <= fetch_min)),
                ("Books calls", f"{total:,}",
                 f"{walk_min + fetch_min:,} / {target:,.0f} w/ probe",
                 ratio(total, walk_min + fetch_min), mark(total <= target)),
            ]  # fmt: skip
            ok = total <= target
        rows.append(("emitted", f"{emitted:,}", f"{k:,}", ratio(emitted, k), mark(emitted == k)))
        ok = ok and emitted == k
        rate = statistics.median(r.records / r.wall for r in rounds)
        own = statistics.median(r.records / max(r.wall - r.zoho_seconds, 1e-9) for r in rounds)
        spread = [r.records / r.wall for r in rounds]
        rows.append(("records/s (wall, median)", f"{rate:,.0f}/s",
                     f"range {min(spread):,.0f}-{max(spread):,.0f}", "", "info"))  # fmt: skip
        wall = statistics.median(r.wall for r in rounds)
        rows.append(("records/s excl. fake-Zoho time", f"{own:,.0f}/s", f"{wall:.1f} s wall",
                     "", "info"))  # fmt: skip
        notes = []
        if last.simulated > 1:
            minutes, rate = last.simulated / 60, k / last.simulated
            notes.append(f"Zoho time (waiting for the per-minute budget, sandbox clock): "
                         f"{minutes:.1f} min = {rate:.2f} records/s")  # fmt: skip
        if not ok:
            failures.append(f"backfill {variant}: above 1.05 x the minimum or not all emitted")
        notes.append(f"verdict: {'within 1.05 x the minimum, all emitted' if ok else 'MISSES'}")
        table(f"Backfill {variant}: {k:,} records", rows, notes)
    return failures


# -- main --------------------------------------------------------------------------------

LEGEND = """
Steady state. List minimum: per run ceil(records changed since the previous run / 200), 1 for
an idle run (the 304); target 1.05 x the busy part + 1 per idle run (+3 for the Books probe).
Fetch minimum: ceil(emitted / 100) ids= calls per run (CRM), one GET per version (Books).
Detection: reconciliation event received_at - change time, bound interval + grace + 60 s
(deletions: deletion-list interval + grace + 60 s). info rows have no target."""


def rates_arg(text: str) -> list[dict[str, float]]:
    """ "60/20,1500/500" -> [{"crm": 60, "books": 20}, {"crm": 1500, "books": 500}]."""
    pairs = []
    for item in text.split(","):
        crm, _, books = item.partition("/")
        try:
            pairs.append({"crm": float(crm), "books": float(books or 0)})
        except ValueError:
            raise argparse.ArgumentTypeError(f"not CRM/BOOKS changes per hour: {item!r}") from None
    return pairs


async def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument(
        "--hours",
        type=float,
        default=4.0,
        help="sandbox hours of changes per steady-state run (default 4)",
    )
    parser.add_argument(
        "--rates",
        type=rates_arg,
        default=rates_arg("60/20,1500/500"),
        metavar="CRM/BOOKS,...",
        help="change rates per hour, one steady-state pair per item: Leads/invoices "
        "(default 60/20,1500/500: a quiet and a busy org)",
    )
    parser.add_argument(
        "--drop-rate",
        type=float,
        default=0.25,
        help="share of callbacks the sandbox drops (default 0.25)",
    )
    parser.add_argument(
        "--floor-minutes",
        type=float,
        default=5.0,
        help="the floor interval, both watches (default 5; at least 1)",
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=300,
        help="records of each product that exist before the watches",
    )
    parser.add_argument(
        "--backfill",
        type=int,
        default=20_000,
        help="CRM records in the backfill (default 20,000; 0 skips)",
    )
    parser.add_argument(
        "--books-backfill",
        type=int,
        default=500,
        help="Books invoices in the backfill (default 500; 0 skips)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved backfill rounds per variant (median)"
    )
    parser.add_argument("--only", choices=["steady", "backfill"], help="run one part only")
    parser.add_argument("--limits", choices=["lifted", "bridge"], default="lifted",
                        help="steady state's quota: a paid plan's (default) or the bridge's "
                             "default Limits")  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=1, help="seeds the changes and the dropped callbacks"
    )
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="PostgreSQL server URL (postgresql+asyncpg://user@host/db)",
    )
    args = parser.parse_args()
    if args.floor_minutes < 1:
        parser.error("--floor-minutes: a watch's interval is at least 60 s")
    configure_logging("warning")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    started = time.perf_counter()
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        dbs = Databases(args.postgres, Path(tmp))
        try:
            print(f"bench/reconcile.py on {'PostgreSQL' if args.postgres else 'SQLite'}, "
                  f"{os.cpu_count()} cores, seed {args.seed}")  # fmt: skip
            if args.only in (None, "steady"):
                print(LEGEND)
                floor = timedelta(minutes=args.floor_minutes)
                for rates in args.rates:
                    for label, chosen in (
                        ("default intervals", None),
                        (f"floor interval {args.floor_minutes:g} min", floor),
                    ):
                        result = await steady_state(args, dbs, label, rates, chosen)
                        failures += report_steady(result, args)
            if args.only in (None, "backfill"):
                failures += await backfills(args, dbs)
        finally:
            await dbs.drop()
    summary = "All targets met." if not failures else f"{len(failures)} target(s) missed:"
    print(f"\n{time.perf_counter() - started:.0f} s in all. {summary}")
    for failure in failures:
        print(f"  - {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
