"""`zoho-bridge reconcile watch add|list|pause|resume|remove`, `reconcile status`,
`reconcile run`: polling Zoho for the changes whose webhooks never arrived."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from bridge.cli.common import console, print_json, print_table, run_async, runtime_for, settings_of
from bridge.domain.reconcile_causes import MissCause
from bridge.domain.states import RunState
from bridge.runtime import Runtime
from bridge.services.watches import MAX_INTERVAL_SECONDS, MIN_INTERVAL_SECONDS

CAUSES = tuple(c.value for c in MissCause)
WATCH_ID = click.IntRange(1, 2**63 - 1)
FOLLOW_SECONDS = 1.0
Show = Callable[[dict[str, Any]], None]


def iso_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 time; without an offset it is read as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("not an ISO 8601 time; e.g. 2026-01-01T00:00:00Z") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def human(seconds: float) -> str:
    """A duration for people: 45s, 3m 20s, 2h 5m, 3d 4h."""
    total = max(int(seconds), 0)
    for unit, size, sub, sub_size in (("d", 86400, "h", 3600), ("h", 3600, "m", 60),
                                      ("m", 60, "s", 1)):  # fmt: skip
        if total >= size:
            return f"{total // size}{unit} {total % size // sub_size}{sub}"
    return f"{total}s"


def eta(elapsed: float, done: int, total: int) -> str:
    """Time left, from the watches done so far and how long they took."""
    if total and done >= total:
        return "done"
    if done <= 0 or total <= 0:
        return "ETA -"
    return f"ETA {human(elapsed / done * (total - done))}"


def by_cause(counts: dict[str, Any], prefix: str = "") -> str:
    """`missed 3, gap 1` from a run's or a day's counts (`would_emit_` for a dry run)."""
    parts = [f"{c} {counts[prefix + c]}" for c in CAUSES if counts.get(prefix + c)]
    return ", ".join(parts) or "none"


def progress_text(counts: dict[str, Any], dry_run: bool) -> str:
    found = f"would emit {counts.get('would_emit', 0)}" if dry_run else (
        f"emitted {counts.get('emitted', 0)}")  # fmt: skip
    text = (f"versions {counts.get('versions', 0)} · calls {counts.get('calls', 0)} · "
            f"credits {counts.get('credits', 0)} · {found}")  # fmt: skip
    return f"{text} · {counts['waiting']}" if counts.get("waiting") else text


def _time(value: str | None) -> str:
    return value.replace("T", " ").replace("Z", "") if value else "-"


@click.group()
def reconcile() -> None:
    """Reconciliation: poll Zoho for changes whose webhooks never arrived and emit them as
    events (origin `reconciliation`). `serve` runs every watch on its interval."""


@reconcile.group()
def watch() -> None:
    """Watches: what reconciliation polls, a connection's CRM module or Books entity."""


@watch.command("add")
@click.option("--connection", required=True, metavar="NAME", help="The Zoho connection.")
@click.option("--crm", "crm", metavar="MODULE", help="A CRM module API name, e.g. Leads.")
@click.option("--books", "books", metavar="ENTITY", help="A Books entity, e.g. invoices.")
@click.option(
    "--interval", type=click.IntRange(MIN_INTERVAL_SECONDS, MAX_INTERVAL_SECONDS),
    metavar="SECONDS",
    help="Longest time between runs (default: BRIDGE_RECONCILE_CRM_MINUTES / _BOOKS_MINUTES).",
)  # fmt: skip
@click.option(
    "--strategy", type=click.Choice(["filter", "sorted", "scan"]),
    help="Books listing strategy (default: probed on the first run, reviewed every run).",
)  # fmt: skip
@click.option(
    "--full-records/--list-rows", "full_records", default=None,
    help="Emit each missed record as fetched on its own (default), or the row as Zoho's "
    "list showed it (fewer calls).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def watch_add(
    ctx: click.Context, connection: str, crm: str | None, books: str | None,
    interval: int | None, strategy: str | None, full_records: bool | None, as_json: bool,
) -> None:  # fmt: skip
    """Watch a CRM module (--crm) or a Books entity (--books) of a connection. Its cursor
    starts now; history is reconciled with `reconcile run --since`."""
    if (crm is None) == (books is None):
        raise click.UsageError("give exactly one of --crm MODULE and --books ENTITY")
    product, module = ("crm", crm) if crm is not None else ("books", books or "")
    options = None if full_records is None else {"full_records": full_records}
    async with runtime_for(settings_of(ctx)) as rt:
        added = await rt.watches.add(
            connection, product, module, interval_seconds=interval, strategy=strategy,
            options=options,
        )  # fmt: skip
        view = await rt.watches.view_one(added.id)
    if as_json:
        print_json(view)
        return
    click.echo(f"watch {view['id']} added: {connection} {product} {view['module']}, "
               f"at least every {human(view['interval_seconds'])}")  # fmt: skip


@watch.command("list")
@click.option("--connection", metavar="NAME", help="Only this connection's watches.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def watch_list(ctx: click.Context, connection: str | None, as_json: bool) -> None:
    """List watches: what each polls, how often, and its state."""
    async with runtime_for(settings_of(ctx)) as rt:
        if connection is not None:
            await rt.connections.get(connection)
        views = await rt.watches.views(connection=connection)
    if as_json:
        print_json(views)
        return
    print_table(
        ["id", "connection", "product", "module", "status", "interval", "strategy", "next run",
         "automatic"],
        [[v["id"], v["connection"], v["product"], v["module"], v["status"],
          human(v["interval_seconds"]), v["strategy"] or "-", _time(v["next_run_at"]),
          "yes" if v["automatic"] else ""] for v in views],
    )  # fmt: skip


@watch.command("pause")
@click.argument("watch_id", metavar="ID", type=WATCH_ID)
@click.pass_context
@run_async
async def watch_pause(ctx: click.Context, watch_id: int) -> None:
    """Pause watch ID: no runs until it is resumed (its cursor stays)."""
    async with runtime_for(settings_of(ctx)) as rt:
        await rt.watches.pause(watch_id)
    click.echo(f"watch {watch_id} paused")


@watch.command("resume")
@click.argument("watch_id", metavar="ID", type=WATCH_ID)
@click.pass_context
@run_async
async def watch_resume(ctx: click.Context, watch_id: int) -> None:
    """Resume watch ID: due now, it catches up from its cursor."""
    async with runtime_for(settings_of(ctx)) as rt:
        await rt.watches.resume(watch_id)
    click.echo(f"watch {watch_id} active again; it catches up from its cursor")


@watch.command("remove")
@click.argument("watch_id", metavar="ID", type=WATCH_ID)
@click.pass_context
@run_async
async def watch_remove(ctx: click.Context, watch_id: int) -> None:
    """Remove watch ID. An automatic one (made for a managed channel's module) is kept as
    removed, so it is not made again; resume it to watch again."""
    async with runtime_for(settings_of(ctx)) as rt:
        await rt.watches.remove(watch_id)
    click.echo(f"watch {watch_id} removed")


@reconcile.command("status")
@click.option("--connection", metavar="NAME", help="Only this connection's watches.")
@click.option("--module", help="Only watches of this CRM module or Books entity.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as GET /admin/reconciliation).")
@click.pass_context
@run_async
async def status(
    ctx: click.Context, connection: str | None, module: str | None, as_json: bool
) -> None:
    """Per watch: watermark, lag, last and next run, strategy, today's calls, credits,
    versions seen and misses by cause, last error; then the problems."""
    async with runtime_for(settings_of(ctx)) as rt:
        if connection is not None:
            await rt.connections.get(connection)
        view: dict[str, Any] = {
            "watches": await rt.watches.views(connection=connection, module=module),
            "problems": await rt.watches.problems(connection=connection, module=module),
            "runs": await rt.runs.views(connection=connection, module=module),
        }
    if as_json:
        print_json(view)
        return
    print_table(
        ["id", "watch", "status", "watermark", "lag", "last run", "next run", "strategy",
         "calls", "credits", "versions", "misses today", "last error"],
        [[w["id"], f"{w['connection']} {w['product']}/{w['module']}", w["status"],
          _time(w["watermark"]), human(w["lag_seconds"]), _time(w["last_run_at"]),
          _time(w["next_run_at"]), w["strategy"] or "-", w["today"]["calls"],
          w["today"]["credits"], w["today"]["versions"], by_cause(w["today"]),
          (w["last_error"] or "")[:80]] for w in view["watches"]],
    )  # fmt: skip
    for problem in view["problems"]:
        click.echo(f"problem: {problem}")
    if not view["problems"]:
        click.echo("no problems")


@reconcile.command("run")
@click.option("--connection", metavar="NAME", help="Only this connection's watches.")
@click.option("--module", help="Only watches of this CRM module or Books entity.")
@click.option(
    "--since", metavar="ISO-TIME", callback=iso_time,
    help="Backfill changes from this time (ISO 8601; without an offset it is UTC), leaving "
    "the watches' cursors alone.",
)  # fmt: skip
@click.option(
    "--until", metavar="ISO-TIME", callback=iso_time,
    help="Backfill up to this time (ISO 8601, UTC without an offset; needs --since).",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Backfill only: count what would be emitted, "
              "by cause, and emit nothing.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the finished run as JSON.")
@click.pass_context
@run_async
async def run(
    ctx: click.Context, connection: str | None, module: str | None, since: datetime | None,
    until: datetime | None, dry_run: bool, as_json: bool,
) -> None:  # fmt: skip
    """Run the matching active watches now, here, with progress; with --since, backfill a
    span instead. Exits 1 if the run fails. Interrupted, the run is queued again and a
    running `serve` resumes it."""
    async with runtime_for(settings_of(ctx)) as rt:
        queued = await rt.runs.queue(
            connection=connection, module=module, since=since, until=until, dry_run=dry_run
        )
        total = int(queued.counts.get("watches", 0))
        view = await _execute(rt, queued.id, total, dry_run, quiet=as_json)
    if as_json:
        print_json(view)
    else:
        _summary(view)
    if view["state"] != "done":
        raise click.ClickException(f"run {view['id']} {view['state']}: {view['error']}")


async def _execute(
    rt: Runtime, run_id: str, total: int, dry_run: bool, *, quiet: bool
) -> dict[str, Any]:
    if quiet:
        return await _until_finished(rt, run_id, _no_display)
    started = time.monotonic()
    columns = (TextColumn("reconciling"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TextColumn("{task.fields[eta]}"))  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("run", total=total or None, detail="", eta="ETA -")

        def show(counts: dict[str, Any]) -> None:
            done = int(counts.get("done", 0))
            bar.update(task, completed=done, detail=progress_text(counts, dry_run),
                       eta=eta(time.monotonic() - started, done, total))  # fmt: skip

        return await _until_finished(rt, run_id, show)


def _no_display(counts: dict[str, Any]) -> None:
    """--json: no progress display."""


async def _until_finished(rt: Runtime, run_id: str, show: Show) -> dict[str, Any]:
    """Execute the run here; if another bridge process claimed it first (its scheduler saw
    it queued), follow it, and take it over should that process's lease run out."""
    while (finished := await rt.runs.execute(run_id, progress=show)) is None:
        current = await rt.runs.get(run_id)
        if current.state in (RunState.DONE, RunState.FAILED):
            return rt.runs.view(current)
        show(current.counts)
        await asyncio.sleep(FOLLOW_SECONDS)
    return rt.runs.view(finished)


def _summary(view: dict[str, Any]) -> None:
    counts: dict[str, Any] = view["counts"]
    kind = "dry run" if view["dry_run"] else "run"
    click.echo(f"{kind} {view['id']} {view['state']}: {counts.get('done', 0)} of "
               f"{counts.get('watches', 0)} watches, {counts.get('versions', 0)} versions "
               f"scanned, {counts.get('calls', 0)} calls, {counts.get('credits', 0)} "
               "credits")  # fmt: skip
    if view["dry_run"]:
        click.echo(f"would emit {counts.get('would_emit', 0)}: "
                   f"{by_cause(counts, 'would_emit_')}")  # fmt: skip
    else:
        click.echo(f"emitted {counts.get('emitted', 0)} changes no webhook announced: "
                   f"{by_cause(counts)}")  # fmt: skip
    if counts.get("pending"):
        click.echo(f"{counts['pending']} recent changes still within the grace period")
