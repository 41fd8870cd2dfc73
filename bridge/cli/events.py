"""`zoho-bridge events list|show`."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from bridge.cli.common import print_json, print_table, run_async, runtime_for, settings_of
from bridge.domain.events import EventFilter
from bridge.services.views import event_view


@click.group()
def events() -> None:
    """Stored events: one per change to one Zoho record."""


@events.command("list")
@click.option("--source")
@click.option("--module")
@click.option("--record-id")
@click.option("--operation", type=click.Choice(["created", "updated", "deleted", "changed"]))
@click.option("--origin", type=click.Choice(["webhook", "reconciliation", "replay"]))
@click.option("--since", type=click.DateTime(), help="Received at or after (UTC).")
@click.option("--until", type=click.DateTime(), help="Received before (UTC).")
@click.option("--request-id", help="Only the events of this delivery (an inbound request id).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@run_async
async def list_(
    ctx: click.Context,
    source: str | None,
    module: str | None,
    record_id: str | None,
    operation: str | None,
    origin: str | None,
    since: datetime | None,
    until: datetime | None,
    request_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List events, newest first."""

    where = EventFilter(
        source=source,
        module=module,
        record_id=record_id,
        operation=operation,
        origin=origin,
        since=since.replace(tzinfo=UTC) if since else None,
        until=until.replace(tzinfo=UTC) if until else None,
        request_id=request_id,
    )
    async with runtime_for(settings_of(ctx)) as rt:
        items = await rt.events.find(where, limit=limit)
    if as_json:
        print_json([event_view(e) for e in items])
        return
    print_table(
        ["seq", "id", "received", "source", "module", "operation", "record", "origin"],
        [
            [e.seq, e.id, e.received_at and e.received_at.strftime("%Y-%m-%d %H:%M:%S"),
             e.source, e.module, e.operation, e.record_id, e.origin]
            for e in items
        ],
    )  # fmt: skip


@events.command("show")
@click.argument("event_id")
@click.pass_context
@run_async
async def show(ctx: click.Context, event_id: str) -> None:
    """Show one event (by id or seq) as JSON."""
    async with runtime_for(settings_of(ctx)) as rt:
        found = await rt.events.get(event_id)
    print_json(event_view(found))
