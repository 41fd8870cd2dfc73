"""`zoho-bridge outbox list|retry`, `status`, `replay`, `events replay`, `purge`."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from bridge.cli.common import (
    console,
    print_json,
    print_table,
    run_async,
    runtime_for,
    settings_of,
)
from bridge.domain.events import EventFilter
from bridge.services.views import delivery_view


@click.group()
def outbox() -> None:
    """The outbox: one row per event per push sink, pending until delivered or dead."""


@outbox.command("list")
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]))
@click.option("--sink", help="Only this sink.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def list_(
    ctx: click.Context, status: str | None, sink: str | None, limit: int, as_json: bool
) -> None:
    """List outbox rows, newest first."""
    async with runtime_for(settings_of(ctx)) as rt:
        items = await rt.deliveries.find(status=status, sink=sink, limit=limit)
    if as_json:
        print_json([delivery_view(d) for d in items])
        return
    print_table(
        ["id", "seq", "sink", "status", "attempts", "next attempt", "replay", "last error"],
        [[d.id, d.event_seq, d.sink, d.status, d.attempts,
          d.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S"), "yes" if d.replay else "",
          (d.last_error or "")[:80]] for d in items],
    )  # fmt: skip


@outbox.command("retry")
@click.option("--sink", help="Only dead rows of this sink (and re-enable it).")
@click.option("--id", "ids", type=int, multiple=True, help="Only this row (repeatable).")
@click.pass_context
@run_async
async def retry(ctx: click.Context, sink: str | None, ids: tuple[int, ...]) -> None:
    """Put dead deliveries back to pending; a running relay picks them up within a second."""
    async with runtime_for(settings_of(ctx)) as rt:
        count = await rt.deliveries.retry(sink=sink, ids=ids)
    click.echo(f"{count} dead deliveries back to pending")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def status(ctx: click.Context, as_json: bool) -> None:
    """Per-sink backlog and dead letters, event count, subscriptions, problems."""
    async with runtime_for(settings_of(ctx)) as rt:
        view = await rt.status.overview()
    if as_json:
        print_json(view)
        return
    print_table(
        ["sink", "pending", "dead", "oldest pending (s)", "disabled"],
        [[s["name"], s["pending"], s["dead"],
          None if s["oldest_pending_age_seconds"] is None
          else f"{s['oldest_pending_age_seconds']:.0f}",
          "DISABLED" if s["disabled"] else ""] for s in view["sinks"]],
    )  # fmt: skip
    events = view["events"]
    click.echo(f"events: {events['count']} (last seq {events['last_seq']}, "
               f"received {events['last_received_at']})")  # fmt: skip
    for sub in view["subscriptions"]:
        click.echo(f"subscription {sub['name']}: acked {sub['acked_seq']}, {sub['behind']} behind")
    for problem in view["problems"]:
        click.echo(f"problem: {problem}")
    if not view["problems"]:
        click.echo("no problems")


@click.command("replay")
@click.option("--since", type=click.DateTime(), required=True, help="Received at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Received before (UTC).")
@click.option("--source")
@click.option("--module")
@click.option("--record-id")
@click.option("--operation", type=click.Choice(["created", "updated", "deleted", "changed"]))
@click.option("--request-id", help="Only the events of this delivery (an inbound request id).")
@click.option("--sink", help="One push sink (default: every configured push sink).")
@click.pass_context
@run_async
async def replay(
    ctx: click.Context, since: datetime, until: datetime | None, source: str | None,
    module: str | None, record_id: str | None, operation: str | None, request_id: str | None,
    sink: str | None,
) -> None:  # fmt: skip
    """Deliver every matching event again, with the same envelope ids."""
    where = EventFilter(
        source=source, module=module, record_id=record_id, operation=operation,
        since=since.replace(tzinfo=UTC), until=until.replace(tzinfo=UTC) if until else None,
        request_id=request_id,
    )  # fmt: skip
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn())
    async with runtime_for(settings_of(ctx)) as rt:
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("replay", total=None)
            count = await rt.deliveries.replay_matching(
                where, sink,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
        sinks = ", ".join(rt.deliveries.target_sinks(sink)) or "no push sink"
    click.echo(f"{count} events queued again for {sinks}")


@click.command("replay")
@click.argument("event_id")
@click.option("--sink", help="One push sink (default: every configured push sink).")
@click.pass_context
@run_async
async def replay_event(ctx: click.Context, event_id: str, sink: str | None) -> None:
    """Deliver one event (by id or seq) again, with the same envelope id."""
    async with runtime_for(settings_of(ctx)) as rt:
        sinks = await rt.deliveries.replay_event(event_id, sink)
    click.echo(f"event {event_id} queued again for {', '.join(sinks) or 'no push sink'}")


@click.command()
@click.option("--days", type=click.IntRange(1), help="Override BRIDGE_RETENTION_DAYS.")
@click.pass_context
@run_async
async def purge(ctx: click.Context, days: int | None) -> None:
    """Delete events older than the retention period that every sink and subscription has had."""
    async with runtime_for(settings_of(ctx)) as rt:
        deleted = await rt.deliveries.purge(days)
    click.echo(f"{deleted} events purged")
