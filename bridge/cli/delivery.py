"""`zoho-bridge outbox list|show|retry`, `status`, `replay`, `events replay`, `purge`.

All but `purge` go through the admin API of the bridge at BRIDGE_URL when it is set
(cli/remote.py), so that they act with the server's own sinks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from bridge.cli.common import (
    console,
    print_json,
    print_table,
    remote_of,
    run_async,
    runtime_for,
    settings_of,
)
from bridge.domain.events import EventFilter
from bridge.services.views import delivery_detail_view, delivery_view

NO_SINK = (
    "nothing was queued (pull subscribers replay by moving their cursor: "
    "`zoho-bridge subscriptions rewind`)"
)
NO_URL_HINT = (
    "BRIDGE_SINKS names no push sink in this shell, so nothing was queued. To replay to a "
    "running bridge's sinks, set BRIDGE_URL (and BRIDGE_ADMIN_TOKEN) to it; pull "
    "subscribers replay with `zoho-bridge subscriptions rewind`"
)


@click.group()
def outbox() -> None:
    """The outbox: one row per event per push sink, pending until delivered or dead."""


@outbox.command("list")
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]))
@click.option("--sink", help="Only this sink.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def list_(
    ctx: click.Context, status: str | None, sink: str | None, limit: int, as_json: bool
) -> None:
    """List outbox rows, newest first (from the bridge at BRIDGE_URL when set)."""
    items = await _outbox_rows(ctx, status=status, sink=sink, limit=limit)
    if as_json:
        print_json(items)
        return
    print_table(
        ["id", "seq", "sink", "status", "attempts", "next attempt", "replay", "last error"],
        [[d["id"], d["event_seq"], d["sink"], d["status"], d["attempts"],
          _short_time(d["next_attempt_at"]), "yes" if d["replay"] else "",
          (d["last_error"] or "")[:80]] for d in items],
    )  # fmt: skip


@outbox.command("show")
@click.argument("delivery_id", type=click.IntRange(1))
@click.pass_context
@run_async
async def show(ctx: click.Context, delivery_id: int) -> None:
    """Show one outbox row (by id) as JSON, with its publish attempts, oldest first."""
    api = remote_of(ctx)
    if api is not None:
        print_json(api.get(f"/admin/outbox/{delivery_id}"))
        return
    async with runtime_for(settings_of(ctx)) as rt:
        found = await rt.deliveries.get(delivery_id)
        attempts = (await rt.deliveries.attempts([found.id]))[found.id]
    print_json(delivery_detail_view(found, attempts))


async def _outbox_rows(
    ctx: click.Context, *, status: str | None = None, sink: str | None = None,
    before_id: int | None = None, limit: int,
) -> list[dict[str, Any]]:  # fmt: skip
    api = remote_of(ctx)
    if api is not None:
        params = {"status": status, "sink": sink, "cursor": before_id, "limit": limit}
        items: list[dict[str, Any]] = api.get("/admin/outbox", params)["items"]
        return items
    async with runtime_for(settings_of(ctx)) as rt:
        found = await rt.deliveries.find(status=status, sink=sink, before_id=before_id, limit=limit)
    return [delivery_view(d) for d in found]


@outbox.command("retry")
@click.option("--sink", help="Only dead rows of this sink (and re-enable it).")
@click.option("--id", "ids", type=int, multiple=True, help="Only this row (repeatable).")
@click.pass_context
@run_async
async def retry(ctx: click.Context, sink: str | None, ids: tuple[int, ...]) -> None:
    """Put dead deliveries back to pending; a running relay picks them up within a second."""
    api = remote_of(ctx)
    if api is not None:
        count = api.post("/admin/outbox/retry", {"sink": sink, "ids": list(ids)})["retried"]
    else:
        async with runtime_for(settings_of(ctx)) as rt:
            count = await rt.deliveries.retry(sink=sink, ids=ids)
    click.echo(f"{count} dead deliveries back to pending")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def status(ctx: click.Context, as_json: bool) -> None:
    """Per-sink backlog and dead letters, event count, subscriptions, problems (of the
    bridge at BRIDGE_URL when set: its sinks, not this shell's BRIDGE_SINKS)."""
    api = remote_of(ctx)
    if api is not None:
        view = api.get("/admin/status")
    else:
        async with runtime_for(settings_of(ctx)) as rt:
            view = await rt.status.overview()
    if as_json:
        print_json(view)
        return
    print_table(
        ["sink", "pending", "dead", "oldest pending (s)", "published/s", "relays", "disabled"],
        [[s["name"], s["pending"], s["dead"],
          None if s["oldest_pending_age_seconds"] is None
          else f"{s['oldest_pending_age_seconds']:.0f}",
          None if s.get("publish_rate_per_second") is None
          else f"{s['publish_rate_per_second']:.1f}",
          s.get("relays"),
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
    if api is None:
        click.echo("(sinks as this shell's BRIDGE_SINKS has them; "
                   "set BRIDGE_URL to ask the running bridge)")  # fmt: skip


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
    """Deliver every matching event again, with the same envelope ids, to the push sinks
    of the bridge at BRIDGE_URL (or, without it, those of this shell's BRIDGE_SINKS)."""
    where = EventFilter(
        source=source, module=module, record_id=record_id, operation=operation,
        since=since.replace(tzinfo=UTC), until=until.replace(tzinfo=UTC) if until else None,
        request_id=request_id,
    )  # fmt: skip
    api = remote_of(ctx)
    if api is not None:
        body = {
            "source": source, "module": module, "record_id": record_id,
            "operation": operation, "request_id": request_id, "sink": sink,
            "since": where.since.isoformat() if where.since else None,
            "until": where.until.isoformat() if where.until else None,
        }  # fmt: skip
        answer = api.post("/admin/replay", body)
        if not answer["sinks"]:
            raise click.ClickException(f"the bridge at {api.url} has no push sink: {NO_SINK}")
        click.echo(f"{answer['events']} events queued again for {', '.join(answer['sinks'])}")
        return
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn())
    async with runtime_for(settings_of(ctx)) as rt:
        sinks = rt.deliveries.target_sinks(sink)
        if not sinks:
            raise click.ClickException(f"no push sink is configured here: {NO_URL_HINT}")
        with Progress(*columns, console=console, transient=False) as bar:
            task = bar.add_task("replay", total=None)
            count = await rt.deliveries.replay_matching(
                where, sink,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )  # fmt: skip
    click.echo(f"{count} events queued again for {', '.join(sinks)}")


@click.command("replay")
@click.argument("event_id")
@click.option("--sink", help="One push sink (default: every configured push sink).")
@click.pass_context
@run_async
async def replay_event(ctx: click.Context, event_id: str, sink: str | None) -> None:
    """Deliver one event (by id or seq) again, with the same envelope id (to the push
    sinks of the bridge at BRIDGE_URL when set)."""
    api = remote_of(ctx)
    if api is not None:
        sinks: list[str] = api.post(f"/admin/events/{event_id}/replay", {"sink": sink})["sinks"]
        if not sinks:
            raise click.ClickException(f"the bridge at {api.url} has no push sink: {NO_SINK}")
    else:
        async with runtime_for(settings_of(ctx)) as rt:
            if not rt.deliveries.target_sinks(sink):
                raise click.ClickException(f"no push sink is configured here: {NO_URL_HINT}")
            sinks = await rt.deliveries.replay_event(event_id, sink)
    click.echo(f"event {event_id} queued again for {', '.join(sinks)}")


def _short_time(value: str | None) -> str:
    return value[:19].replace("T", " ") if value else ""


@click.command()
@click.option("--days", type=click.IntRange(1), help="Override BRIDGE_RETENTION_DAYS.")
@click.pass_context
@run_async
async def purge(ctx: click.Context, days: int | None) -> None:
    """Delete events older than the retention period that every sink and subscription has had."""
    async with runtime_for(settings_of(ctx)) as rt:
        deleted = await rt.deliveries.purge(days)
    click.echo(f"{deleted} events purged")
